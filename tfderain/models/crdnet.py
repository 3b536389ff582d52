"""CRDNet: the cumulative rain-density sensing network.

Paper: L. Peng, A. Jiang, Q. Yi, M. Wang, "Cumulative Rain Density Sensing Network for Single
Image Derain", IEEE Signal Processing Letters (SPL), 2020 (IEEE document 9001158).
Official code: https://github.com/peylnog/CRDNet (``model_Dense_w_net_modelfy_dialate.py`` with
the block builders of ``networks.py`` and ``get_residue``/``rgb2grad`` of ``Utils/utils.py``).

The network has four parts, four separate modules (and four checkpoint files) officially:

* **Rain-streak branch** (``stage1``, ``Rain_steaks_with_BG``): three encoders of three conv
  blocks each (3→4→8→16 channels, each block ending in a 2×2 max-pool, so 1/8 resolution) that
  differ only in their dilation — plain 3×3 (``conv_3_*``), 3×3 dilated by 2 (``conv_7_*``) and
  3×3 dilated by 3 (``conv_9_*``); the names ``conv_7``/``conv_9`` suggest 7×7 and 9×9 kernels
  but they are dilated 3×3 convolutions. All three encoders feed the **same** decoder
  (``deconv_3_0..2``: 16→8→4→3, each block ending in a nearest ×2 upsampling). The three
  decodings are concatenated (plain, dilation 2, dilation 3) into 9 channels of high-frequency
  rain streaks (with some background).
* **Low-frequency branch** (``stage2``, ``Low_BackGround``, the paper's W-Net): the image plus an
  "insert" channel ``0.8·(max_c x − min_c x) + 0.2·gray(x)`` (residue channel and BT.601 luma)
  goes through an encoder ``e1..e5`` (4→8→…→128 channels, 1/2 … 1/32 resolution), a decoder
  with additive skips from ``e1..e4`` back to full resolution (4 channels), a second encoder
  ``eencode1..5`` whose outputs are added to ``e1..e5``, and a second decoder ``ddecode1..5``
  whose skips again add the *first* encoder's ``e1..e4``. Its 4-channel output is the
  rain-invariant low-frequency background.
* **Refine head** (``refine``): ``conv1(concat[low, high1(rain), x])`` then ``conv2``, each a
  conv-ReLU-conv block without normalisation; the last operation is a convolution.
* **Cumulative rain-density classifier** (``classfy``, ``Classfication``), an auxiliary task
  trained jointly with MSE on the cost-sensitive *cumulative* label encoding: light
  ``[0, 0, 1]``, medium ``[0, 1, 1]``, heavy ``[1, 1, 1]`` (:data:`DENSITY_LABELS`). On
  ``ReLU(rain)`` it runs seven [3×3 conv, ReLU, BatchNorm, 2×2 max-pool] stages (9→16→…→1024
  channels), flattens the 1024×4×4 map in torch's NCHW order and applies Linear 16384→4096,
  ReLU, Linear 4096→1000, ReLU, Linear 1000→3, ReLU. It does not influence ``derained``.

Registry names:
    ``crdnet``: the paper configuration (904,546 parameters in the deraining path, 77,510,275 in
    the classifier, 78,414,821 in total). The classifier's Linear layer expects exactly
    1024×4×4 features, so with ``density=True`` the input must be **512×512** (the official
    training and test size; the registry ``multiple`` is 512 so inference pads smaller images
    to 512×512 like the official test data). Other sizes fail in the ``classfy_flatten``
    reshape.
    ``crdnet_anysize``: the same network and weights (the same key table converts the official
    checkpoint into either), but the classifier's feature map is first average-pooled to 4×4
    bins (torch ``AdaptiveAvgPool2d((4, 4))`` binning, :class:`CRDNetAdaptiveAvgPool`). At
    512×512 the map already is 4×4, the pooling is the identity and the outputs equal
    ``crdnet``'s; at other sizes (multiples of 128, the seven max-pools) the density is an
    extrapolation that the official model was never trained for. This is the variant to use for
    tiled inference of arbitrary images.
    Both builders take ``density=False`` to drop the classifier (a derain-only model; its
    ``derained`` and ``rain`` are unchanged, only multiples of 32 are then needed, and the
    converter skips the checkpoint's ``classfy.*`` keys).

Outputs:
    ``derained``: the refine head's output (not clamped, no residual added; the official test
        converts it to an image directly).
    ``rain``: the rain-streak branch's 9-channel output ``concat[plain, dilation 2, dilation 3]``
        (3 channels each), the classifier's input.
    ``density`` (with ``density=True``): the classifier's 3 cumulative scores after the final
        ReLU. :func:`decode_density` turns them into a level (1 light, 2 medium, 3 heavy),
        :func:`density_estimate` into a continuous value and a level.
    The W-Net output is internal; it is the output of the layer named
    :data:`LOW_BACKGROUND_LAYER`.

Quirks of the official code, all reproduced:
    * **Re-registered BatchNorm/ReLU in the conv blocks.** ``conv_blocks_size_3``,
      ``conv_blocks_size3_dilation2/3`` and ``deconv_blocks_size_3`` call
      ``add_module("bn", …)`` and ``add_module("relu", …)`` after *both* convolutions, but
      re-adding an existing name replaces the module at its original position. Every block
      therefore is ``conv1 → bn → relu → conv2 → [max-pool | nearest ×2]``, without BatchNorm or
      activation after ``conv2`` (and ``conv1 → relu → conv2`` for ``bn=False``). The second
      BatchNorm is not a second name for the first one: it is gone, and the state dict holds
      exactly ``conv1.*``, ``bn.*`` and ``conv2.*`` per block.
    * The deconv blocks are ``ConvTranspose2d(3, stride=1, padding=1)`` (a ``same`` transposed
      convolution, weights in torch's IOHW layout), not strided upsampling convolutions; the
      upsampling is a separate nearest ×2.
    * The three encoders of the rain-streak branch share one decoder module (one set of
      weights, applied three times; one Keras layer per weight here, so it is counted once).
    * The classifier applies ReLU *before* BatchNorm in each stage, a ReLU to its input, and a
      ReLU to its final scores (so a density score can be exactly 0).
    * BatchNorm uses torch's ``eps = 1e-5`` and, at inference, the running statistics.
    * The insert channel assumes RGB order (BT.601 weights 0.299, 0.587, 0.114 on channels
      0, 1, 2).
    * The refine head concatenates ``[low (4), high1(rain) (3), x (3)]`` in this order;
      ``Refine.relu`` exists but is never used. The official ``weights_init_xavier`` calls are
      applied to ``nn.Sequential`` containers and do nothing.

Layer-level details follow the official code, the reference for the released checkpoints; the
quirks above are where the code is more specific than (or may differ from) the paper's figures.

Official checkpoints: the official code saves the four modules to four files without key
prefixes; :func:`merge_official_checkpoints` joins them into one state dict with the prefixes
``stage1.``, ``stage2.``, ``refine.``, ``classfy.`` that the key table uses (Keras layer names are
the official module paths with ``_`` for ``.``). Without the classifier file the converter builds
a derain-only model. The Keras classifier permutes its NHWC features to NCHW before flattening,
so the official Linear weights load unchanged.

Parameter counts: the official figures count ``parameters()`` (no BatchNorm running
statistics); Keras' ``count_params()`` also counts the 2 running statistics per BatchNorm channel
(non-trainable weights). The official count equals the number of *trainable* Keras parameters.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from tfderain._keras import keras, tf
from tfderain.models import DENSITY_LEVELS, Tiny, register
from tfderain.pth import load_state_dict

layers = keras.layers
serializable = keras.saving.register_keras_serializable(package="tfderain")

#: torch ``BatchNorm2d`` default epsilon.
_BN_EPS = 1e-5
#: The classifier's input side in the paper configuration.
PAPER_SIZE = 512
#: The cumulative (cost-sensitive) label encoding used to train the classifier.
DENSITY_LABELS = {"light": (0, 0, 1), "medium": (0, 1, 1), "heavy": (1, 1, 1)}
#: Keras layer whose output is the W-Net (low-frequency background) output, 4 channels.
LOW_BACKGROUND_LAYER = "stage2_ddecode5_Upsamp"

# Channel plans of the official modules.
_STAGE1_ENCODER = (4, 8, 16)
_STAGE1_DECODER = (8, 4, 3)
_STAGE1_DILATIONS = {"conv_3": 1, "conv_7": 2, "conv_9": 3}
_WNET = (8, 16, 32, 64, 128)
_CLASSIFIER = (16, 32, 64, 128, 256, 512, 1024)
_CLASSIFIER_GRID = 4
_CLASSIFIER_MLP = (4096, 1000, 3)


def _name(module: str) -> str:
    return module.replace(".", "_")


# ---------------------------------------------------------------------------------- custom layers


@serializable
class CRDNetInsertImage(layers.Layer):
    """The W-Net's extra input channel: ``0.8·(max_c x − min_c x) + 0.2·gray(x)``.

    ``max_c − min_c`` over the RGB channels is the residue channel (official ``get_residue``) and
    ``gray = 0.299·R + 0.587·G + 0.114·B`` (official ``rgb2grad``). Output: ``(N, H, W, 1)``.
    """

    def call(self, x):
        residue = tf.reduce_max(x, axis=-1, keepdims=True) - tf.reduce_min(
            x, axis=-1, keepdims=True
        )
        gray = 0.299 * x[..., 0:1] + 0.587 * x[..., 1:2] + 0.114 * x[..., 2:3]
        return 0.8 * residue + 0.2 * gray

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)[:-1].concatenate([1])


@serializable
class CRDNetAdaptiveAvgPool(layers.Layer):
    """Average pooling of a map of any size to ``grid × grid`` bins, like torch's
    ``AdaptiveAvgPool2d``: bin ``i`` of an axis of length ``n`` averages positions
    ``floor(i·n/grid) … ceil((i+1)·n/grid) − 1``. A ``grid × grid`` input is returned unchanged.
    """

    def __init__(self, grid: int = _CLASSIFIER_GRID, **kwargs):
        super().__init__(**kwargs)
        self.grid = grid

    def _bins(self, n, dtype):
        """``(grid, n)`` matrix whose row ``i`` averages the positions of bin ``i``."""
        i = tf.range(self.grid)
        start = (i * n) // self.grid
        end = ((i + 1) * n + self.grid - 1) // self.grid
        pos = tf.range(n)
        inside = (pos[None, :] >= start[:, None]) & (pos[None, :] < end[:, None])
        weights = tf.cast(inside, dtype)
        return weights / tf.reduce_sum(weights, axis=1, keepdims=True)

    def call(self, x):
        rows = self._bins(tf.shape(x)[1], x.dtype)
        cols = self._bins(tf.shape(x)[2], x.dtype)
        x = tf.einsum("ih,nhwc->niwc", rows, x)
        return tf.einsum("jw,niwc->nijc", cols, x)

    def compute_output_shape(self, input_shape):
        shape = tf.TensorShape(input_shape)
        return tf.TensorShape([shape[0], self.grid, self.grid, shape[3]])

    def get_config(self):
        return {**super().get_config(), "grid": self.grid}


# ------------------------------------------------------------------------------------------ blocks


class _Block:
    """One official conv/deconv block; calling it again reuses the same layers (and weights).

    ``conv1 → [bn] → relu → conv2 → [Maxpool | Upsamp]`` — the structure the official builders
    actually produce (see the module docstring on the re-registered BatchNorm/ReLU).
    """

    def __init__(
        self,
        module: str,
        filters: int,
        *,
        dilation: int = 1,
        transpose: bool = False,
        bn: bool = True,
        resample: bool = True,
    ):
        tag = _name(module)
        if transpose:

            def make(suffix):
                return layers.Conv2DTranspose(filters, 3, padding="same", name=f"{tag}_{suffix}")

        else:

            def make(suffix):
                return layers.Conv2D(
                    filters, 3, padding="same", dilation_rate=dilation, name=f"{tag}_{suffix}"
                )

        self.layers: list[layers.Layer] = [make("conv1")]
        if bn:
            self.layers.append(layers.BatchNormalization(epsilon=_BN_EPS, name=f"{tag}_bn"))
        self.layers += [layers.ReLU(name=f"{tag}_relu"), make("conv2")]
        if resample and transpose:
            self.layers.append(
                layers.UpSampling2D(2, interpolation="nearest", name=f"{tag}_Upsamp")
            )
        elif resample:
            self.layers.append(layers.MaxPooling2D(2, name=f"{tag}_Maxpool"))

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def _chain(blocks: Sequence[_Block], x):
    for block in blocks:
        x = block(x)
    return x


# ------------------------------------------------------------------------------------ the branches


def rain_streak_branch(x):
    """``stage1``: three dilated encoders, one shared decoder, concatenated to 9 channels."""
    decoder = [
        _Block(f"stage1.deconv_3_{k}", c, transpose=True) for k, c in enumerate(_STAGE1_DECODER)
    ]
    outs = []
    for enc, dilation in _STAGE1_DILATIONS.items():
        encoder = [
            _Block(f"stage1.{enc}_{k}", c, dilation=dilation) for k, c in enumerate(_STAGE1_ENCODER)
        ]
        outs.append(_chain(decoder, _chain(encoder, x)))
    return layers.Concatenate(name="stage1_cat")(outs)


def w_net(x):
    """``stage2``: the W-Net low-frequency branch (4-channel output at full resolution)."""
    insert = CRDNetInsertImage(name="stage2_insert_img")(x)
    x = layers.Concatenate(name="stage2_input")([x, insert])

    def add(tag, a, b):
        return layers.Add(name=f"stage2_{tag}")([a, b])

    encode = [_Block(f"stage2.encode{k + 1}", c) for k, c in enumerate(_WNET)]
    e = []
    for block in encode:
        x = block(x)
        e.append(x)
    # First decoder: decode2..decode6, skips from e4..e1.
    d = x
    for k, c in enumerate(reversed(_WNET[:-1])):  # 64, 32, 16, 8
        d = add(
            f"decode{k + 2}_skip", e[3 - k], _Block(f"stage2.decode{k + 2}", c, transpose=True)(d)
        )
    d = _Block("stage2.decode6", 4, transpose=True)(d)
    # Second encoder: eencode1..5, each output plus the first encoder's feature.
    for k, c in enumerate(_WNET):
        d = add(f"eencode{k + 1}_skip", _Block(f"stage2.eencode{k + 1}", c)(d), e[k])
    # Second decoder: ddecode1..4 with skips from the FIRST encoder (e4..e1), then ddecode5.
    for k, c in enumerate(reversed(_WNET[:-1])):
        up = _Block(f"stage2.ddecode{k + 1}", c, transpose=True)(d)
        d = add(f"ddecode{k + 1}_skip", e[3 - k], up)
    return _Block("stage2.ddecode5", 4, transpose=True)(d)


def refine_head(rain, low, x):
    """``refine``: ``conv2(conv1(concat[low, high1(rain), x]))``; no final activation."""
    high = _Block("refine.high1", 3, bn=False, resample=False)(rain)
    z = layers.Concatenate(name="refine_cat")([low, high, x])
    z = _Block("refine.conv1", 5, bn=False, resample=False)(z)
    return _Block("refine.conv2", 3, bn=False, resample=False)(z)


def density_classifier(rain, any_size: bool):
    """``classfy``: the cumulative rain-density classifier on the rain-streak features."""
    x = layers.ReLU(name="classfy_relu")(rain)
    for k, c in enumerate(_CLASSIFIER):
        i = 4 * k
        x = layers.Conv2D(c, 3, padding="same", activation="relu", name=f"classfy_features_{i}")(x)
        x = layers.BatchNormalization(epsilon=_BN_EPS, name=f"classfy_features_{i + 2}")(x)
        x = layers.MaxPooling2D(2, name=f"classfy_features_{i + 3}")(x)
    if any_size:
        x = CRDNetAdaptiveAvgPool(_CLASSIFIER_GRID, name="classfy_pool")(x)
    # torch flattens NCHW: channels first, then rows, then columns.
    x = layers.Permute((3, 1, 2), name="classfy_nchw")(x)
    x = layers.Reshape((_CLASSIFIER[-1] * _CLASSIFIER_GRID**2,), name="classfy_flatten")(x)
    for k, units in enumerate(_CLASSIFIER_MLP):
        x = layers.Dense(units, activation="relu", name=f"classfy_classfier_{2 * k}")(x)
    return x


def _crdnet(name: str, density: bool, any_size: bool) -> keras.Model:
    x = keras.Input((None, None, 3), name="rainy")
    rain = rain_streak_branch(x)
    low = w_net(x)
    outputs = {"derained": refine_head(rain, low, x), "rain": rain}
    if density:
        outputs["density"] = density_classifier(rain, any_size)
    return keras.Model(x, outputs, name=name)


# --------------------------------------------------------------------------- checkpoint conversion


def _block_table(module: str, bn: bool = True) -> dict[str, str]:
    parts = ("conv1", "bn", "conv2") if bn else ("conv1", "conv2")
    return {f"{_name(module)}_{p}": f"{module}.{p}" for p in parts}


def _key_map(density: bool = True) -> dict[str, str]:
    """Keras layer name → official module prefix (``stage1.``, ``stage2.``, ``refine.``, …)."""
    blocks = [f"stage1.{e}_{k}" for e in _STAGE1_DILATIONS for k in range(3)]
    blocks += [f"stage1.deconv_3_{k}" for k in range(3)]
    for leg in ("encode", "eencode", "ddecode"):
        blocks += [f"stage2.{leg}{k}" for k in range(1, 6)]
    blocks += [f"stage2.decode{k}" for k in range(2, 7)]
    table: dict[str, str] = {}
    for module in blocks:
        table.update(_block_table(module))
    for module in ("refine.high1", "refine.conv1", "refine.conv2"):
        table.update(_block_table(module, bn=False))
    if density:
        indices = [i for k in range(len(_CLASSIFIER)) for i in (4 * k, 4 * k + 2)]
        table.update({f"classfy_features_{i}": f"classfy.features.{i}" for i in indices})
        table.update({f"classfy_classfier_{2 * k}": f"classfy.classfier.{2 * k}" for k in range(3)})
    return table


def _ignore_keys(density: bool = True) -> tuple[str, ...]:
    """A derain-only model skips the classifier's weights in a full checkpoint."""
    return () if density else ("classfy.",)


