"""``tfderain.export.flatbuffer``: a ``.tflite`` file's operators, read from its flatbuffer.

Operators of real exports are checked where they are made (``test_export_tflite.py``,
``test_export_qat.py``, ``test_export_rewrite.py``); here, the checks and errors themselves.
"""

from __future__ import annotations

import pytest

from tfderain.export import ExportError
from tfderain.export.flatbuffer import is_flex_free, operators


def test_flex_and_custom_ops_are_detected():
    assert not is_flex_free(["CONV_2D", "CUSTOM:FlexConv2D"])
    assert not is_flex_free(["CUSTOM:MyOp"])
    assert is_flex_free(["ADD", "CONV_2D", "QUANTIZE"])


def test_operators_of_a_non_tflite_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.tflite"
    bad.write_bytes(b"not a model")
    with pytest.raises(ExportError, match="not a TFLite flatbuffer"):
        operators(bad)
    with pytest.raises(ExportError, match="cannot read"):
        operators(tmp_path / "missing.tflite")
