"""Full-integer post-training quantization (``int8``) files that LiteRT can always prepare.

Two things make the converter write int8 files that LiteRT's XNNPACK delegate refuses: a
tensor that is zero on all calibration data (range ~[0, 2e-6], so the next operator's
requantization scale is out of the kernels' range), and statistics whose terms differ by many
orders of magnitude (a sum over the image plus a 1e-6 guard). Bound: as for the QAT files of
random networks (``test_export_qat.py``), a signal-to-noise ratio of 13 dB against Keras.
"""

from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from conftest import dead_relu_model, invoke_tflite
from model_harness import package_classes

from tfderain._keras import keras, tf
from tfderain.export import ExportError, export_tflite
from tfderain.export.calibration import (
    FLOAT_LAYERS,
    MIN_RANGE,
    _in_layers,
    is_float_in_int8,
    keeping_ranges_valid,
    widened_max,
)
from tfderain.export.flatbuffer import float_operators
from tfderain.export.runtime import TFLiteModel, keras_reference
from tfderain.models import build

TILE = 32


def _snr_db(reference: np.ndarray, got: np.ndarray) -> float:
    noise = float(np.mean((reference - got) ** 2))
    return 10 * np.log10(float(np.mean(reference**2)) / max(noise, 1e-20))


def _int8(model: keras.Model) -> bytes:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(2)
    images = [rng.random((1, TILE, TILE, 3)).astype(np.float32) for _ in range(4)]
    converter.representative_dataset = lambda: ([image] for image in images)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def _prepare(data: bytes) -> Interpreter:
    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    return interpreter


@pytest.mark.slow
def test_a_dead_activation_is_widened_so_litert_can_prepare_the_file():
    model = dead_relu_model(TILE)
    # Without the floor the file cannot be prepared (this is what the guard is for), and the
    # runner says so in one line.
    unguarded = _int8(model)
    with pytest.raises(RuntimeError, match="(?i)xnnpack|prepare"):
        _prepare(unguarded)
    image = np.random.default_rng(7).random((1, TILE, TILE, 3)).astype(np.float32)
    with pytest.raises(ExportError, match=r"^<bytes>: LiteRT cannot prepare the model: \S"):
        TFLiteModel(unguarded).run(image[0])
    report: dict = {}
    with keeping_ranges_valid(model, report):
        data = _int8(model)
    assert report["widened"] >= 1 and report["float_nodes"] == 0
    interpreter = _prepare(data)
    dead_ranges = []
    for detail in interpreter.get_tensor_details():
        scales = detail["quantization_parameters"]["scales"]
        if detail["dtype"] == np.int8 and len(scales) == 1 and "Const" not in detail["name"]:
            dead_ranges.append(float(scales[0]) * 255)
    assert min(dead_ranges) >= MIN_RANGE * 0.999
    assert _snr_db(model(image).numpy(), invoke_tflite(interpreter, image)) >= 13


def test_the_patched_quantizer_step_is_restored():
    from tensorflow.lite.python import lite

    original = lite._mlir_quantize
    with pytest.raises(ZeroDivisionError), keeping_ranges_valid(dead_relu_model(TILE)):
        assert lite._mlir_quantize is not original
        raise ZeroDivisionError
    assert lite._mlir_quantize is original


@pytest.mark.parametrize(
    ("name", "inside"),
    [
        ("spair_export/netr_dgb2_sfm/Sum", True),
        ("lu;spair_export/netr_dgb1_sfm/add_3", True),
        ("spair_export/netr_dgb1_sfm_out/Conv2D", False),
        ("spair_export/netr_dgb1_dga_fc1/Conv2D", False),
    ],
)
def test_operators_are_matched_to_layers_by_their_name_scope(name, inside):
    assert _in_layers(name, ["netr_dgb2_sfm", "netr_dgb1_sfm"]) is inside


@pytest.mark.slow
def test_int8_spair_keeps_its_masked_statistics_float_and_runs(tmp_path):
    # SPAIR's masked moments add 1e-6 / 1e-5 guards to image-wide sums; in 8 bits those ADDs
    # get scale ratios of ~1e-9 that LiteRT rejects. They stay float; the convolutions do not.
    keras.utils.set_random_seed(5)
    model = build("spair", width=4, blocks=1, loc_width=4, loc_blocks=1)
    path = tmp_path / "spair_int8.tflite"
    export_tflite(model, path, quant="int8", tile=None, samples=4)
    floats = set(float_operators(path))
    assert {"SUM", "SQRT"} <= floats
    assert not floats & {"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "MAX_POOL_2D"}
    image = np.random.default_rng(3).random((TILE, TILE, 3)).astype(np.float32)
    got = TFLiteModel(path, num_threads=2).run(image)["derained"]
    want = keras_reference(model)(image)["derained"]
    assert _snr_db(want, got) >= 13


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [(0.0, 2e-6, MIN_RANGE), (-1e-3, 0.0, -1e-3 + MIN_RANGE), (0.5, 0.52, None), (-6.0, 6.0, None)],
)
def test_a_range_narrower_than_the_floor_keeps_its_minimum(low, high, expected):
    got = widened_max(low, high)
    assert got == (None if expected is None else pytest.approx(expected))


#: The layers that computed in float32 in int8 files before the layers declared it themselves
#: (``FLOAT_IN_INT8``), by name: the built-in table and the declarations must give the same.
FORMER_FLOAT_LAYERS = {
    "LayerNormalization",
    "BiasFreeLayerNorm",
    "SPAIRSpatialFeatureModulator",
    "SPAIRCleanContext",
}


def _float_in_int8_classes() -> set[type]:
    """The built-in table and every layer class of the model modules that computes in float."""
    classes = set(FLOAT_LAYERS) | package_classes(keras.layers.Layer)
    return {cls for cls in classes if is_float_in_int8(cls)}


def test_layers_declared_float_in_int8_files_are_the_former_ones():
    from tfderain.models import blocks, spair

    assert {cls.__name__ for cls in _float_in_int8_classes()} == FORMER_FLOAT_LAYERS
    for cls in (blocks.BiasFreeLayerNorm, spair.SPAIRSpatialFeatureModulator):
        assert is_float_in_int8(cls) and cls.FLOAT_IN_INT8 is True
    assert not is_float_in_int8(keras.layers.Conv2D) and not is_float_in_int8(blocks.Stack)


def test_layers_kept_float_in_int8_files_quantize_only_their_output_in_qat_files():
    from tfderain.export.qat import OutputQuantizeConfig, config_class

    # The two exports must agree on which statistics compute in float.
    assert FLOAT_LAYERS
    classes = _float_in_int8_classes()
    assert set(FLOAT_LAYERS) <= classes
    for cls in classes:
        assert config_class(cls) is OutputQuantizeConfig, cls.__name__
