"""Quantization-aware training (QAT) of the zoo's models with TensorFlow Model Optimization.

TFMOT's default 8-bit scheme knows the built-in layers it can fold or quantize (``Conv2D``,
``DepthwiseConv2D``, ``Conv2DTranspose``, ``Add``, ``Concatenate``, ``ReLU``, ``Activation``,
``GlobalAveragePooling2D``, padding/cropping …). Everything else in a model needs a
``QuantizeConfig`` saying which weights and outputs get fake-quantization nodes. A custom layer
declares its own as class data, ``QUANTIZE = "output"`` (:class:`OutputQuantizeConfig`) or
``QUANTIZE = "none"`` (:class:`NoOpQuantizeConfig`), next to its ``TORCH_PARAMS``; the built-in
layers TFMOT leaves out get theirs from :data:`CONFIGS` (:func:`config_class` reads both):

* elementwise merges TFMOT leaves out (``Multiply``, ``Subtract``: the ConvLSTM gating
  ``c' = f·c + i·g``, ``h' = o·tanh(c')`` of PReNet, the attention gates and the B/R exchange of
  PCNet), ``Rescaling`` (PCNet's ``1 − a``), ``Stack``, pixel (un)shuffle: **output** quantized;
* ``PReLU`` with a slope per channel: output quantized; the converter quantizes the slope
  itself, and the ``PRELU`` kernel then runs in int8 (a fake-quantized slope would make the
  converter keep ``PRELU`` in float between dequantize / quantize ops). A PReLU with one slope
  (PyTorch's ``nn.PReLU()``: PCNet, MPRNet) becomes the ``LeakyReLU`` it equals, see below;
* ``LayerNormalization`` and Restormer's ``BiasFreeLayerNorm``: output quantized, the
  normalisation itself stays in float (TFLite runs it with float kernels between quantize /
  dequantize ops);
* the learned threshold of CODE-Net (``CODENetThreshold``), its density estimate
  (``CODENetChannelMean``), DID-MDN's label map and SPAIR's masked statistics
  (``SPAIRSpatialFeatureModulator``, ``SPAIRCleanContext``): output quantized; whatever has
  no integer kernel (SPAIR's sums, divisions and square roots) stays in float between
  dequantize / quantize ops;
* pure data movement (ReMAEN's sub-grid ``space_to_batch`` / ``batch_to_space``, MPRNet's
  patch halves): nothing to quantize, the output keeps its input's scale (as TFMOT does for
  ``Reshape`` or cropping); ``ZerosLike`` (the LSTM's zero initial state): nothing either.

Two built-ins become the depthwise convolutions they equal:

* ``AveragePooling2D`` (valid padding): stride = pool size, every tap ``1/(kh·kw)``, frozen.
  TFLite's int8 ``AVERAGE_POOL_2D`` must keep its input's scale, so a pooled tensor that also
  feeds concatenations with other ranges (DID-MDN's dense blocks and long skips) leaves the
  converter with conflicting scales and it fails; a depthwise convolution may rescale.
* ``BatchNormalization`` (channels last; TFMOT supports it only right after a convolution,
  which DID-MDN's pre-activation dense blocks do not have): a 1×1 depthwise convolution
  holding its inference-time affine map. The moving statistics are thereby frozen, as QAT
  should (a fine-tune in training mode would replace them with the fine-tuning batches'
  statistics), and the file computes it in int8 instead of float ``MUL`` / ``ADD``.

An ``Add`` of three or more tensors (ReMAEN's multi-scale blocks, mCODE-Net, MPRNet) becomes a
:class:`SequentialSum`, whose partial sums get ranges of their own, so the file adds in int8.
A ``PReLU`` with one slope becomes a ``LeakyReLU`` with that slope (frozen during the
fine-tune): LiteRT's XNNPACK delegate runs int8 ``LEAKY_RELU`` but not int8 ``PRELU``, which
would split the graph into a delegate partition per use.

:func:`annotate` applies TFMOT's default configs to built-ins and these to the rest, and raises
one error listing every layer it cannot quantize. :func:`quantize_model` then inserts the
fake-quant nodes (``quantize_apply``) and :func:`finetune` calibrates the ranges, then runs a short
fine-tune towards the float model's output (distillation) or the pairs' clean images. Both
leave every activation range at least :data:`MIN_RANGE` wide, so a tensor that is zero on all
calibration data (a dead ReLU) cannot give a requantization scale LiteRT's int8 kernels reject.

Reference: Jacob et al., "Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference", CVPR 2018; TFMOT's ``quantize_annotate_layer`` /
``quantize_apply`` / ``QuantizeConfig`` API.
"""

