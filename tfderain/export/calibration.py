"""Activation ranges of full-integer post-training quantization (``int8``), made safe for LiteRT.

TFLite's converter calibrates every activation's range on the representative dataset, then
its MLIR quantizer rounds each tensor to 8 bits of that range. Two kinds of tensor give files
that LiteRT's XNNPACK delegate refuses to prepare ("failed to create XNNPACK runtime"):

* a tensor that is zero on every calibration image (a dead ReLU, e.g. the squeeze
  convolution of a channel attention with few channels) gets a range of about [0, 2e-6]; the
  requantization scale of the operator reading it (input step / output step) is then far
  outside what the int8 kernels accept. :func:`widen_ranges` gives every calibrated range at
  least :data:`MIN_RANGE` (the same floor :mod:`tfderain.export.qat` puts on learned ranges);
* statistics whose terms span many orders of magnitude — a sum over the whole image plus a
  ``1e-6`` guard, a variance plus ``ε`` before a square root, a masked division (SPAIR's
  masked moments and attention pooling, layer norms). In 8 bits the small term gets a scale
  ~1e-9 against ~10 for the sum, again no valid requantization, and the statistic itself
  would be meaningless. The operators of such layers therefore stay in float between
  dequantize / quantize ops, as they do in QAT files (whose configs quantize only such a layer's
  output): the built-in layers of :data:`FLOAT_LAYERS` and every layer whose class declares
  ``FLOAT_IN_INT8 = True`` (:func:`is_float_in_int8`).

Both are applied between calibration and quantization (:func:`keeping_ranges_valid`), by
wrapping the converter's internal ``_mlir_quantize`` step (``tensorflow.lite.python.lite``,
TF 2.21): the calibrated flatbuffer carries each tensor's ``min``/``max``; the quantizer takes
the names of the operators to keep in float (``denylisted_nodes``, the mechanism of TFLite's
selective quantization in ``tf.lite.experimental.QuantizationDebugger``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

from tfderain._keras import keras
from tfderain.export.internals import private_function

#: Narrowest activation range (max − min) of an integer file: a dead tensor is still exactly 0
#: (every range holds 0) and a live one this narrow loses at most 4e-5 per 8-bit step.
MIN_RANGE = 0.01

#: Built-in layers whose operators stay float32 in ``int8`` files (statistics with tiny guard
#: terms); other layers declare it themselves (``FLOAT_IN_INT8 = True``).
FLOAT_LAYERS: tuple[type, ...] = (keras.layers.LayerNormalization,)


def is_float_in_int8(layer: keras.layers.Layer | type) -> bool:
    """Whether ``layer`` (a layer or a layer class) computes in float32 in ``int8`` files: an
    instance of a :data:`FLOAT_LAYERS` class or of a class declaring ``FLOAT_IN_INT8 = True``."""
    cls = layer if isinstance(layer, type) else type(layer)
    return issubclass(cls, FLOAT_LAYERS) or getattr(cls, "FLOAT_IN_INT8", False) is True


def float_layer_names(model: keras.Model) -> list[str]:
    """Names of ``model``'s layers that compute in float32 in ``int8`` files."""
    return [layer.name for layer in model.layers if is_float_in_int8(layer)]


def _in_layers(tensor_name: str, layer_names: list[str]) -> bool:
    """Whether an operator output named ``tensor_name`` is computed inside one of the layers.

    TFLite names a tensor by the TF op(s) that made it, ``<model>/<layer>/<op>``, several
    joined by ``;`` when the converter fused operators.
    """
    parts = tensor_name.split(";")
    return any(f"/{layer}/" in part for part in parts for layer in layer_names)


def widened_max(low: float, high: float, width: float = MIN_RANGE) -> float | None:
    """``low + width`` if the range ``[low, high]`` is narrower than ``width``, else ``None``.

    A narrow range keeps its minimum (a dead tensor's range still holds 0) and gets this maximum.
    """
    return low + width if high - low < width else None


def widen_ranges(model_object: object, width: float = MIN_RANGE) -> int:
    """Give every calibrated range of a TFLite model object at least ``width``; how many widened.

    ``model_object`` is a ``tensorflow.lite.tools.flatbuffer_utils`` object of a calibrated
    model; a narrow range gets the maximum :func:`widened_max` gives it.
    """
    widened = 0
    for graph in model_object.subgraphs:
        for tensor in graph.tensors:
            quant = tensor.quantization
            if quant is None or quant.min is None or quant.max is None:
                continue
            if len(quant.min) != 1 or len(quant.max) != 1:
                continue
            high = widened_max(float(quant.min[0]), float(quant.max[0]), width)
            if high is not None:
                quant.max = np.array([high], dtype=np.float32)
                widened += 1
    return widened


def tensor_names(model_object: object) -> list[str]:
    """Names of every tensor of a ``flatbuffer_utils`` model object."""
    names = []
    for graph in model_object.subgraphs:
        for tensor in graph.tensors:
            name = tensor.name
            names.append(name.decode() if isinstance(name, bytes) else str(name))
    return names


@contextlib.contextmanager
def keeping_ranges_valid(model: keras.Model, report: dict | None = None) -> Iterator[None]:
    """While active, ``int8`` conversions of ``model`` widen narrow ranges, keep statistics float.

    ``report`` (optional) receives ``widened`` (ranges widened) and ``float_nodes`` (operator
    outputs kept in float) of the conversion.
    """
    from tensorflow.lite.python import lite
    from tensorflow.lite.tools import flatbuffer_utils

    layer_names = float_layer_names(model)
    original = private_function(lite, "_mlir_quantize", "tensorflow")

    def quantize(calibrated, *args, **kwargs):
        structure = flatbuffer_utils.convert_bytearray_to_object(calibrated)
        widened = widen_ranges(structure)
        nodes = [n for n in tensor_names(structure) if _in_layers(n, layer_names)]
        if report is not None:
            report.update(widened=widened, float_nodes=len(nodes))
        if widened:
            calibrated = bytes(flatbuffer_utils.convert_object_to_bytearray(structure))
        if nodes:
            kwargs["denylisted_nodes"] = nodes
        return original(calibrated, *args, **kwargs)

    lite._mlir_quantize = quantize
    try:
        yield
    finally:
        lite._mlir_quantize = original
