"""DID-MDN: density-aware single image deraining with a multi-stream dense network.

Paper: H. Zhang, V. M. Patel, "Density-aware Single Image De-raining using a Multi-stream Dense
Network", CVPR 2018. Official code: https://github.com/hezhangsprinter/DID-MDN
(``models/derain_dense.py``: ``Dense_rain``, ``vgg19ca``; ``models/derain_residual.py``:
``Dense_rain_residual``; the pipeline is ``test.py``).

The official method is three networks, trained and released as three checkpoints:

* **Residue network** (``Dense_rain_residual``): a smaller three-stream dense network run with
  density label 0; ``x − residue_net(x, 0)`` is the *residue* that the classifier looks at.
* **Rain-density classifier** (``vgg19ca``): the first three layers of VGG-19-BN
  (conv 3→64, BatchNorm, ReLU), a 3×3 conv to 24 channels, ReLU, 7×7 average pooling
  (512×512 → 73×73), flatten in torch's NCHW order, Linear 127,896→512, ReLU, Linear 512→4.
  Classes: 0 heavy, 1 medium, 2 light (:data:`DENSITY_CLASSES`); logit 3 is never a target.
* **Density-aware multi-stream dense network** (``Dense_rain``, the paper's DID-MDN): three
  dense streams with 3×3, 5×5 and 7×7 convolutions (``dense0``, ``dense1``, ``dense2``) that
  downsample to 1/2, 1/4 and 1/8 resolution and back; their outputs, the input and the density
  label broadcast to a constant 8-channel map are concatenated (47 channels), refined by a 3×3
  convolution, enriched by a four-level pyramid pooling (average pooling 32, 16, 8, 4 → 1×1
  conv → nearest upsampling), and mapped to the rain residual; the clean estimate
  ``x − residual`` goes through two refinement convolutions.

Every network works on images in [-1, 1] (the official data pipeline normalises with mean 0.5 and
std 0.5). The Keras models take RGB in [0, 1] like every tfderain model: a ``Rescaling(2, -1)``
layer (``input_scale``) maps the input to [-1, 1] and a ``Rescaling(0.5, 0.5)`` layer
(``output_scale``) maps the tanh output back to [0, 1].

Registry names:
    ``didmdn``: the official pipeline residue network → classifier → label → deraining network as
    one functional model (paper config: 65,969,929 trainable parameters — 365,236 deraining,
    65,501,084 classifier, 103,609 residue network; the official ``Dense_rain_residual`` has
    109,205 of which 5,596 sit in unused modules). The classifier's Linear layer needs a
    73×73×24 feature map, i.e. a 512×512 input; the official test resizes every image to
    512×512 first. Here the residue is resized to 512×512 (bilinear ``Resizing`` layer, the
    identity at 512×512) in front of the classifier, so the model runs at any multiple of 32 and
    reproduces the official pipeline exactly on 512×512 inputs; at other sizes the official
    protocol would resize the whole image (and derain at 512×512), so there the density is
    estimated from a resized residue instead of the residue of a resized image. Options:
    ``label_offset`` (see the label quirk below) and ``batchnorm_train_mode``. Its converter
    expects the three official checkpoints merged by :func:`merge_official_checkpoints` (key
    prefixes ``derain.``, ``classifier.``, ``residue.``).
    ``didmdn_derain``: the deraining network alone with a fixed density ``label`` (a builder
    option, default 2), converting ``Dense_rain`` checkpoints as saved (no prefix); 365,236
    trainable parameters. A fixed label keeps the model a plain image → image function, which is
    what tiled inference needs (with ``didmdn`` every tile gets its own density estimate).

Outputs:
    ``derained``: ``(clean2 + 1) / 2``, the refined clean estimate in [0, 1] (tanh range, so no
        clipping is needed; the official test instead min-max normalises each image to [0, 1]).
    ``rain``: the estimated rain-streak layer in image units, ``residual / 2``, so that
        ``rainy − rain`` is the clean estimate before the two refinement convolutions.
    ``density`` (``didmdn`` only): the classifier's 4 raw logits ``(N, 4)``;
        :func:`density_label` turns them into the label the deraining network received,
        :func:`density_names` into class names and :func:`density_estimate` into a continuous
        value and a level.

Quirks of the official code, all reproduced unless stated:
    * **Copied side maps.** Each stream's forward computes its five 1-channel side maps
      ``x11 … x51`` all with ``conv11`` on ``x1`` (so the five maps are identical); ``conv21 …
      conv61`` exist but are never used, nor are ``conv_refin``/``refine3``/``batchnorm20``/
      ``batchnorm1`` of ``dense1``/``dense2`` and ``Dense_rain.batchnorm20``/``batchnorm1``
      (7,603 of the official 372,839 parameters; likewise the residue network's unused
      ``conv_refin``, ``conv1010 … conv1040``, ``refine3`` and BatchNorms). The converter skips
      those keys on purpose (``ignore_keys``); the Keras models do not contain them.
    * **Transitions are 1×1 transposed convolutions** (``ConvTranspose2d``, weights
      ``[in, out, 1, 1]``), reproduced with ``Conv2DTranspose(1)``; the resampling (2×2 average
      pooling or nearest ×2) comes after the convolution.
    * **Label value.** The label is a raw number broadcast into a constant map (not one-hot, not
      normalised). The classifier was trained with 0 heavy, 1 medium, 2 light and the deraining
      network with the same dataset labels (``derain_train_2018.py``), but the official test
      feeds ``argmax(softmax(logits)) + 1`` to the deraining network (1 heavy, 2 medium,
      3 light). ``didmdn`` follows the test script (``label_offset=1``); ``label_offset=0`` gives
      the training convention.
    * **BatchNorm in train mode.** The README asks to test with ``netG.train()`` and ``test.py``
      never calls ``eval()``, so the official results normalise every BatchNorm with the
      statistics of the single test image. The builders default to inference BatchNorm (running
      statistics); ``batchnorm_train_mode=True`` reproduces the official test behaviour with a
      per-image, per-channel normalisation (:class:`DIDMDNInstanceNorm`, which is train-mode
      BatchNorm of a batch of one) carrying the BatchNorm's scale and shift (the running
      statistics are then unused and not loaded). Its results do not depend on the other images
      of a batch, but they do depend on the image (tile) size.
    * **Square inputs, batch size 1.** The official forward builds the label map from the input
      width only and with batch size 1; here the label map follows the input's batch, height and
      width, so rectangular images and batches work (each image gets its own label in
      ``didmdn``). ``Dense_rain.forward`` also concatenates a 1-channel label map to the input
      and then overwrites the result (dead code, left out).
    * **Sizes.** The official network needs heights divisible by 8 and at least 32; the pyramid
      pooling floors and upsamples back to the input size. Here height and width must be
      multiples of 32 (registry ``multiple``), where the pyramid pooling and upsampling are exact
      built-in ``AveragePooling2D``/``UpSampling2D`` layers.
    * The classifier flattens its 73×73×24 map in NCHW order (a ``Permute`` before
      ``Flatten``), so the official Linear weights load unchanged.
    * All BatchNorms use torch's ``eps = 1e-5``; activations are ReLU inside the dense and
      transition blocks, LeakyReLU(0.2) elsewhere, tanh on the residual and the refined output.

Parameter counts: the official counts are ``parameters()``; BatchNorm running statistics are
buffers there and non-trainable weights in Keras, so the official figures equal the *trainable*
Keras parameters (minus the unused modules above).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tfderain._keras import keras, tf
from tfderain.models import DENSITY_LEVELS, Tiny, register
from tfderain.models.blocks import module_name
from tfderain.pth import load_state_dict

layers = keras.layers
serializable = keras.saving.register_keras_serializable(package="tfderain")

#: torch ``BatchNorm2d`` default epsilon.
BN_EPS = 1e-5
#: Negative slope of the official LeakyReLUs.
LEAK = 0.2
#: Input side of the classifier (its Linear layer expects 24 × 73 × 73 features).
CLASSIFIER_SIZE = 512
#: The classifier's classes 0, 1, 2 (its fourth logit is never a training target).
DENSITY_CLASSES = tuple(reversed(DENSITY_LEVELS))  # the official label order, heaviest first
#: ``test.py`` passes ``argmax + 1`` to the deraining network.
OFFICIAL_LABEL_OFFSET = 1
#: Default fixed label of ``didmdn_derain`` (medium rain under the official test convention).
DEFAULT_LABEL = 2
#: Pyramid pooling sizes of the head, with their official 1×1 convolutions.
_PYRAMID = {"conv1010": 32, "conv1020": 16, "conv1030": 8, "conv1040": 4}
#: Keras layer name prefixes of the sub-networks in ``didmdn``; the deraining network has none.
RESIDUE_PREFIX = "residue_"
CLASSIFIER_PREFIX = "classifier_"


# ------------------------------------------------------------------------------ network tables


@dataclass(frozen=True)
class _Stream:
    """One dense stream: six bottleneck blocks, each followed by a transition.

    ``growth[i]``: channels the i-th bottleneck block adds (its output is ``concat[x, new]``).
    ``transitions[i]``: ``(channels, "down" | "same" | "up")`` of the i-th transition.
    ``merge``: how the 4th and 5th transitions' outputs join the 2nd and 1st
    (``"concat"``: ``cat[t, skip]``, ``"add"``: ``t + skip``).
    ``side_maps``: append five (identical) LeakyReLU(conv11(x1)) maps and the input.
    """

    kernel: int
    growth: tuple[int, ...]
    transitions: tuple[tuple[int, str], ...]
    merge: str
    side_maps: bool


@dataclass(frozen=True)
class _Network:
    """A stream network with the official pyramid-pooling head."""

    streams: Mapping[str, _Stream]
    label_channels: int
    refine_width: int  # conv_refin output channels
    pyramid_width: int  # output channels of each conv10x0
    clean_refinement: bool  # refineclean1/2 after ``x - residual``
    unused: tuple[str, ...]  # official modules the forward never uses


_DENSE_GROWTH = (13, 16, 16, 16, 8, 8)

#: ``Dense_rain`` (``derain_dense.py``): the paper's multi-stream dense network.
DERAIN = _Network(
    streams={
        "dense0": _Stream(
            3,
            (5, 8, 4, 4, 8, 8),
            ((4, "down"), (12, "same"), (12, "same"), (12, "same"), (4, "same"), (4, "up")),
            "concat",
            True,
        ),
        "dense1": _Stream(
            5,
            _DENSE_GROWTH,
            ((8, "down"), (16, "down"), (16, "same"), (16, "same"), (8, "up"), (4, "up")),
            "concat",
            True,
        ),
        "dense2": _Stream(
            7,
            _DENSE_GROWTH,
            ((8, "down"), (16, "down"), (16, "down"), (16, "up"), (8, "up"), (4, "up")),
            "concat",
            True,
        ),
    },
    label_channels=8,
    refine_width=47,
    pyramid_width=2,
    clean_refinement=True,
    unused=(
        "batchnorm1",
        "batchnorm20",
        *(f"dense{s}.conv{i}1" for s in range(3) for i in range(2, 7)),
        *(f"dense{s}.{m}" for s in (1, 2) for m in ("batchnorm1", "batchnorm20")),
        *(f"dense{s}.{m}" for s in (1, 2) for m in ("conv_refin", "refine3")),
    ),
)

#: ``Dense_rain_residual`` (``derain_residual.py``): the residue network in front of the classifier.
RESIDUE = _Network(
    streams={
        "dense0": _Stream(
            3,
            (5, 8, 4, 4, 8, 8),
            ((4, "same"), (12, "same"), (12, "same"), (12, "same"), (4, "same"), (2, "same")),
            "add",
            False,
        ),
        "dense1": _Stream(
            3,
            _DENSE_GROWTH,
            ((8, "down"), (16, "same"), (16, "same"), (16, "same"), (8, "same"), (2, "up")),
            "add",
            False,
        ),
        "dense2": _Stream(
            3,
            _DENSE_GROWTH,
            ((8, "down"), (16, "down"), (16, "same"), (16, "same"), (8, "up"), (2, "up")),
            "add",
            False,
        ),
    },
    label_channels=4,
    refine_width=20,
    pyramid_width=1,
    clean_refinement=False,
    unused=(
        "batchnorm1",
        "batchnorm20",
        *(
            f"dense{s}.{m}"
            for s in (1, 2)
            for m in ("batchnorm1", "batchnorm20", "conv_refin", "refine3", *_PYRAMID)
        ),
    ),
)

#: The residue network always runs with label 0 in the official pipeline.
RESIDUE_LABEL = 0


def _stream_modules(name: str, stream: _Stream) -> list[tuple[str, str]]:
    """``(official module, kind)`` of a stream's modules with weights (``norm`` or ``conv``)."""
    modules = []
    for i in range(1, 7):
        block, trans = f"{name}.dense_block{i}", f"{name}.trans_block{i}"
        modules += [(f"{block}.bn1", "norm"), (f"{block}.conv1", "conv")]
        modules += [(f"{block}.bn2", "norm"), (f"{block}.conv2", "conv")]
        modules += [(f"{trans}.bn1", "norm"), (f"{trans}.conv1", "conv")]
    if stream.side_maps:
        modules.append((f"{name}.conv11", "conv"))
    return modules