from __future__ import annotations

import contextlib
import fnmatch
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow_model_optimization as tfmot  # noqa: E402  (after tf_keras is chosen)

from tfderain._keras import keras, tf
from tfderain.export import rewrite
from tfderain.export.calibration import MIN_RANGE, widened_max
from tfderain.export.internals import private_function
from tfderain.export.options import QAT_LOSSES
from tfderain.export.rewrite import unshare_weightless_layers, with_leaky_relus

layers = keras.layers
quantizers = tfmot.quantization.keras.quantizers
QuantizeConfig = tfmot.quantization.keras.QuantizeConfig

#: Loss names :func:`finetune` understands.
LOSSES = QAT_LOSSES


def _activation_quantizer() -> Any:
    return quantizers.MovingAverageQuantizer(
        num_bits=8, per_axis=False, symmetric=False, narrow_range=False
    )


@keras.saving.register_keras_serializable(package="tfderain")
class OutputQuantizeConfig(QuantizeConfig):
    """Quantize only the layer's output (8-bit asymmetric, moving-average range).

    For weightless layers whose output is a new tensor the integer kernels need a scale for:
    ``Multiply``, ``Subtract``, ``Rescaling``, ``Stack``, pixel (un)shuffle, layer norms.
    """

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return [_activation_quantizer()]

    def get_config(self):
        return {}


@keras.saving.register_keras_serializable(package="tfderain")
class NoOpQuantizeConfig(OutputQuantizeConfig):
    """Quantize nothing: data movement (the output has its input's scale) or a zero constant."""

    def get_output_quantizers(self, layer):
        return []


@keras.saving.register_keras_serializable(package="tfderain")
class SequentialSum(layers.Layer):
    """``x1 + x2 + … + xn`` as the chain of two-input sums ``((x1 + x2) + x3) + …``.

    Stands in for an ``Add`` of three or more tensors: TFLite's ``ADD`` takes two inputs, so the
    converter splits an n-ary sum into a chain whose partial sums have no range of their own and
    stay in float between dequantize / quantize ops. Here every partial sum gets an 8-bit range
    (moving average, as TFMOT's activations), so the chain runs in int8; the last sum is the
    layer's output and gets its range from the layer's ``QuantizeConfig``.
    """

    QUANTIZE = "output"

    def build(self, input_shape):
        if len(input_shape) < 3:
            raise ValueError(f"{self.name}: SequentialSum needs 3 or more inputs")
        self._quantizer = _activation_quantizer()
        self._partial_ranges = [
            self._quantizer.build(tf.TensorShape(input_shape[0]), f"partial{k}", self)
            for k in range(1, len(input_shape) - 1)
        ]
        super().build(input_shape)

    def call(self, inputs, training=None):
        if training is None:
            training = keras.backend.learning_phase()
        total = inputs[0]
        for x, weights in zip(inputs[1:-1], self._partial_ranges, strict=True):
            partial = total + x
            total = tf.__internal__.smart_cond.smart_cond(
                training,
                lambda p=partial, w=weights: self._quantizer(p, True, w),
                lambda p=partial, w=weights: self._quantizer(p, False, w),
            )
        return total + inputs[-1]