def _infer_config(state_dict: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """A checkpoint without any ``classfy.*`` tensors converts into a derain-only model."""
    return {"density": any(k.startswith("classfy.") for k in state_dict)}


def merge_official_checkpoints(
    stage1: str | os.PathLike | Mapping[str, np.ndarray],
    stage2: str | os.PathLike | Mapping[str, np.ndarray],
    refine: str | os.PathLike | Mapping[str, np.ndarray],
    classfy: str | os.PathLike | Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """One state dict from the four official checkpoint files (or state dicts).

    The official code saves each module separately (``stage1/``, ``stage2/``, ``derain/`` (the
    refine head) and ``classfy/`` folders, ``{"epoch", "state_dict"}`` without module prefix);
    the converter expects the keys prefixed ``stage1.``, ``stage2.``, ``refine.``, ``classfy.``.
    Without ``classfy`` the result converts into a derain-only model.
    """
    merged: dict[str, np.ndarray] = {}
    parts = {"stage1": stage1, "stage2": stage2, "refine": refine, "classfy": classfy}
    for prefix, source in parts.items():
        if source is None:
            continue
        sd = source if isinstance(source, Mapping) else load_state_dict(source)
        merged.update({f"{prefix}.{k}": np.asarray(v) for k, v in sd.items()})
    return merged


def decode_density(cumulative: np.ndarray | Sequence[float], threshold: float = 0.5) -> np.ndarray:
    """Density levels from cumulative scores ``(..., 3)``: 1 light, 2 medium, 3 heavy.

    The level is the number of scores, counted from the last one, that reach ``threshold``
    without interruption (``[0, 0, 1]`` → 1, ``[0, 1, 1]`` → 2, ``[1, 1, 1]`` → 3). A
    non-cumulative answer such as ``[1, 0, 1]`` decodes to the level its consistent tail gives
    (1); 0 means even the lightest level was not reached. ``DENSITY_LEVELS[level - 1]`` names it.
    """
    scores = np.asarray(cumulative, dtype=np.float64)
    if scores.shape[-1:] != (3,):
        raise ValueError(f"expected cumulative scores with last axis 3, got shape {scores.shape}")
    reached = scores[..., ::-1] >= threshold
    return np.cumprod(reached, axis=-1).sum(axis=-1).astype(np.int64)


def density_estimate(cumulative: np.ndarray | Sequence[float]) -> tuple[float, int]:
    """``(value, level)`` of one image's cumulative scores (the registry's ``density_decoder``).

    Level: :func:`decode_density` (threshold 0.5), 1 light, 2 medium, 3 heavy, returned as the
    index 0, 1, 2 of :data:`DENSITY_LEVELS`. A decoded 0 (even the light score is below 0.5)
    counts as light, the lightest level the classifier knows.

    Value: the mean of the three scores clipped to [0, 1], i.e. the fraction of the cumulative
    steps reached: 0 for ``[0, 0, 0]``, 1/3 for the light code ``[0, 0, 1]``, 2/3 for medium
    ``[0, 1, 1]`` and 1 for heavy ``[1, 1, 1]``, and it grows with every score in between.

    The estimate expects the classifier's input size, 512×512: density estimation resizes the
    whole image to it (the registry's ``density_size``), also for ``crdnet_anysize``, whose
    classifier was trained at that size too.
    """
    scores = np.asarray(cumulative, dtype=np.float64)
    if scores.shape != (3,):
        raise ValueError(f"expected the 3 cumulative scores of one image, got shape {scores.shape}")
    value = float(np.clip(scores, 0.0, 1.0).mean())
    level = max(int(decode_density(scores)), 1) - 1
    return value, level


# ----------------------------------------------------------------------------------- registration

_SPEC: dict[str, Any] = {
    "halo": 96,
    "key_map": _key_map,
    "infer_config": _infer_config,
    "ignore_keys": _ignore_keys,
    "outputs": ("derained", "rain", "density"),
    "density_aware": True,
    "density_decoder": density_estimate,
    "density_size": PAPER_SIZE,
}


def _register(
    name: str, multiple: int, any_size: bool, description: str, tiny: Tiny | None = None
) -> Callable:
    @register(name, multiple=multiple, description=description, tiny=tiny, **_SPEC)
    def builder(density: bool = True) -> keras.Model:
        return _crdnet(name, density=density, any_size=any_size)

    builder.__name__ = name
    return builder


crdnet = _register(
    "crdnet",
    PAPER_SIZE,
    any_size=False,
    description="CRDNet (SPL 2020): W-Net + rain streaks + cumulative density; 512x512 input",
)
crdnet.__doc__ = """CRDNet as published: the classifier needs 512×512 inputs.

Args:
    density: include the cumulative rain-density classifier (output ``density``); without it
        the model is derain-only and accepts any multiple of 32.
"""

crdnet_anysize = _register(
    "crdnet_anysize",
    128,
    any_size=True,
    description="CRDNet, 4x4 adaptive pooling before the classifier MLP: any size, tiling",
    # No width options (the official network is fixed): its smallest input. crdnet itself has
    # no reduced config, its classifier takes 512×512 inputs only.
    tiny=Tiny({"density": True}, 128),
)
crdnet_anysize.__doc__ = """CRDNet for any input size (multiples of 128): adaptive 4×4 pooling.

Same weights as ``crdnet``; identical outputs at 512×512.

Args:
    density: include the cumulative rain-density classifier (output ``density``).
"""

__all__ = [
    "DENSITY_LABELS",
    "DENSITY_LEVELS",
    "LOW_BACKGROUND_LAYER",
    "CRDNetAdaptiveAvgPool",
    "CRDNetInsertImage",
    "crdnet",
    "crdnet_anysize",
    "decode_density",
    "density_estimate",
    "merge_official_checkpoints",
]