def _network_modules(net: _Network) -> list[tuple[str, str]]:
    modules = [m for name, s in net.streams.items() for m in _stream_modules(name, s)]
    head = ["conv_refin", *_PYRAMID, "refine3"]
    head += ["refineclean1", "refineclean2"] if net.clean_refinement else []
    return modules + [(m, "conv") for m in head]


_CLASSIFIER_MODULES = [
    ("feature.0", "conv"),
    ("feature.1", "norm"),
    ("conv16", "conv"),
    ("dense_classifier", "dense"),
    ("dense_classifier1", "dense"),
]


# ---------------------------------------------------------------------------------- custom layers


@serializable
class DIDMDNLabelMap(layers.Layer):
    """The density label as a constant ``(N, H, W, channels)`` map, H and W those of ``x``.

    With a fixed ``label`` the layer is called on ``x`` alone; with ``label=None`` it is called
    on ``[x, labels]`` where ``labels`` has shape ``(N,)`` (one value per image).
    """

    QUANTIZE = "output"

    def __init__(self, channels: int, label: float | None = None, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.label = None if label is None else float(label)

    def call(self, inputs):
        if self.label is None:
            x, labels = inputs
            values = tf.cast(tf.reshape(labels, [-1, 1, 1, 1]), x.dtype)
        else:
            x, values = inputs, tf.constant(self.label, dtype=inputs.dtype)
        shape = tf.concat([tf.shape(x)[:-1], [self.channels]], axis=0)
        return tf.ones(shape, dtype=x.dtype) * values

    def compute_output_shape(self, input_shape):
        shape = input_shape[0] if self.label is None else input_shape
        return tf.TensorShape(shape)[:-1].concatenate([self.channels])

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "label": self.label}


