"""Exporting models for deployment: TFLite (with quantization) and SavedModel.

>>> export_tflite(model, "prenet_int8.tflite", quant="int8", tile=(256, 256))  # doctest: +SKIP
>>> export_savedmodel(model, "serving/prenet/1")                              # doctest: +SKIP

:func:`export_tflite` (:mod:`tfderain.export.tflite`) writes a ``.tflite`` file and its descriptor
(:mod:`tfderain.export.descriptor`, the JSON file apps read); quantization-aware training lives in
:mod:`tfderain.export.qat`; :mod:`tfderain.export.options` holds the export options without
importing TensorFlow. A file's operators are read by :mod:`tfderain.export.flatbuffer`, and
:mod:`tfderain.export.runtime` runs it in LiteRT beside its Keras model;
:mod:`tfderain.export.report` measures the model zoo's files (``export/REPORT.md``).
The names below load on first use.
"""

from __future__ import annotations

from tfderain._lazy import lazy_exports

_LAZY = {
    "ExportError": "tfderain.export.errors",
    "QUANTIZATIONS": "tfderain.export.options",
    "export_savedmodel": "tfderain.export.savedmodel",
    "export_tflite": "tfderain.export.tflite",
}

__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
