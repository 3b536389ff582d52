"""CODE-Net and mCODE-Net: deraining by reweighted convolutional sparse coding.

Paper: J. He, L. Yu, G.-S. Xia, W. Yang, "Single Image Deraining with Continuous Rain Density
Estimation", arXiv:2006.03190, 2020; journal version by B. Wang, L. Yu, J. He, G.-S. Xia,
W. Yang, IEEE Transactions on Multimedia, 2023. Official code: https://github.com/Achhhe/CODE-Net
(``CODE-Net/codes/models/modules/architecture.py``).

A rain-streak extractor (two 3×3 convolutions with ReLU) feeds a convolutional-sparse-coding
denoiser unrolled from a *reweighted* iterative soft-thresholding algorithm: the reweighting is a
channel attention block (CA: global average pooling → 1×1 conv → ReLU → 1×1 conv → sigmoid, the
weights then scale the codes). The denoised rain layer goes through a last 3×3 convolution and is
added to the rainy input. All ISTA iterations share their weights. The mean of a CA's weight
vector is the continuous rain-density estimate (RDE).

Variants (official class → registry name):
    ``RlcscNet`` → ``codenet``: single scale, 128 feature and 256 code channels
        (1,350,401 parameters). ``z = W1(f)``; 25 times ``x = S(RW2(ReLU(RW1(t) − T)))``,
        ``t = x + z`` (``t = z`` at first); then ``c = RW2(ReLU(RW1(t) − T))`` and
        ``ReLU(W2(c))`` is the denoised feature.
    ``MSRlcscNet`` → ``mcodenet``: three scales with 3×3, 5×5 and 7×7 dictionaries, 48 feature
        and 96 code channels per scale (802,158 parameters). Per scale ``s``:
        ``z_s = RWs_2(ReLU(RWs_1(DT_s(f) − T_s[0])))``; 25 times, with the residual
        ``r = f − Σ_s D_s(z_s)`` of the *old* codes, ``z_s = RWs_2(ReLU(RWs_1(z_s + DT_s(r) −
        T_s[i+1])))`` for all scales at once; the denoised feature is ``ReLU(Σ_s D_s(z_s))``.

Outputs:
    ``derained``: the restored image (not clamped; the official test clamps to [0, 1]).
    ``density``: the RDE, shape ``(N,)``: the mean over channels of the attention weights of
        the first CA (``RW1``; for ``mcodenet`` ``RW1_1``, scale 1) at its last call, i.e.
        the weights computed from the final codes.
    The attention vector of every CA call is the output of a layer named
    ``scn_<CA>_attention<k>`` (``k`` = 0 … iterations, in call order), for inspection with
    ``keras.Model(model.input, model.get_layer(name).output)``; the mean of the last one of
    ``scn_RW{s}_1`` is the RDE of scale ``s`` of ``mcodenet``.
    :func:`density_estimate` reads the RDE as a value and a light/medium/heavy level.

Where the official code is more specific than (or differs from) the paper:
    * The soft threshold is one-sided, ``ReLU(u − T)``, with a learned scalar ``T``
      broadcast over channels and pixels. ``codenet`` has one ``T`` shared by all iterations
      and subtracts it *after* the first CA; ``mcodenet`` learns one threshold per iteration
      and scale (``T_s`` has ``iterations + 1`` entries) and subtracts it *before* the CA.
    * The iteration count (25) is hard-coded in the forward pass; the constructor takes no
      arguments and the options file's ``network_G`` widths are ignored.
    * The official code has no biases at all (including the 1×1 convolutions of the CAs).
    * The multi-scale forward pass contains no RDE code; its ``density`` mirrors the
      commented-out RDE of the single-scale code (mean of the first CA's weights at the last
      call), applied to scale 1.
    * The CA pools over the whole image, so outputs depend on the full input: tiled inference
      is an approximation (the density especially).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from tfderain._keras import keras, tf
from tfderain.models import Tiny, register

layers = keras.layers
serializable = keras.saving.register_keras_serializable(package="tfderain")


# ----------------------------------------------------------------------------------- layers


@serializable
class CODENetThreshold(layers.Layer):
    """Subtracts a learned scalar threshold ``T[index]`` from every channel and pixel.

    The layer holds the whole threshold vector (official ``nn.Parameter`` of ``size`` entries,
    state-dict key ``<prefix>.<torch_param>``); each call picks one entry, so a network that
    uses a different threshold per iteration still has one shared weight.
    """

    QUANTIZE = "output"

    def __init__(self, size: int = 1, torch_param: str = "T", **kwargs):
        super().__init__(**kwargs)
        self.size = size
        self.torch_param = torch_param

    @property
    def TORCH_PARAMS(self) -> tuple[str, ...]:  # noqa: N802 - the converter's protocol name
        return (self.torch_param,)

    def build(self, input_shape):
        self.thresholds = self.add_weight(
            name="thresholds", shape=(self.size,), initializer="zeros", trainable=True
        )
        super().build(input_shape)

    def call(self, x, index: int = 0):
        return x - tf.cast(self.thresholds[index], x.dtype)

    def get_config(self):
        return {**super().get_config(), "size": self.size, "torch_param": self.torch_param}


@serializable
class CODENetChannelMean(layers.Layer):
    """Mean over all non-batch axes: attention weights ``(N, 1, 1, C)`` → RDE ``(N,)``."""

    QUANTIZE = "output"

    def call(self, x):
        return tf.reduce_mean(x, axis=tf.range(1, tf.rank(x)))


# ---------------------------------------------------------------------------- rain density

#: RDE values separating light from medium and medium from heavy rain (see
#: :func:`density_estimate`).
RDE_LEVEL_THRESHOLDS = (0.6, 0.78)


def density_estimate(rde: np.ndarray) -> tuple[float, int]:
    """``(value, level)`` of one image's RDE (the registry's ``density_decoder``).

    The RDE is already a continuous density: a mean of sigmoid attention weights, so in
    (0, 1). It is the value as is (clipped to [0, 1] against rounding).

    The paper deliberately does not quantise the density and defines no thresholds between
    levels. Its Fig. 1 (also the first figure of the official README) shows real images of
    light, medium and heavy rain with RDEs 0.4967, 0.6967 and 0.8600; the RDE figure of the
    README adds a clear image at 0.1617. The levels here split at the midpoints between those
    labelled examples, rounded (:data:`RDE_LEVEL_THRESHOLDS`): light below 0.6, medium below
    0.78, heavy from 0.78 (level 0, 1, 2). RDEs depend on the trained weights, so the
    thresholds only suit models trained like the authors' (e.g. the official checkpoints).
    """
    value = float(np.clip(np.asarray(rde, dtype=np.float64).reshape(()), 0.0, 1.0))
    level = int(np.searchsorted(RDE_LEVEL_THRESHOLDS, value, side="right"))
    return value, level


# ------------------------------------------------------------------------------ components


class ChannelAttention:
    """The official ``CALayer``: returns ``(u * a, a)``, ``a = σ(W_b ReLU(W_a GAP(u)))``.

    Both 1×1 convolutions are bias-free and shared by every call (reweighting at each ISTA
    iteration); the weightless layers of each call are named ``<name>_<op><k>``, so the
    attention vector of call ``k`` is the output of layer ``<name>_attention<k>``.
    """

    def __init__(self, channels: int, reduction: int, name: str):
        self.name = name
        self.calls = 0
        self.squeeze = layers.Conv2D(
            channels // reduction,
            1,
            use_bias=False,
            activation="relu",
            name=f"{name}_conv_atten_0",
        )
        self.excite = layers.Conv2D(channels, 1, use_bias=False, name=f"{name}_conv_atten_2")

    def __call__(self, u):
        k, self.calls = self.calls, self.calls + 1
        pooled = layers.GlobalAveragePooling2D(keepdims=True, name=f"{self.name}_pool{k}")(u)
        weights = self.excite(self.squeeze(pooled))
        weights = layers.Activation("sigmoid", name=f"{self.name}_attention{k}")(weights)
        return layers.Multiply(name=f"{self.name}_reweight{k}")([u, weights]), weights

    @staticmethod
    def key_map(name: str, prefix: str) -> dict[str, str]:
        return {f"{name}_conv_atten_{i}": f"{prefix}.conv_atten.{i}" for i in (0, 2)}


def _conv(filters: int, kernel_size: int, name: str, **kwargs) -> layers.Conv2D:
    """A bias-free stride-1 'same' convolution (torch ``padding=(k - 1) // 2``, odd ``k``)."""
    return layers.Conv2D(filters, kernel_size, padding="same", use_bias=False, name=name, **kwargs)


def _check(**values: int) -> None:
    bad = {k: v for k, v in values.items() if int(v) < 1}
    if bad:
        raise ValueError(f"these config values must be positive: {bad}")


def _csc_network(name: str, channels: int, scn) -> keras.Model:
    """Extractor → sparse-coding denoiser ``scn`` → output conv + global residual."""
    rainy = keras.Input((None, None, 3), name="rainy")
    f = _conv(channels, 3, "input", activation="relu")(rainy)
    f = _conv(channels, 3, "advanced", activation="relu")(f)
    f, density = scn(f)
    rain = _conv(3, 3, "output")(f)
    derained = layers.Add(name="derained")([rain, rainy])
    return keras.Model(rainy, {"derained": derained, "density": density}, name=name)


# ---------------------------------------------------------------------------- single scale


def _single_scale_scn(code_channels: int, channels: int, reduction: int, iterations: int):
    w1 = _conv(code_channels, 3, "scn_W1")
    s = _conv(code_channels, 3, "scn_S")
    w2 = _conv(channels, 3, "scn_W2", activation="relu")
    rw1 = ChannelAttention(code_channels, reduction, "scn_RW1")
    rw2 = ChannelAttention(code_channels, reduction, "scn_RW2")
    threshold = CODENetThreshold(1, "T", name="scn_T")

    def scn(f):
        z = w1(f)
        t = z
        for k in range(iterations + 1):
            u, weights = rw1(t)
            u = layers.ReLU(name=f"scn_shlu{k}")(threshold(u, index=0))
            x, _ = rw2(u)
            if k == iterations:
                break
            t = layers.Add(name=f"scn_code{k + 1}")([s(x), z])
        rde = CODENetChannelMean(name="rde")(weights)
        return w2(x), rde

    return scn


def _codenet_key_map(**_config) -> dict[str, str]:
    table = {name: name for name in ("input", "advanced", "output")}
    table.update({f"scn_{w}": f"scn.{w}" for w in ("W1", "S", "W2")})
    table["scn_T"] = "scn"
    for ca in ("RW1", "RW2"):
        table.update(ChannelAttention.key_map(f"scn_{ca}", f"scn.{ca}"))
    return table


def _codenet_infer_config(state_dict: Mapping[str, np.ndarray]) -> dict:
    """Widths and CA reduction from the shapes; the iteration count is not stored."""
    code = int(state_dict["scn.W1.weight"].shape[0])
    return {
        "channels": int(state_dict["input.weight"].shape[0]),
        "code_channels": code,
        "reduction": code // int(state_dict["scn.RW1.conv_atten.0.weight"].shape[0]),
    }


@register(
    "codenet",
    # Receptive-field radius 30 px (30 stacked 3×3 convs: extractor, W1, 25 × S, W2, output);
    # the CA's global pooling adds a weak whole-image dependency that no halo can cover.
    halo=32,
    key_map=_codenet_key_map,
    infer_config=_codenet_infer_config,
    outputs=("derained", "density"),
    density_aware=True,
    density_decoder=density_estimate,
    description="CODE-Net (single-scale reweighted CSC, continuous rain density, TMM 2023)",
    tiny=Tiny({"channels": 8, "code_channels": 16, "reduction": 4, "iterations": 2}),
    phone=True,
)
def codenet(
    channels: int = 128, code_channels: int = 256, reduction: int = 16, iterations: int = 25
) -> keras.Model:
    """CODE-Net (official ``RlcscNet``).

    Args:
        channels: feature channels of the extractor and of the denoised feature.
        code_channels: sparse-code channels (``W1``, ``S``, the CAs).
        reduction: channel reduction inside each CA.
        iterations: unrolled ISTA iterations (hard-coded 25 in the official code).
    """
    _check(
        channels=channels, code_channels=code_channels, reduction=reduction, iterations=iterations
    )
    scn = _single_scale_scn(code_channels, channels, reduction, iterations)
    return _csc_network("codenet", channels, scn)


# ----------------------------------------------------------------------------- multi scale


def _multi_scale_scn(
    code_channels: int,
    channels: int,
    kernel_sizes: Sequence[int],
    reduction: int,
    iterations: int,
):
    scales = range(1, len(kernel_sizes) + 1)
    d = {s: _conv(channels, k, f"scn_D{s}") for s, k in zip(scales, kernel_sizes, strict=True)}
    dt = {
        s: _conv(code_channels, k, f"scn_DT{s}") for s, k in zip(scales, kernel_sizes, strict=True)
    }
    rw_a = {s: ChannelAttention(code_channels, reduction, f"scn_RW{s}_1") for s in scales}
    rw_b = {s: ChannelAttention(code_channels, reduction, f"scn_RW{s}_2") for s in scales}
    thresholds = {s: CODENetThreshold(iterations + 1, f"T{s}", name=f"scn_T{s}") for s in scales}

    def update(s: int, u, k: int):
        """``RWs_2(ReLU(RWs_1(u − T_s[k])))``; also the attention weights of ``RWs_1``."""
        u, weights = rw_a[s](thresholds[s](u, index=k))
        u, _ = rw_b[s](layers.ReLU(name=f"scn_shlu{s}_{k}")(u))
        return u, weights

    def scn(f):
        codes, weights = {}, {}
        for s in scales:
            codes[s], weights[s] = update(s, dt[s](f), 0)
        for i in range(iterations):
            residual = f
            for s in scales:
                residual = layers.Subtract(name=f"scn_residual{i}_{s}")([residual, d[s](codes[s])])
            for s in scales:
                step = layers.Add(name=f"scn_step{i}_{s}")([codes[s], dt[s](residual)])
                codes[s], weights[s] = update(s, step, i + 1)
        rain = [d[s](codes[s]) for s in scales]
        rain = layers.Add(name="scn_synthesis")(rain) if len(rain) > 1 else rain[0]
        rde = CODENetChannelMean(name="rde")(weights[1])
        return layers.ReLU(name="scn_relu")(rain), rde

    return scn


def _mcodenet_key_map(kernel_sizes: Sequence[int] = (3, 5, 7), **_config) -> dict[str, str]:
    table = {name: name for name in ("input", "advanced", "output")}
    for s in range(1, len(kernel_sizes) + 1):
        table.update({f"scn_D{s}": f"scn.D{s}", f"scn_DT{s}": f"scn.DT{s}", f"scn_T{s}": "scn"})
        for j in (1, 2):
            table.update(ChannelAttention.key_map(f"scn_RW{s}_{j}", f"scn.RW{s}_{j}"))
    return table


def _mcodenet_infer_config(state_dict: Mapping[str, np.ndarray]) -> dict:
    """Widths, dictionary sizes, CA reduction and iteration count from the shapes."""
    kernel_sizes = []
    while f"scn.D{len(kernel_sizes) + 1}.weight" in state_dict:
        kernel_sizes.append(int(state_dict[f"scn.D{len(kernel_sizes) + 1}.weight"].shape[-1]))
    code = int(state_dict["scn.DT1.weight"].shape[0])
    return {
        "channels": int(state_dict["input.weight"].shape[0]),
        "code_channels": code,
        "kernel_sizes": tuple(kernel_sizes),
        "reduction": code // int(state_dict["scn.RW1_1.conv_atten.0.weight"].shape[0]),
        "iterations": int(state_dict["scn.T1"].shape[0]) - 1,
    }


@register(
    "mcodenet",
    # The receptive-field radius is 159 px (26 D/DT pairs up to 7×7); with the official
    # rain1200 weights ~96% of a pixel's input-gradient mass lies within 96 px.
    halo=96,
    key_map=_mcodenet_key_map,
    infer_config=_mcodenet_infer_config,
    outputs=("derained", "density"),
    density_aware=True,
    density_decoder=density_estimate,
    description="mCODE-Net (multi-scale reweighted CSC, continuous rain density, TMM 2023)",
    tiny=Tiny({"channels": 4, "code_channels": 8, "reduction": 2, "iterations": 2}),
    phone=True,
    # QAT keeps the activations of 25 full-resolution iterations for the backward pass: about
    # 5 GB per 128×128 patch (peak 7.4 GB with 1 patch per step, 12.3 GB with 2; export/README.md)
    qat_recipe={"batch_size": 1},
)
def mcodenet(
    channels: int = 48,
    code_channels: int = 96,
    kernel_sizes: Sequence[int] = (3, 5, 7),
    reduction: int = 8,
    iterations: int = 25,
) -> keras.Model:
    """mCODE-Net (official ``MSRlcscNet``).

    Args:
        channels: feature channels of the extractor and of the denoised feature.
        code_channels: sparse-code channels of each scale.
        kernel_sizes: dictionary (``D_s``/``DT_s``) kernel size of each scale; odd.
        reduction: channel reduction inside each CA.
        iterations: unrolled ISTA iterations (hard-coded 25 in the official code).
    """
    kernel_sizes = tuple(int(k) for k in kernel_sizes)
    _check(
        channels=channels,
        code_channels=code_channels,
        reduction=reduction,
        iterations=iterations,
        scales=len(kernel_sizes),
    )
    if any(k % 2 == 0 or k < 1 for k in kernel_sizes):
        raise ValueError(f"kernel_sizes must be odd and positive, got {kernel_sizes}")
    scn = _multi_scale_scn(code_channels, channels, kernel_sizes, reduction, iterations)
    return _csc_network("mcodenet", channels, scn)