@serializable
class DIDMDNDensityLabel(layers.Layer):
    """``argmax(logits) + offset`` as float32 ``(N,)``: the label the official test feeds on."""

    def __init__(self, offset: int = OFFICIAL_LABEL_OFFSET, **kwargs):
        super().__init__(**kwargs)
        self.offset = offset

    def call(self, logits):
        index = tf.argmax(logits, axis=-1, output_type=tf.int32)
        return tf.cast(index + self.offset, tf.float32)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)[:-1]

    def get_config(self):
        return {**super().get_config(), "offset": self.offset}


@serializable
class DIDMDNInstanceNorm(layers.Layer):
    """torch ``BatchNorm2d`` in train mode for a batch of one, applied to each image separately.

    Every channel of every image is normalised with its own mean and biased variance over the
    pixels, then scaled by ``gamma`` (torch ``weight``) and shifted by ``beta`` (``bias``). The
    pixels are moved to the innermost axis before reducing: TensorFlow sums an inner axis by
    tree reduction but accumulates outer axes sequentially, which over 512×512 pixels costs
    about 1e-5 relative error in the mean (amplified by the normalisations that follow).
    """

    TORCH_PARAMS = ("weight", "bias")

    def __init__(self, epsilon: float = BN_EPS, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.gamma = self.add_weight(name="gamma", shape=(channels,), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(channels,), initializer="zeros")
        super().build(input_shape)

    def call(self, x):
        shape = tf.shape(x)
        pixels_last = tf.transpose(tf.reshape(x, [shape[0], -1, shape[3]]), [0, 2, 1])
        mean = tf.reduce_mean(pixels_last, axis=-1)  # (N, C)
        variance = tf.reduce_mean(tf.square(pixels_last - mean[..., None]), axis=-1)
        scale = self.gamma * tf.math.rsqrt(variance + self.epsilon)
        return (x - mean[:, None, None, :]) * scale[:, None, None, :] + self.beta

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


# ------------------------------------------------------------------------------------- networks


def _norm(name: str, batchnorm_train_mode: bool) -> layers.Layer:
    """torch ``BatchNorm2d``: running statistics, or this image's statistics (train mode)."""
    if batchnorm_train_mode:
        return DIDMDNInstanceNorm(epsilon=BN_EPS, name=name)
    return layers.BatchNormalization(epsilon=BN_EPS, momentum=0.9, name=name)


class _Builder:
    """Adds one official network to a functional graph; ``prefix`` keeps Keras names unique."""

    def __init__(self, prefix: str, batchnorm_train_mode: bool):
        self.prefix = prefix
        self.train_mode = batchnorm_train_mode

    def name(self, module: str) -> str:
        return self.prefix + module_name(module)

    def norm_relu(self, x, module: str):
        x = _norm(self.name(module), self.train_mode)(x)
        return layers.ReLU(name=f"{self.name(module)}_relu")(x)

    def bottleneck(self, x, module: str, growth: int, kernel: int):
        """``BottleneckBlock``: ``cat[x, conv_k(relu(bn2(conv1x1(relu(bn1(x))))))]``."""
        h = self.norm_relu(x, f"{module}.bn1")
        h = layers.Conv2D(4 * growth, 1, use_bias=False, name=self.name(f"{module}.conv1"))(h)
        h = self.norm_relu(h, f"{module}.bn2")
        h = layers.Conv2D(
            growth, kernel, padding="same", use_bias=False, name=self.name(f"{module}.conv2")
        )(h)
        return layers.Concatenate(name=self.name(f"{module}.cat"))([x, h])

    def transition(self, x, module: str, channels: int, kind: str):
        """``TransitionBlock1/3/``: BN, ReLU, 1×1 transposed conv, then down / same / up."""
        h = self.norm_relu(x, f"{module}.bn1")
        h = layers.Conv2DTranspose(channels, 1, use_bias=False, name=self.name(f"{module}.conv1"))(
            h
        )
        if kind == "down":
            return layers.AveragePooling2D(2, name=self.name(f"{module}.down"))(h)
        if kind == "up":
            return layers.UpSampling2D(2, name=self.name(f"{module}.up"))(h)
        return h

    def stream(self, x, name: str, stream: _Stream):
        """``Dense_base_down0/1/2``: x1 … x6 with the two long skips (and the side maps)."""
        feats = []
        h = x
        for i in range(1, 7):
            h = self.bottleneck(h, f"{name}.dense_block{i}", stream.growth[i - 1], stream.kernel)
            h = self.transition(h, f"{name}.trans_block{i}", *stream.transitions[i - 1])
            if i in (4, 5):
                skip = feats[5 - i]  # x4 joins x2, x5 joins x1
                tag = self.name(f"{name}.x{i}")
                if stream.merge == "add":
                    h = layers.Add(name=tag)([h, skip])
                else:
                    h = layers.Concatenate(name=tag)([h, skip])
            feats.append(h)
        if not stream.side_maps:
            return h
        side = layers.Conv2D(1, 3, padding="same", name=self.name(f"{name}.conv11"))(feats[0])
        side = layers.LeakyReLU(LEAK, name=self.name(f"{name}.conv11_act"))(side)
        side = layers.UpSampling2D(2, name=self.name(f"{name}.conv11_up"))(side)
        return layers.Concatenate(name=self.name(f"{name}.out"))([h, *[side] * 5, x])

    def network(self, x, net: _Network, label_map):
        """Three streams and the head; returns ``(residual, clean2 or None)`` in [-1, 1]."""
        streams = {name: self.stream(x, name, s) for name, s in net.streams.items()}
        x8 = layers.Concatenate(name=self.name("x8"))(
            [streams["dense0"], x, streams["dense1"], streams["dense2"], label_map]
        )
        x9 = layers.Conv2D(net.refine_width, 3, padding="same", name=self.name("conv_refin"))(x8)
        x9 = layers.LeakyReLU(LEAK, name=self.name("conv_refin_act"))(x9)
        pyramid = []
        for conv, size in _PYRAMID.items():
            p = layers.AveragePooling2D(size, name=self.name(f"{conv}_pool"))(x9)
            p = layers.Conv2D(net.pyramid_width, 1, name=self.name(conv))(p)
            p = layers.LeakyReLU(LEAK, name=self.name(f"{conv}_act"))(p)
            pyramid.append(layers.UpSampling2D(size, name=self.name(f"{conv}_up"))(p))
        dehaze = layers.Concatenate(name=self.name("dehaze"))([*pyramid, x9])
        residual = layers.Conv2D(3, 3, padding="same", name=self.name("refine3"))(dehaze)
        residual = layers.Activation("tanh", name=self.name("residual"))(residual)
        if not net.clean_refinement:
            return residual, None
        clean = layers.Subtract(name=self.name("clean"))([x, residual])
        clean = layers.Conv2D(8, 7, padding="same", name=self.name("refineclean1"))(clean)
        clean = layers.LeakyReLU(LEAK, name=self.name("refineclean1_act"))(clean)
        clean = layers.Conv2D(3, 3, padding="same", name=self.name("refineclean2"))(clean)
        return residual, layers.Activation("tanh", name=self.name("clean2"))(clean)

    def classifier(self, x):
        """``vgg19ca`` on a [-1, 1] tensor of 511 … 517 pixels a side; returns the 4 logits."""
        h = layers.Conv2D(64, 3, padding="same", name=self.name("feature.0"))(x)
        h = self.norm_relu(h, "feature.1")
        h = layers.Conv2D(24, 3, padding="same", name=self.name("conv16"))(h)
        h = layers.ReLU(name=self.name("conv16_relu"))(h)
        h = layers.AveragePooling2D(7, name=self.name("pool"))(h)
        h = layers.Permute((3, 1, 2), name=self.name("nchw"))(h)
        h = layers.Flatten(name=self.name("flatten"))(h)
        h = layers.Dense(512, activation="relu", name=self.name("dense_classifier"))(h)
        return layers.Dense(4, name=self.name("dense_classifier1"))(h)


def _outputs(residual, clean2) -> dict[str, Any]:
    return {
        "derained": layers.Rescaling(0.5, offset=0.5, name="output_scale")(clean2),
        "rain": layers.Rescaling(0.5, name="rain_scale")(residual),
    }


def _check_label(label: Any) -> float:
    if isinstance(label, bool) or not isinstance(label, (int, float, np.integer, np.floating)):
        raise ValueError(f"label must be a number (0, 1, 2, …), got {label!r}")
    if not np.isfinite(label):
        raise ValueError(f"label must be finite, got {label!r}")
    return float(label)


def build_derain_network(
    label: float = DEFAULT_LABEL, batchnorm_train_mode: bool = False, name: str = "didmdn_derain"
) -> keras.Model:
    """``Dense_rain`` with a fixed density ``label``: RGB [0, 1] → ``derained``, ``rain``."""
    label = _check_label(label)
    rainy = keras.Input((None, None, 3), name="rainy")
    x = layers.Rescaling(2.0, offset=-1.0, name="input_scale")(rainy)
    label_map = DIDMDNLabelMap(DERAIN.label_channels, label, name="label_map")(x)
    residual, clean2 = _Builder("", batchnorm_train_mode).network(x, DERAIN, label_map)
    return keras.Model(rainy, _outputs(residual, clean2), name=name)


def build_density_classifier(
    batchnorm_train_mode: bool = False, name: str = "didmdn_classifier"
) -> keras.Model:
    """``vgg19ca`` alone: a 512×512 tensor in the networks' [-1, 1] units → ``(N, 4)`` logits.

    Officially its input is the residue ``x − Dense_rain_residual(x, 0)``, not an image; layer
    names carry :data:`CLASSIFIER_PREFIX` as inside ``didmdn``.
    """
    x = keras.Input((CLASSIFIER_SIZE, CLASSIFIER_SIZE, 3), name="residue")
    logits = _Builder(CLASSIFIER_PREFIX, batchnorm_train_mode).classifier(x)
    return keras.Model(x, logits, name=name)


def build_residue_network(
    batchnorm_train_mode: bool = False, name: str = "didmdn_residue"
) -> keras.Model:
    """``Dense_rain_residual`` with label 0: a [-1, 1] image → its [-1, 1] output.

    The official pipeline feeds ``x − output`` to the classifier; layer names carry
    :data:`RESIDUE_PREFIX` as inside ``didmdn``.
    """
    x = keras.Input((None, None, 3), name="rainy_scaled")
    label_map = DIDMDNLabelMap(RESIDUE.label_channels, RESIDUE_LABEL, name="residue_label_map")(x)
    residual, _ = _Builder(RESIDUE_PREFIX, batchnorm_train_mode).network(x, RESIDUE, label_map)
    return keras.Model(x, residual, name=name)


def build_pipeline(
    label_offset: int = OFFICIAL_LABEL_OFFSET, batchnorm_train_mode: bool = False
) -> keras.Model:
    """Residue network → classifier → label → ``Dense_rain``, one functional model."""
    if isinstance(label_offset, bool) or not isinstance(label_offset, (int, np.integer)):
        raise ValueError(f"label_offset must be an integer, got {label_offset!r}")
    rainy = keras.Input((None, None, 3), name="rainy")
    x = layers.Rescaling(2.0, offset=-1.0, name="input_scale")(rainy)

    residue_builder = _Builder(RESIDUE_PREFIX, batchnorm_train_mode)
    residue_map = DIDMDNLabelMap(RESIDUE.label_channels, RESIDUE_LABEL, name="residue_label_map")(x)
    residue_out, _ = residue_builder.network(x, RESIDUE, residue_map)
    residue = layers.Subtract(name="residue")([x, residue_out])
    residue = layers.Resizing(
        CLASSIFIER_SIZE, CLASSIFIER_SIZE, interpolation="bilinear", name="classifier_resize"
    )(residue)
    logits = _Builder(CLASSIFIER_PREFIX, batchnorm_train_mode).classifier(residue)
    labels = DIDMDNDensityLabel(int(label_offset), name="density_label")(logits)

    label_map = DIDMDNLabelMap(DERAIN.label_channels, name="label_map")([x, labels])
    residual, clean2 = _Builder("", batchnorm_train_mode).network(x, DERAIN, label_map)
    outputs = _outputs(residual, clean2)
    outputs["density"] = logits
    return keras.Model(rainy, outputs, name="didmdn")


# --------------------------------------------------------------------------- checkpoint conversion


def _table(modules, keras_prefix: str, official_prefix: str) -> dict[str, str]:
    return {keras_prefix + module_name(m): official_prefix + m for m, _ in modules}


def _train_mode_ignores(modules, official_prefix: str) -> list[str]:
    """Running statistics of every BatchNorm, unused when it normalises with image statistics."""
    return [
        f"{official_prefix}{m}.{stat}"
        for m, kind in modules
        if kind == "norm"
        for stat in ("running_mean", "running_var")
    ]


def derain_key_map(label: float = DEFAULT_LABEL, batchnorm_train_mode: bool = False) -> dict:
    """Key table of ``didmdn_derain``: Keras layer → ``Dense_rain`` module (no prefix)."""
    return _table(_network_modules(DERAIN), "", "")


def derain_ignore_keys(
    label: float = DEFAULT_LABEL, batchnorm_train_mode: bool = False
) -> tuple[str, ...]:
    """``Dense_rain``'s unused modules (and, in train mode, the BatchNorm running statistics)."""
    ignored = [f"{m}." for m in DERAIN.unused]
    if batchnorm_train_mode:
        ignored += _train_mode_ignores(_network_modules(DERAIN), "")
    return tuple(ignored)


def classifier_key_map(official_prefix: str = "") -> dict[str, str]:
    """Key table of :func:`build_density_classifier` (official keys prefixed with the argument)."""
    return _table(_CLASSIFIER_MODULES, CLASSIFIER_PREFIX, official_prefix)


def classifier_ignore_keys(
    batchnorm_train_mode: bool = False, official_prefix: str = ""
) -> tuple[str, ...]:
    """In train mode the classifier's BatchNorm running statistics are unused."""
    if not batchnorm_train_mode:
        return ()
    return tuple(_train_mode_ignores(_CLASSIFIER_MODULES, official_prefix))


def residue_key_map(official_prefix: str = "") -> dict[str, str]:
    """Key table of :func:`build_residue_network` (official keys prefixed with the argument)."""
    return _table(_network_modules(RESIDUE), RESIDUE_PREFIX, official_prefix)


def pipeline_key_map(
    label_offset: int = OFFICIAL_LABEL_OFFSET, batchnorm_train_mode: bool = False
) -> dict[str, str]:
    """Key table of ``didmdn`` over a :func:`merge_official_checkpoints` state dict."""
    return {
        **_table(_network_modules(DERAIN), "", "derain."),
        **residue_key_map("residue."),
        **classifier_key_map("classifier."),
    }


def pipeline_ignore_keys(
    label_offset: int = OFFICIAL_LABEL_OFFSET, batchnorm_train_mode: bool = False
) -> tuple[str, ...]:
    """Unused modules of both dense networks (and running statistics in train mode)."""
    ignored = [f"derain.{m}." for m in DERAIN.unused]
    ignored += [f"residue.{m}." for m in RESIDUE.unused]
    if batchnorm_train_mode:
        ignored += _train_mode_ignores(_network_modules(DERAIN), "derain.")
        ignored += _train_mode_ignores(_network_modules(RESIDUE), "residue.")
    ignored += classifier_ignore_keys(batchnorm_train_mode, "classifier.")
    return tuple(ignored)


def _pipeline_infer_config(state_dict: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Nothing to infer; a checkpoint that is not a merged one is reported by its missing key."""
    for key in ("derain.conv_refin.weight", "classifier.conv16.weight", "residue.refine3.weight"):
        state_dict[key]  # noqa: B018 - KeyError → "checkpoint does not look like 'didmdn'"
    return {}


def merge_official_checkpoints(
    derain: str | os.PathLike | Mapping[str, np.ndarray],
    classifier: str | os.PathLike | Mapping[str, np.ndarray],
    residue: str | os.PathLike | Mapping[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """One state dict for ``didmdn`` from the three official checkpoints (files or dicts).

    The official release has ``pre_trained/netG_epoch_9.pth`` (``Dense_rain``),
    ``classification/netG_epoch_9.pth`` (``vgg19ca``) and ``residual_heavy/netG_epoch_6.pth``
    (``Dense_rain_residual``), each an unprefixed state dict; the result prefixes their keys
    with ``derain.``, ``classifier.`` and ``residue.``.
    """
    merged: dict[str, np.ndarray] = {}
    for prefix, source in (("derain", derain), ("classifier", classifier), ("residue", residue)):
        sd = source if isinstance(source, Mapping) else load_state_dict(source)
        merged.update({f"{prefix}.{k}": np.asarray(v) for k, v in sd.items()})
    return merged


def density_label(
    logits: np.ndarray | Sequence[float], label_offset: int = OFFICIAL_LABEL_OFFSET
) -> np.ndarray:
    """The label the deraining network receives from logits ``(..., 4)``: argmax + offset."""
    scores = np.asarray(logits)
    if scores.shape[-1:] != (4,):
        raise ValueError(f"expected density logits with last axis 4, got shape {scores.shape}")
    return np.argmax(scores, axis=-1) + label_offset


def density_names(logits: np.ndarray | Sequence[float]) -> list[str]:
    """Class names (:data:`DENSITY_CLASSES`, ``"unused"`` for logit 3) of a batch of logits."""
    index = density_label(np.reshape(logits, (-1, 4)), 0)
    return [DENSITY_CLASSES[i] if i < len(DENSITY_CLASSES) else "unused" for i in index]


#: Nominal rain density of the classes of :data:`DENSITY_CLASSES` (heavy, medium, light).
_CLASS_DENSITY = (1.0, 0.5, 0.0)


def density_estimate(logits: np.ndarray | Sequence[float]) -> tuple[float, int]:
    """``(value, level)`` of one image's 4 logits (the registry's ``density_decoder``).

    The softmax is taken over the three trained classes (heavy, medium, light); the fourth
    logit was never a training target and is left out, which is the softmax over all four
    conditioned on a real class. Level: the most probable of the three classes, as the index
    0 light, 1 medium, 2 heavy. Value: the expected nominal density under those probabilities,
    with light 0, medium 0.5 and heavy 1, so a certain light, medium or heavy answer gives 0,
    0.5 or 1.

    The official pipeline resizes every image to 512×512 before any network sees it; density
    estimation does the same with the whole image (the registry's ``density_size``), which
    makes the ``classifier_resize`` layer the identity. The level can differ from the label
    :func:`density_label` feeds the deraining network only when the unused fourth logit is the
    largest.
    """
    scores = np.asarray(logits, dtype=np.float64)
    if scores.shape != (4,):
        raise ValueError(f"expected the 4 density logits of one image, got shape {scores.shape}")
    trained = scores[: len(DENSITY_CLASSES)]
    probs = np.exp(trained - trained.max())
    probs /= probs.sum()
    value = float(np.clip(probs @ np.asarray(_CLASS_DENSITY), 0.0, 1.0))
    level = len(DENSITY_CLASSES) - 1 - int(np.argmax(trained))
    return value, level


# ----------------------------------------------------------------------------------- registration

_HALO = 96


@register(
    "didmdn",
    multiple=32,
    halo=_HALO,
    key_map=pipeline_key_map,
    ignore_keys=pipeline_ignore_keys,
    infer_config=_pipeline_infer_config,
    outputs=("derained", "rain", "density"),
    density_aware=True,
    density_decoder=density_estimate,
    density_size=CLASSIFIER_SIZE,
    description="DID-MDN (CVPR 2018): residue net + density classifier + multi-stream dense net",
)
def didmdn(
    label_offset: int = OFFICIAL_LABEL_OFFSET, batchnorm_train_mode: bool = False
) -> keras.Model:
    """The official DID-MDN pipeline: the density label is estimated per image.

    Args:
        label_offset: the deraining network receives ``argmax(logits) + label_offset``; 1 is the
            official test script, 0 the training labels (0 heavy, 1 medium, 2 light).
        batchnorm_train_mode: normalise with each image's own statistics, as the official test
            does (see the module docstring); default: BatchNorm running statistics.
    """
    return build_pipeline(label_offset, batchnorm_train_mode)


@register(
    "didmdn_derain",
    multiple=32,
    halo=_HALO,
    key_map=derain_key_map,
    ignore_keys=derain_ignore_keys,
    outputs=("derained", "rain"),
    description="DID-MDN multi-stream dense deraining network with a fixed density label",
    # No width options (the official network is fixed); the deraining network alone is small.
    tiny=Tiny({}),
    phone=True,
)
def didmdn_derain(label: float = DEFAULT_LABEL, batchnorm_train_mode: bool = False) -> keras.Model:
    """``Dense_rain`` alone with a fixed density label (converts the official ``netG`` file).

    Args:
        label: the value of the constant label map: 1 heavy, 2 medium, 3 light under the
            official test convention (0 heavy, 1 medium, 2 light as trained).
        batchnorm_train_mode: normalise with each image's own statistics (official test).
    """
    return build_derain_network(label, batchnorm_train_mode)


__all__ = [
    "CLASSIFIER_SIZE",
    "DENSITY_CLASSES",
    "DIDMDNDensityLabel",
    "DIDMDNInstanceNorm",
    "DIDMDNLabelMap",
    "build_density_classifier",
    "build_derain_network",
    "build_pipeline",
    "build_residue_network",
    "classifier_ignore_keys",
    "classifier_key_map",
    "density_estimate",
    "density_label",
    "density_names",
    "didmdn",
    "didmdn_derain",
    "merge_official_checkpoints",
    "residue_key_map",
]
