"""Exporting models for deployment: TFLite (with quantization) and SavedModel.

>>> export_tflite(model, "prenet_int8.tflite", quant="int8", tile=(256, 256))  # doctest: +SKIP
>>> export_savedmodel(model, "serving/prenet/1")                              # doctest: +SKIP

:func:`export_tflite` (:mod:`tfderain.export.tflite`) writes a ``.tflite`` file and its model spec
(:mod:`tfderain.export.spec`); quantization-aware training lives in :mod:`tfderain.export.qat`.
:func:`export_savedmodel` comes from :mod:`tfderain.export.savedmodel`, imported on first use.
"""

from __future__ import annotations

from typing import Any

from tfderain.export.errors import ExportError
from tfderain.export.options import QUANTIZATIONS
from tfderain.export.tflite import export_tflite


def __getattr__(name: str) -> Any:
    if name == "export_savedmodel":
        from tfderain.export.savedmodel import export_savedmodel

        return export_savedmodel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["QUANTIZATIONS", "ExportError", "export_savedmodel", "export_tflite"]
