"""Quantization-aware training (QAT) of the zoo's models with TensorFlow Model Optimization.

TFMOT's default 8-bit scheme knows the built-in layers it can fold or quantize (``Conv2D``,
``DepthwiseConv2D``, ``Conv2DTranspose``, ``Add``, ``Concatenate``, ``ReLU``, ``Activation``,
``GlobalAveragePooling2D``, padding/cropping …). Everything else in a model needs a
``QuantizeConfig`` saying which weights and outputs get fake-quantization nodes; the configs here
cover the layers of the small models (see ``CONFIGS``):

* elementwise merges TFMOT leaves out (``Multiply``, ``Subtract``: the ConvLSTM gating
  ``c' = f·c + i·g``, ``h' = o·tanh(c')`` of PReNet, the attention gates and the B/R exchange of
  PCNet), ``Rescaling`` (PCNet's ``1 − a``), ``Stack``, pixel (un)shuffle: **output** quantized;
* ``PReLU`` (PCNet): output quantized; the converter quantizes the slope itself, and the
  ``PRELU`` kernel then runs in int8 (a fake-quantized slope would make the converter keep
  ``PRELU`` in float between dequantize / quantize ops);
* ``LayerNormalization`` and Restormer's ``BiasFreeLayerNorm``: output quantized, the
  normalisation itself stays in float (TFLite runs it with float kernels between quantize /
  dequantize ops);
* ``ZerosLike`` (the LSTM's zero initial state): nothing to quantize.

:func:`annotate` applies TFMOT's default configs to built-ins and these to the rest, and raises
one error listing every layer it cannot quantize. :func:`quantize_model` then inserts the
fake-quant nodes (``quantize_apply``) and :func:`finetune` calibrates the ranges, then runs a short
fine-tune towards the float model's output (distillation) or the pairs' clean images.

Reference: Jacob et al., "Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference", CVPR 2018; TFMOT's ``quantize_annotate_layer`` /
``quantize_apply`` / ``QuantizeConfig`` API.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import tensorflow_model_optimization as tfmot  # noqa: E402  (after tf_keras is chosen)

from tfderain._keras import keras, tf
from tfderain.models import blocks

layers = keras.layers
quantizers = tfmot.quantization.keras.quantizers
QuantizeConfig = tfmot.quantization.keras.QuantizeConfig

#: Loss names :func:`finetune` understands.
LOSSES = ("l1", "negative_ssim")


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
    """Quantize nothing: for layers producing constants (``ZerosLike``), whose range is [0, 0]."""

    def get_output_quantizers(self, layer):
        return []


#: Layer class → the config :func:`annotate` gives it (exact class match).
CONFIGS: dict[type, type[QuantizeConfig]] = {
    layers.Multiply: OutputQuantizeConfig,
    layers.Subtract: OutputQuantizeConfig,
    layers.Rescaling: OutputQuantizeConfig,
    layers.LayerNormalization: OutputQuantizeConfig,
    layers.PReLU: OutputQuantizeConfig,
    blocks.Stack: OutputQuantizeConfig,
    blocks.PixelShuffle: OutputQuantizeConfig,
    blocks.PixelUnshuffle: OutputQuantizeConfig,
    blocks.BiasFreeLayerNorm: OutputQuantizeConfig,
    blocks.ZerosLike: NoOpQuantizeConfig,
}


class QuantizationError(ValueError):
    """A model holds layers that cannot be quantized."""


def _default_registry() -> Any:
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry as registry,
    )

    return registry.Default8BitQuantizeRegistry()


def _scope() -> dict[str, Any]:
    """Custom objects ``quantize_apply`` needs to clone the annotated model."""
    objects: dict[str, Any] = {
        cls.__name__: cls for cls in (OutputQuantizeConfig, NoOpQuantizeConfig)
    }
    for cls in CONFIGS:
        objects[cls.__name__] = cls
    return objects


def unquantizable_layers(model: keras.Model) -> list[str]:
    """``"name (Class)"`` of every layer neither TFMOT nor :data:`CONFIGS` can quantize."""
    registry = _default_registry()
    bad = []
    for layer in model.layers:
        if isinstance(layer, layers.InputLayer) or type(layer) in CONFIGS:
            continue
        if not registry.supports(layer):
            bad.append(f"{layer.name} ({type(layer).__name__})")
    return bad


def annotate(model: keras.Model) -> keras.Model:
    """A copy of the functional ``model`` with every layer annotated for 8-bit QAT.

    Built-in layers TFMOT supports get its default configs, the layers of :data:`CONFIGS` get
    theirs; shared layers stay shared.

    Raises:
        QuantizationError: listing every layer that cannot be quantized.
    """
    bad = unquantizable_layers(model)
    if bad:
        raise QuantizationError(
            f"model {model.name!r} has {len(bad)} layer(s) that cannot be quantized: "
            + ", ".join(bad)
        )
    annotate_layer = tfmot.quantization.keras.quantize_annotate_layer

    def clone(layer):
        copy = layer.__class__.from_config(layer.get_config())
        config = CONFIGS.get(type(layer))
        return annotate_layer(copy, config() if config else None)

    with tfmot.quantization.keras.quantize_scope(_scope()):
        annotated = keras.models.clone_model(model, clone_function=clone)
    annotated.set_weights(model.get_weights())
    return annotated


def quantize_model(model: keras.Model) -> keras.Model:
    """``model`` with fake-quantization nodes (annotate, then ``quantize_apply``), same weights."""
    with tfmot.quantization.keras.quantize_scope(_scope()):
        return tfmot.quantization.keras.quantize_apply(annotate(model))


def _loss(name: str) -> keras.losses.Loss | Any:
    if name == "l1":
        return keras.losses.MeanAbsoluteError()
    if name == "negative_ssim":

        def negative_ssim(y_true, y_pred):
            return -tf.reduce_mean(tf.image.ssim(y_true, y_pred, max_val=1.0))

        return negative_ssim
    raise ValueError(f"unknown QAT loss {name!r}; known: {', '.join(LOSSES)}")


@contextlib.contextmanager
def _fast_range_tracking(decay: float) -> Iterator[None]:
    """Make TFMOT's activation ranges follow the batches with EMA decay ``decay``.

    ``MovingAverageQuantizer`` starts every range at [-6, 6] and moves it with a fixed decay of
    0.999, so a short fine-tune would keep ranges near [-6, 6] (about 0.05 per 8-bit step for
    images in [0, 1]). While this context is active the quantizers it traces use ``decay``.
    """
    from tensorflow_model_optimization.python.core.quantization.keras import quant_ops

    original = quant_ops.MovingAvgQuantize

    def moving_avg_quantize(*args, **kwargs):
        kwargs["ema_decay"] = decay
        return original(*args, **kwargs)

    quant_ops.MovingAvgQuantize = moving_avg_quantize
    try:
        yield
    finally:
        quant_ops.MovingAvgQuantize = original


def calibrate(qmodel: keras.Model, images: Iterable, *, decay: float = 0.5) -> keras.Model:
    """Set the activation ranges of a :func:`quantize_model` result from ``images`` batches.

    Each batch runs eagerly in training mode (the mode in which ranges update) with EMA decay
    ``decay``; the weights are not changed. A few batches suffice: with decay 0.5 the initial
    [-6, 6] weighs 1/256 after 8 batches.
    """
    with _fast_range_tracking(decay):
        for batch in images:
            qmodel(batch, training=True)
    return qmodel


def finetune(
    qmodel: keras.Model,
    pairs: tf.data.Dataset,
    *,
    steps: int,
    loss: str = "l1",
    learning_rate: float = 1e-5,
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

    Args:
        qmodel: single-output (the derained image) quantization-aware model.
        pairs: ``{"rainy", "clean", ...}`` batches (:mod:`tfderain.data.pipeline`).
        steps: optimizer steps after calibration; 0 only calibrates.
        loss: ``"l1"`` (default) or ``"negative_ssim"``.
        learning_rate: small, since the float weights are already trained.
        calibration_batches: batches of :func:`calibrate` before the first step.
        teacher: the float model whose output is the target (single output, same input).
    """
    if steps < 0:
        raise ValueError(f"qat steps must be >= 0, got {steps}")
    criterion = _loss(loss)
    calibrate(qmodel, (b["rainy"] for b in pairs.take(calibration_batches)))
    if not steps:
        return qmodel
    optimizer = keras.optimizers.Adam(learning_rate)

    @tf.function
    def train_step(rainy, clean):
        target = clean if teacher is None else teacher(rainy, training=False)
        with tf.GradientTape() as tape:
            value = criterion(target, qmodel(rainy, training=True))
        variables = qmodel.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(value, variables), variables, strict=True))
        return value

    for batch in pairs.repeat().take(steps):
        train_step(batch["rainy"], batch["clean"])
    return qmodel


__all__ = [
    "CONFIGS",
    "LOSSES",
    "NoOpQuantizeConfig",
    "OutputQuantizeConfig",
    "QuantizationError",
    "annotate",
    "calibrate",
    "finetune",
    "quantize_model",
    "unquantizable_layers",
]
