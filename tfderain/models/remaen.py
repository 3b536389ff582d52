"""ReMAEN: Recurrent Multi-scale Aggregation and Enhancement Network.

Paper: Y. Yang, H. Lu, "Single Image Deraining using a Recurrent Multi-scale Aggregation and
Enhancement Network", IEEE International Conference on Multimedia and Expo (ICME) 2019.
Official code (TensorFlow 1): https://github.com/nnUyi/ReMAEN (``codes/ReMAEN.py``,
``DerainNet.derainNet``).

The network is applied recurrently: ``derain_0`` is the rainy image and stage ``s`` subtracts a
predicted residual from the previous stage's estimate, ``derain_s = derain_{s-1} - residual_s``.
Every stage shares all weights and the seven ConvGRU hidden states carry over from one stage to
the next. Within a stage:

* **Extracting path**: four multi-scale aggregation and enhancement blocks (MAEB), each followed
  by a ConvGRU: ``M1 = MAEB1(derain)``, ``g1 = GRU1(M1)``, ``M2 = MAEB2(g1)``, … ``g4 = GRU4(M4)``.
* **Responding path**: ``g5 = GRU5(ReLU(conv5(g4)) + M3)``, ``g6 = GRU6(ReLU(conv6(g5)) + M2)``,
  ``g7 = GRU7(ReLU(conv7(g6)) + M1)`` (symmetric skips add the MAEB outputs).
* **Residual map generator** (RMG): ``residual = Conv_1(LReLU(SE(Conv(g7))))``.

A MAEB runs the same two 3×3 convolutions (``d1``, ``d2``, each followed by LeakyReLU(0.2)) at
dilation rates 1, 2 and 3, sums the three results and applies channel attention (an SE block).
The convolution kernels are shared across the dilation rates. All convolutions are 3×3, stride 1,
"same" padding, with bias.

Builder: ``build("remaen", stages=3, channels=32)`` (paper config, 495,771 parameters).

Outputs:
    ``derained``: the last stage's estimate (not clipped; the official test clips to [0, 1]).
    ``rain``: the residual subtracted in the *last* stage only (the official ``residual``
        output; the official test saves ``clip(|rain|, 0, 1)``). The whole rain layer removed by
        the network is ``input - derained``.
    ``stages``: all stage estimates, shape ``(N, stages, H, W, 3)``; ``stages[:, -1]`` equals
        ``derained``.

Official checkpoints are TensorFlow 1 name-based checkpoints (``derainNet/...`` variables plus
Adam slots). :func:`load_official_checkpoint` reads one (or an ``.npz`` of its variables) and
:func:`state_dict_from_tf` turns TF variables into the PyTorch-style state dict that
:func:`tfderain.convert.convert_state_dict` applies through this module's key table.

Colour order: the official code trains and tests on ``cv2.imread`` images, i.e. BGR in [0, 1].
:func:`state_dict_from_tf` by default permutes the input channels of the first convolution
(``MAEB1/d1``) and the output channels of the last one (``RMG/Conv_1``), so the converted model
takes RGB like every tfderain model and computes exactly the official function up to the
channel permutation (the stage recurrence and the residual subtraction are channel-wise).

Where the official code is more specific than (or differs from) the paper:
    * ``d1`` and ``d2`` of a MAEB are single variables reused at dilation rates 1, 2 and 3
      (``slim.conv2d(..., rate=i, scope='d1')`` under ``AUTO_REUSE``). Here the rates 2 and 3 are
      computed as space-to-batch → the shared rate-1 ``Conv2D`` → batch-to-space, which is exact
      for any height and width (the way TensorFlow itself lowers atrous convolution).
    * The SE block of a ConvGRU is created outside the GRU's variable scope, so convGRU1–4 share
      one SE block (``extracting_path/SEBlock``) and convGRU5–7 share another
      (``responding_path/SEBlock``); each MAEB and the RMG have their own. SE: global average
      pool → FC(C→C/4, ReLU) → FC(C/4→C) → sigmoid → rescale; there is no activation after a
      MAEB's SE block.
    * ConvGRU in stage 1 (no previous state): ``h = sigmoid(conv_xz(x)) · tanh(conv_xn(x))``. In
      later stages: ``r = σ(conv_hr(h) + conv_xr(x))``, ``z = σ(conv_hz(h) + conv_xz(x))``,
      ``n = tanh(conv_xn(x) + conv_hn(r·h))``, ``h = (1 − z)·h + z·n`` (computed here as
      ``h + z·(n − h)``). In every stage the GRU output and next state is ``LReLU(SE(h))``.
    * The responding-path convolutions have a ReLU before the skip addition; the RMG's first
      convolution has no activation before its SE block, and its SE output goes through a
      LeakyReLU(0.2).
    * Each stage subtracts its residual from the previous stage's estimate (not from the rainy
      input), and only the last stage's residual is returned. The stage count (3) is hard-coded
      in the official code.
    * The output is not clipped; the official test clips to [0, 1].
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from tfderain._keras import keras, tf
from tfderain.models import Tiny, register
from tfderain.models.blocks import Stack, conv

layers = keras.layers
serializable = keras.saving.register_keras_serializable(package="tfderain")

#: Dilation rates at which a MAEB applies its shared convolutions.
RATES = (1, 2, 3)
#: Negative slope of the official ``leakyRelu``.
LRELU_ALPHA = 0.2
#: Official variable scope of the whole network.
ROOT_SCOPE = "derainNet"
_EXTRACTING = "ReMAEN/extracting_path"
_RESPONDING = "ReMAEN/responding_path"
_GRU_GATES_STAGE1 = ("conv_xz", "conv_xn")
_GRU_GATES_LATER = ("conv_hz", "conv_hr", "conv_xr", "conv_hn")
_SE_FCS = ("fully_connected", "fully_connected_1")


def _layer_name(scope: str) -> str:
    """Keras layer name of the official variable scope ``scope`` (below ``derainNet/``)."""
    return scope.removeprefix("ReMAEN/").replace("/", "_")


# --------------------------------------------------------------------------- custom layers


class _SubGrids(layers.Layer):
    """Base of the two sub-grid layers: a ``rate`` and the padding it needs for an image."""

    def __init__(self, rate: int, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate

    def _padding(self, image) -> list[list]:
        """Bottom/right zeros that make the image's height and width multiples of ``rate``."""
        shape = tf.shape(image)
        return [[0, (-shape[1]) % self.rate], [0, (-shape[2]) % self.rate]]

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