#: Built-in layer class → the config :func:`annotate` gives it (exact class match). Every other
#: layer declares its own (``QUANTIZE``, see :data:`DECLARED`).
CONFIGS: dict[type, type[QuantizeConfig]] = {
    layers.Multiply: OutputQuantizeConfig,
    layers.Subtract: OutputQuantizeConfig,
    layers.Rescaling: OutputQuantizeConfig,
    layers.LayerNormalization: OutputQuantizeConfig,
    layers.PReLU: OutputQuantizeConfig,
}

#: A layer class's ``QUANTIZE`` declaration → its config.
DECLARED: dict[str, type[QuantizeConfig]] = {
    "output": OutputQuantizeConfig,
    "none": NoOpQuantizeConfig,
}


class QuantizationError(ValueError):
    """A model holds layers that cannot be quantized."""


def config_class(layer: layers.Layer | type) -> type[QuantizeConfig] | None:
    """The config :func:`annotate` gives ``layer`` (a layer or a layer class), or ``None``.

    A built-in layer's is in :data:`CONFIGS`; any other layer's is its class's ``QUANTIZE``
    declaration (inherited by subclasses). ``None``: TFMOT's default configs decide.

    Raises:
        QuantizationError: for a ``QUANTIZE`` value that is not a key of :data:`DECLARED`.
    """
    cls = layer if isinstance(layer, type) else type(layer)
    if cls in CONFIGS:
        return CONFIGS[cls]
    declared = getattr(cls, "QUANTIZE", None)
    if declared is None:
        return None
    try:
        return DECLARED[declared]
    except (KeyError, TypeError):
        raise QuantizationError(
            f"{cls.__name__}.QUANTIZE is {declared!r}; known: {', '.join(map(repr, DECLARED))}"
        ) from None


def _default_registry() -> Any:
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry as registry,
    )

    return registry.Default8BitQuantizeRegistry()


def _scope(model: keras.Model) -> dict[str, Any]:
    """Custom objects ``quantize_apply`` needs to clone ``model`` annotated: the configs, the
    layers of :data:`CONFIGS`, the exporter's own and ``model``'s layers that declare theirs."""
    classes = [OutputQuantizeConfig, NoOpQuantizeConfig, *CONFIGS]
    classes += [SequentialSum, rewrite.DepthToSpace]
    classes += [type(layer) for layer in model.layers if config_class(layer) is not None]
    return {cls.__name__: cls for cls in classes}


def unquantizable_layers(model: keras.Model) -> list[str]:
    """``"name (Class)"`` of every layer neither TFMOT nor :func:`config_class` can quantize."""
    registry = _default_registry()
    bad = []
    for layer in model.layers:
        if isinstance(layer, layers.InputLayer) or config_class(layer) or _replacement(layer):
            continue
        if not registry.supports(layer):
            bad.append(f"{layer.name} ({type(layer).__name__})")
    return bad


def annotate(model: keras.Model, keep_float: Sequence[str] = ()) -> keras.Model:
    """A copy of the functional ``model`` with every layer annotated for 8-bit QAT.

    Built-in layers TFMOT supports get its default configs, the other layers the one
    :func:`config_class` gives them. One-slope PReLUs become LeakyReLUs
    (:func:`with_leaky_relus`); shared layers with weights stay shared, shared layers without
    become one layer per call (:func:`unshare_weightless_layers`), so each call gets its own
    output range.

    ``keep_float``: layer name patterns (``fnmatch``, e.g. ``"stage*_out"``) of layers left in
    float: no weight or output quantization, so the int8 file computes them in float32 between
    ``DEQUANTIZE`` and ``QUANTIZE`` (mixed precision, e.g. a network's last convolution, which
    writes the image; see ``export/README.md``).

    Raises:
        QuantizationError: listing every layer that cannot be quantized, or a ``keep_float``
            pattern that matches no layer.
    """
    bad = unquantizable_layers(model)
    if bad:
        raise QuantizationError(
            f"model {model.name!r} has {len(bad)} layer(s) that cannot be quantized: "
            + ", ".join(bad)
        )
    scope = _scope(model)
    model = unshare_weightless_layers(with_leaky_relus(model), custom_objects=scope)
    names = [layer.name for layer in model.layers]
    unmatched = [p for p in keep_float if not fnmatch.filter(names, p)]
    if unmatched:
        raise QuantizationError(
            f"keep_float pattern(s) {', '.join(map(repr, unmatched))} match no layer of model "
            f"{model.name!r}"
        )
    annotate_layer = tfmot.quantization.keras.quantize_annotate_layer

    def annotated(copy):
        if any(fnmatch.fnmatchcase(copy.name, pattern) for pattern in keep_float):
            return annotate_layer(copy, NoOpQuantizeConfig())
        config = config_class(copy)
        return annotate_layer(copy, config() if config else None)

    with tfmot.quantization.keras.quantize_scope(scope):
        return rewrite.clone(model, _replacement, annotated)


