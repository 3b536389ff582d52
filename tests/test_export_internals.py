"""The private TensorFlow / TFMOT functions the exporter wraps exist in the pinned versions, and
a version without them stops an export with one line naming the function and the version."""

from __future__ import annotations

import types

import pytest

from tfderain._keras import keras, tf
from tfderain.export import ExportError, export_tflite
from tfderain.export.internals import private_function
from tfderain.models import build


def test_the_wrapped_private_functions_exist_in_the_installed_versions():
    from tensorflow.lite.python import lite
    from tensorflow_model_optimization.python.core.quantization.keras import quant_ops

    assert callable(private_function(lite, "_mlir_quantize", "tensorflow"))
    assert callable(
        private_function(quant_ops, "MovingAvgQuantize", "tensorflow-model-optimization")
    )


def test_a_missing_private_function_names_itself_and_the_installed_version():
    fake = types.ModuleType("tensorflow.lite.python.fake")
    with pytest.raises(ExportError) as info:
        private_function(fake, "_mlir_quantize", "tensorflow")
    message = str(info.value)
    assert message.startswith("tensorflow.lite.python.fake._mlir_quantize is missing in ")
    assert tf.__version__ in message and "needs tensorflow 2.21.x" in message


def test_an_int8_export_without_the_converter_hook_is_a_one_line_error(tmp_path, monkeypatch):
    from tensorflow.lite.python import lite

    keras.utils.set_random_seed(3)
    model = build("prn", stages=1, channels=4)
    monkeypatch.delattr(lite, "_mlir_quantize")
    with pytest.raises(ExportError, match="_mlir_quantize is missing in tensorflow") as info:
        export_tflite(model, tmp_path / "m.tflite", quant="int8", tile=16, samples=2)
    assert "\n" not in str(info.value)
    assert not list(tmp_path.iterdir())