@serializable
class ReMAENSpaceToBatch(_SubGrids):
    """Moves the ``rate × rate`` interleaved sub-grids of the image into the batch axis.

    Height and width are zero-padded at the bottom/right up to multiples of ``rate``; a stride-1
    "same" convolution on the result followed by :class:`ReMAENBatchToSpace` equals the same
    convolution dilated by ``rate`` on the original image.
    """

    QUANTIZE = "none"

    def call(self, x):
        return tf.space_to_batch(x, [self.rate, self.rate], self._padding(x))


@serializable
class ReMAENBatchToSpace(_SubGrids):
    """Inverse of :class:`ReMAENSpaceToBatch`; ``reference`` gives the size to crop back to."""

    QUANTIZE = "none"

    def call(self, inputs):
        y, reference = inputs
        return tf.batch_to_space(y, [self.rate, self.rate], self._padding(reference))


# --------------------------------------------------------------------------- blocks


def _lrelu(name: str) -> layers.LeakyReLU:
    return layers.LeakyReLU(alpha=LRELU_ALPHA, name=name)


class SEBlock:
    """Channel attention: ``x · sigmoid(FC(ReLU(FC(GAP(x)))))`` with weights under ``scope``."""

    def __init__(self, scope: str, channels: int):
        self.channels = channels
        name = _layer_name(scope)
        self.fc1 = layers.Dense(channels // 4, activation="relu", name=f"{name}_{_SE_FCS[0]}")
        self.fc2 = layers.Dense(channels, activation="sigmoid", name=f"{name}_{_SE_FCS[1]}")

    def __call__(self, x, tag: str):
        g = self.fc2(self.fc1(layers.GlobalAveragePooling2D(name=f"{tag}_pool")(x)))
        g = layers.Reshape((1, 1, self.channels), name=f"{tag}_expand")(g)
        return layers.Multiply(name=f"{tag}_scale")([x, g])


class MAEB:
    """Multi-scale aggregation and enhancement block (``d1``/``d2`` shared across rates)."""

    def __init__(self, scope: str, channels: int):
        name = _layer_name(scope)
        self.d1 = conv(channels, name=f"{name}_d1")
        self.d2 = conv(channels, name=f"{name}_d2")
        self.se = SEBlock(f"{scope}/SEBlock", channels)

    @staticmethod
    def _dilated(layer: layers.Conv2D, x, rate: int, tag: str):
        if rate == 1:
            return layer(x)
        y = layer(ReMAENSpaceToBatch(rate, name=f"{tag}_s2b")(x))
        return ReMAENBatchToSpace(rate, name=f"{tag}_b2s")([y, x])

    def __call__(self, x, tag: str):
        branches = []
        for rate in RATES:
            t = f"{tag}_rate{rate}"
            d = _lrelu(f"{t}_d1_lrelu")(self._dilated(self.d1, x, rate, f"{t}_d1"))
            d = _lrelu(f"{t}_d2_lrelu")(self._dilated(self.d2, d, rate, f"{t}_d2"))
            branches.append(d)
        return self.se(layers.Add(name=f"{tag}_sum")(branches), f"{tag}_SE")


class ConvGRU:
    """Convolutional GRU whose output (= next state) is ``LReLU(SE(h))`` with a shared SE."""

    def __init__(self, scope: str, channels: int, se: SEBlock, recurrent: bool):
        name = _layer_name(scope)
        gates = _GRU_GATES_STAGE1 + (_GRU_GATES_LATER if recurrent else ())
        self.conv = {g: conv(channels, name=f"{name}_{g}") for g in gates}
        self.se = se

    def __call__(self, x, h, tag: str):
        c = self.conv
        if h is None:
            z = layers.Activation("sigmoid", name=f"{tag}_z")(c["conv_xz"](x))
            f = layers.Activation("tanh", name=f"{tag}_f")(c["conv_xn"](x))
            h = layers.Multiply(name=f"{tag}_h")([z, f])
        else:
            r = layers.Add(name=f"{tag}_r_pre")([c["conv_hr"](h), c["conv_xr"](x)])
            r = layers.Activation("sigmoid", name=f"{tag}_r")(r)
            z = layers.Add(name=f"{tag}_z_pre")([c["conv_hz"](h), c["conv_xz"](x)])
            z = layers.Activation("sigmoid", name=f"{tag}_z")(z)
            rh = layers.Multiply(name=f"{tag}_rh")([r, h])
            n = layers.Add(name=f"{tag}_n_pre")([c["conv_xn"](x), c["conv_hn"](rh)])
            n = layers.Activation("tanh", name=f"{tag}_n")(n)
            # (1 - z)·h + z·n  ==  h + z·(n - h)
            step = layers.Multiply(name=f"{tag}_zd")([z, layers.Subtract(name=f"{tag}_d")([n, h])])
            h = layers.Add(name=f"{tag}_h")([h, step])
        return _lrelu(f"{tag}_out")(self.se(h, f"{tag}_SE"))


# --------------------------------------------------------------------------- network


def _scopes(stages: int) -> list[str]:
    """Official variable scopes (below ``derainNet/``) holding one weights/biases pair each."""
    gates = _GRU_GATES_STAGE1 + (_GRU_GATES_LATER if stages > 1 else ())
    se = [f"SEBlock/{fc}" for fc in _SE_FCS]
    scopes = []
    for k in range(1, 5):
        scopes += [f"{_EXTRACTING}/MAEB{k}/{s}" for s in ("d1", "d2", *se)]
        scopes += [f"{_EXTRACTING}/convGRU{k}/{g}" for g in gates]
    for k in range(5, 8):
        scopes += [f"{_RESPONDING}/conv{k}"] + [f"{_RESPONDING}/convGRU{k}/{g}" for g in gates]
    scopes += [f"{path}/{s}" for path in (_EXTRACTING, _RESPONDING) for s in se]
    scopes += ["RMG/Conv", "RMG/Conv_1"] + [f"RMG/{s}" for s in se]
    return scopes


def _key_map(stages: int = 3, **_: Any) -> dict[str, str]:
    """Keras layer name → official scope (``state_dict_from_tf`` keys are ``scope.weight``)."""
    return {_layer_name(s): f"{ROOT_SCOPE}/{s}" for s in _scopes(stages)}


def _infer_config(state_dict: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Channel width from the checkpoint; the stage count (3 officially) is not stored."""
    weight = state_dict[f"{ROOT_SCOPE}/{_EXTRACTING}/MAEB1/d1.weight"]
    return {"channels": int(weight.shape[0])}


@register(
    "remaen",
    multiple=1,
    # Receptive radius is 122 px for 3 stages (43 px per recurrent stage, 36 for the first);
    # the SE blocks add a weak image-global dependence on top.
    halo=96,
    key_map=_key_map,
    infer_config=_infer_config,
    outputs=("derained", "rain", "stages"),
    description="ReMAEN (ICME 2019)",
    tiny=Tiny({"stages": 2, "channels": 8}),
    phone=True,
)
def remaen(stages: int = 3, channels: int = 32) -> keras.Model:
    """ReMAEN with ``stages`` weight-sharing recurrent stages of width ``channels``."""
    if stages < 1 or channels < 4:
        raise ValueError(f"need stages >= 1 and channels >= 4, got {stages}, {channels}")
    rainy = keras.Input((None, None, 3), name="rainy")
    recurrent = stages > 1
    maebs = [MAEB(f"{_EXTRACTING}/MAEB{k}", channels) for k in range(1, 5)]
    se_extract = SEBlock(f"{_EXTRACTING}/SEBlock", channels)
    se_respond = SEBlock(f"{_RESPONDING}/SEBlock", channels)
    grus = [
        ConvGRU(f"{_EXTRACTING}/convGRU{k}", channels, se_extract, recurrent) for k in range(1, 5)
    ] + [ConvGRU(f"{_RESPONDING}/convGRU{k}", channels, se_respond, recurrent) for k in (5, 6, 7)]
    ups = [
        conv(channels, activation="relu", name=_layer_name(f"{_RESPONDING}/conv{k}"))
        for k in (5, 6, 7)
    ]
    rmg_conv = conv(channels, name=_layer_name("RMG/Conv"))
    rmg_se = SEBlock("RMG/SEBlock", channels)
    rmg_out = conv(3, name=_layer_name("RMG/Conv_1"))

    derain = rainy
    states: list = [None] * 7
    estimates = []
    for s in range(1, stages + 1):
        tag = f"stage{s}"
        new_states = []
        x = derain
        skips = []
        for k in range(4):  # extracting path
            skip = maebs[k](x, f"{tag}_MAEB{k + 1}")
            skips.append(skip)
            x = grus[k](skip, states[k], f"{tag}_convGRU{k + 1}")
            new_states.append(x)
        for k in range(4, 7):  # responding path with symmetric skips M3, M2, M1
            up = ups[k - 4](x)
            x = layers.Add(name=f"{tag}_skip{k + 1}")([up, skips[6 - k]])
            x = grus[k](x, states[k], f"{tag}_convGRU{k + 1}")
            new_states.append(x)
        t = _lrelu(f"{tag}_RMG_lrelu")(rmg_se(rmg_conv(x), f"{tag}_RMG_SE"))
        residual = rmg_out(t)
        derain = layers.Subtract(name=f"{tag}_derain")([derain, residual])
        estimates.append(derain)
        states = new_states
    outputs = {
        "derained": derain,
        "rain": residual,
        "stages": Stack(axis=1, name="stages")(estimates),
    }
    return keras.Model(rainy, outputs, name="remaen")


# --------------------------------------------------------------------------- official weights


def state_dict_from_tf(
    variables: Mapping[str, np.ndarray], bgr_to_rgb: bool = True
) -> dict[str, np.ndarray]:
    """Official TensorFlow variables → the PyTorch-style state dict the converter applies.

    ``<scope>/weights`` becomes ``<scope>.weight`` in PyTorch layout (conv HWIO → OIHW, FC
    (in, out) → (out, in)) and ``<scope>/biases`` becomes ``<scope>.bias``. Optimizer slots
    (``…/Adam``, ``…/Adam_1``) and variables outside ``derainNet/`` (``global_step``, Adam's
    ``beta*_power``) are dropped; anything else is kept as is, so the strict converter reports it.

    Args:
        variables: TF variable name (without ``:0``) → array, e.g. from a checkpoint reader.
        bgr_to_rgb: the official weights expect BGR input (OpenCV); permute the first
            convolution's input channels and the last one's output channels so that the
            converted model takes and returns RGB. Use ``False`` to keep BGR.
    """
    first = f"{ROOT_SCOPE}/{_EXTRACTING}/MAEB1/d1/weights"
    last = f"{ROOT_SCOPE}/RMG/Conv_1/"
    state: dict[str, np.ndarray] = {}
    for name, value in variables.items():
        if not name.startswith(f"{ROOT_SCOPE}/") or name.endswith(("/Adam", "/Adam_1")):
            continue
        array = np.asarray(value)
        if bgr_to_rgb and name == first:
            array = array[:, :, ::-1, :]
        if bgr_to_rgb and name.startswith(last):
            array = array[..., ::-1]
        if name.endswith("/weights"):
            layout = (3, 2, 0, 1) if array.ndim == 4 else (1, 0)
            state[name.removesuffix("/weights") + ".weight"] = np.ascontiguousarray(
                array.transpose(layout)
            )
        elif name.endswith("/biases"):
            state[name.removesuffix("/biases") + ".bias"] = np.ascontiguousarray(array)
        else:
            state[name] = array
    return state


def load_official_checkpoint(
    path: str | os.PathLike, bgr_to_rgb: bool = True
) -> dict[str, np.ndarray]:
    """Read an official TF checkpoint (prefix, or its folder) or an ``.npz`` of its variables.

    Returns the state dict of :func:`state_dict_from_tf`, ready for
    ``tfderain.convert.convert_state_dict("remaen", ...)``.
    """
    name = os.fspath(path)
    try:
        if name.endswith(".npz"):
            with np.load(name) as archive:
                variables = {k: archive[k] for k in archive.files}
        else:
            reader = tf.train.load_checkpoint(name)
            variables = {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()}
    except (OSError, ValueError, tf.errors.OpError) as exc:
        raise ValueError(f"{name}: cannot read a TensorFlow checkpoint ({exc})") from None
    return state_dict_from_tf(variables, bgr_to_rgb=bgr_to_rgb)


__all__ = [
    "MAEB",
    "ConvGRU",
    "ReMAENBatchToSpace",
    "ReMAENSpaceToBatch",
    "SEBlock",
    "load_official_checkpoint",
    "remaen",
    "state_dict_from_tf",
]