def _replacement(layer: layers.Layer) -> Any:
    """The function making ``layer``'s depthwise stand-in and its weights, or ``None``."""
    if type(layer) is layers.AveragePooling2D and layer.padding == "valid":
        return _average_as_depthwise
    if type(layer) is layers.BatchNormalization and layer.axis in ([-1], [3]):
        return _batch_norm_as_depthwise
    if type(layer) is layers.Add and _input_count(layer) > 2:
        return _add_as_sequential_sum
    return None


def _input_count(layer: layers.Layer) -> int:
    """How many tensors each call of the merge ``layer`` takes (its first call's)."""
    nodes = layer.inbound_nodes
    return len(nodes[0].input_tensors) if nodes and isinstance(nodes[0].input_tensors, list) else 1


def _add_as_sequential_sum(add: layers.Add) -> tuple[Any, None]:
    """The :class:`SequentialSum` computing the n-ary ``add``."""
    return SequentialSum(name=add.name), None


def _average_as_depthwise(pool: layers.AveragePooling2D) -> tuple[Any, None]:
    """The frozen depthwise convolution equal to the valid-padding average pooling ``pool``."""
    height, width = pool.pool_size
    conv = layers.DepthwiseConv2D(
        (height, width),
        strides=pool.strides,
        use_bias=False,
        depthwise_initializer=keras.initializers.Constant(1.0 / (height * width)),
        trainable=False,
        name=pool.name,
    )
    return conv, None  # the initializer holds the weights


def _batch_norm_as_depthwise(norm: layers.BatchNormalization) -> tuple[Any, list]:
    """The 1×1 depthwise convolution equal to ``norm`` at inference, and its weights.

    ``γ (x − μ) / √(σ² + ε) + β = s·x + (β − μ·s)`` per channel, ``s = γ / √(σ² + ε)``.
    """
    mean, variance = norm.moving_mean.numpy(), norm.moving_variance.numpy()
    gamma = norm.gamma.numpy() if norm.gamma is not None else np.ones_like(mean)
    beta = norm.beta.numpy() if norm.beta is not None else np.zeros_like(mean)
    scale = gamma / np.sqrt(variance + norm.epsilon)
    conv = layers.DepthwiseConv2D(1, use_bias=True, name=norm.name)
    return conv, [scale.reshape(1, 1, -1, 1), beta - mean * scale]


def quantize_model(model: keras.Model, keep_float: Sequence[str] = ()) -> keras.Model:
    """``model`` with fake-quantization nodes (annotate, then ``quantize_apply``), same weights;
    ``keep_float`` as for :func:`annotate`."""
    with tfmot.quantization.keras.quantize_scope(_scope(model)):
        return tfmot.quantization.keras.quantize_apply(annotate(model, keep_float))


def _loss(name: str) -> keras.losses.Loss | Any:
    if name == "l1":
        return keras.losses.MeanAbsoluteError()
    if name == "l2":  # mean squared error: what PSNR against the target measures
        return keras.losses.MeanSquaredError()
    if name == "negative_ssim":

        def negative_ssim(y_true, y_pred):
            return -tf.reduce_mean(tf.image.ssim(y_true, y_pred, max_val=1.0))

        return negative_ssim
    raise ValueError(f"unknown QAT loss {name!r}; known: {', '.join(LOSSES)}")


