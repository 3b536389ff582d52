"""The private TensorFlow and TFMOT functions the exporter wraps, looked up with a clear error.

Two steps of the export have no public hook, so the exporter wraps a private function for the
duration of one call (:func:`tfderain.export.calibration.keeping_ranges_valid`,
``tfderain.export.qat._range_tracking``):

* ``tensorflow.lite.python.lite._mlir_quantize``: the int8 step of the TFLite converter, given
  the calibrated model (ranges are widened and normalisation statistics kept float there);
* ``tensorflow_model_optimization...quant_ops.MovingAvgQuantize``: the range update of TFMOT's
  moving-average quantizer (its EMA decay follows the calibration batches).

Both exist in the pinned versions (``pyproject.toml``: TensorFlow 2.21, TFMOT 0.8.x). Another
version may rename them; :func:`private_function` then stops the export with one line naming
the function and the installed version instead of an ``AttributeError`` from inside the wrap.
"""

from __future__ import annotations

from importlib import metadata
from types import ModuleType
from typing import Any

from tfderain.export.errors import ExportError

#: The versions whose private functions the exporter was written against.
SUPPORTED = {"tensorflow": "2.21", "tensorflow-model-optimization": "0.8"}


def private_function(module: ModuleType, name: str, package: str) -> Any:
    """``module.name``, or an :class:`ExportError` naming it and ``package``'s version."""
    function = getattr(module, name, None)
    if callable(function):
        return function
    try:
        installed = metadata.version(package)
    except metadata.PackageNotFoundError:
        installed = "not installed"
    raise ExportError(
        f"{module.__name__}.{name} is missing in {package} {installed}; the TFLite export needs "
        f"{package} {SUPPORTED[package]}.x (pyproject.toml)"
    )