@contextlib.contextmanager
def _range_tracking(decay: list[float]) -> Iterator[None]:
    """Make TFMOT's activation ranges follow the batches with EMA decay ``decay[0]``.

    ``MovingAverageQuantizer`` starts every range at [-6, 6] and moves it with a fixed decay of
    0.999, so a short fine-tune would keep ranges near [-6, 6] (about 0.05 per 8-bit step for
    images in [0, 1]). While this context is active the quantizers a model runs eagerly use the
    current ``decay[0]``, which the caller may change between batches.
    """
    from tensorflow_model_optimization.python.core.quantization.keras import quant_ops

    original = private_function(quant_ops, "MovingAvgQuantize", "tensorflow-model-optimization")

    def moving_avg_quantize(*args, **kwargs):
        kwargs["ema_decay"] = decay[0]
        return original(*args, **kwargs)

    quant_ops.MovingAvgQuantize = moving_avg_quantize
    try:
        yield
    finally:
        quant_ops.MovingAvgQuantize = original


# Why a floor on activation ranges (MIN_RANGE, shared with int8 post-training quantization): a
# tensor that is zero on every calibration batch (a dead ReLU, e.g. the squeeze convolution of
# a channel attention with few channels) gets a range of about [0, 1e-6]; the requantization
# scale of the convolution after it (input step × weight step / output step) then exceeds
# what XNNPACK's int8 kernels accept (< 256) and LiteRT cannot prepare the file. With the
# floor the output step is at least 0.01 / 255, so any convolution whose input range × largest
# weight is below ~300 stays valid.


def _activation_ranges(variables: Iterable[tf.Variable]) -> dict[str, dict[str, tf.Variable]]:
    """The activation ranges among quantizer ``variables``: prefix → ``{"min", "max"}``.

    They are the scalar ``*_min`` / ``*_max`` variables (weight ranges are per channel, vectors).
    """
    ranges: dict[str, dict[str, tf.Variable]] = {}
    for variable in variables:
        name = variable.name.split(":")[0]
        if variable.shape.rank == 0 and name.endswith(("_min", "_max")):
            ranges.setdefault(name[:-4], {})[name[-3:]] = variable
    return {prefix: bounds for prefix, bounds in ranges.items() if len(bounds) == 2}


def widen_narrow_ranges(qmodel: keras.Model, width: float = MIN_RANGE) -> int:
    """Widen every activation range of ``qmodel`` narrower than ``width``; how many it widened.

    Activation ranges are the scalar ``*_min`` / ``*_max`` variables of the quantizers (weight
    ranges are per channel, vectors, and are left alone); a narrow range gets the maximum
    :func:`tfderain.export.calibration.widened_max` gives it.
    """
    widened = 0
    for bounds in _activation_ranges(qmodel.variables).values():
        high = widened_max(float(bounds["min"].numpy()), float(bounds["max"].numpy()), width)
        if high is not None:
            bounds["max"].assign(high)
            widened += 1
    return widened


def pin_input_range(qmodel: keras.Model, low: float = 0.0, high: float = 1.0) -> int:
    """Set the range of ``qmodel``'s input quantizers to ``[low, high]``; how many it set.

    Images are in [0, 1] whatever the calibration batches reached, so the int8 input gets scale
    1/255 and zero point 0 (uint8 apps feed raw bytes) and a white pixel is not clipped.
    """
    pinned = 0
    for layer in qmodel.layers:
        if type(layer).__name__ == "QuantizeLayer":
            for bounds in _activation_ranges(layer.variables).values():
                bounds["min"].assign(low)
                bounds["max"].assign(high)
                pinned += 1
    return pinned


def calibrate(qmodel: keras.Model, images: Iterable) -> keras.Model:
    """Set the activation ranges of a :func:`quantize_model` result from ``images`` batches.

    Each batch runs eagerly in training mode (the mode in which ranges update); the weights are
    not changed. Batch ``k`` (from 1) updates every range with EMA decay ``(k - 1) / k``, so after
    ``n`` batches each range is the mean of the ``n`` per-batch ranges: TFMOT's initial [-6, 6]
    is forgotten at the first batch, and every batch counts equally (with a constant decay the
    last few batches would decide, and the ranges would vary with the order of the batches).
    Narrow ranges are then widened (:func:`widen_narrow_ranges`) and the input range is set to
    [0, 1] (:func:`pin_input_range`); :func:`finetune` does both again after its last step.
    """
    decay = [0.0]
    with _range_tracking(decay):
        for k, batch in enumerate(images, start=1):
            decay[0] = (k - 1) / k
            qmodel(batch, training=True)
    widen_narrow_ranges(qmodel)
    pin_input_range(qmodel)
    return qmodel


def finetune(
    qmodel: keras.Model,
    pairs: tf.data.Dataset,
    *,
    steps: int,
    loss: str = "l1",
    learning_rate: float = 2e-5,
    calibration_batches: int = 8,
    teacher: keras.Model | None = None,
) -> keras.Model:
    """Calibrate then fine-tune a :func:`quantize_model` result with Adam.

    The target of each rainy batch is ``teacher(rainy)`` when a ``teacher`` (the float model
    ``qmodel`` was made from) is given: the quantized model then learns to reproduce its float
    model (distillation, Hinton et al. 2015; used for QAT by Mishra & Marr, "Apprentice", ICLR
    2018), which is what an int8 export should do, on any images, without moving away from what
    the float model learnt on its own training set. Without a teacher the target is the pair's
    ``clean`` image.

    Every output of ``qmodel`` runs (so side outputs such as a density estimate get their
    ranges too); the loss is taken on the first, the derained image.

    Args:
        qmodel: quantization-aware model whose first output is the derained image.
        pairs: ``{"rainy", "clean", ...}`` batches (:mod:`tfderain.data.pipeline`).
        steps: optimizer steps after calibration; 0 only calibrates.
        loss: ``"l1"`` (default), ``"l2"`` (mean squared error) or ``"negative_ssim"``.
        learning_rate: the first step's; it decays to 0 over ``steps`` (cosine, Loshchilov &
            Hutter 2017), so the last steps only settle the weights on the 8-bit grid. Small,
            since the float weights are already trained.
        calibration_batches: batches of :func:`calibrate` before the first step.
        teacher: the float model whose output is the target (single output, same input).
    """
    if steps < 0:
        raise ValueError(f"qat steps must be >= 0, got {steps}")
    criterion = _loss(loss)
    calibrate(qmodel, (b["rainy"] for b in pairs.take(calibration_batches)))
    if not steps:
        return qmodel
    optimizer = keras.optimizers.Adam(
        keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps)
    )

    @tf.function
    def train_step(rainy, clean):
        target = clean if teacher is None else teacher(rainy, training=False)
        with tf.GradientTape() as tape:
            outputs = qmodel(rainy, training=True)
            derained = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
            value = criterion(target, derained)
        variables = qmodel.trainable_variables
        gradients = tape.gradient(value, variables)
        optimizer.apply_gradients(
            [(g, v) for g, v in zip(gradients, variables, strict=True) if g is not None]
        )
        return value

    for batch in pairs.repeat().take(steps):
        train_step(batch["rainy"], batch["clean"])
    widen_narrow_ranges(qmodel)
    pin_input_range(qmodel)
    return qmodel


__all__ = [
    "CONFIGS",
    "DECLARED",
    "LOSSES",
    "MIN_RANGE",
    "NoOpQuantizeConfig",
    "OutputQuantizeConfig",
    "QuantizationError",
    "SequentialSum",
    "annotate",
    "calibrate",
    "config_class",
    "finetune",
    "pin_input_range",
    "quantize_model",
    "unquantizable_layers",
    "unshare_weightless_layers",
    "widen_narrow_ranges",
    "with_leaky_relus",
]
