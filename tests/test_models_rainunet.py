"""RainUNet: parameter counts from the layer shapes, sizes, the global residual, saving, int8."""

from __future__ import annotations

import numpy as np
import pytest

from tfderain import models, saving
from tfderain._keras import keras, tf

#: A reduced configuration: two levels, so the input multiple is 4.
TINY = {
    "levels": 2,
    "widths": [4, 8, 8],
    "encoder_blocks": [1, 0],
    "middle_blocks": 1,
    "decoder_blocks": [0, 1],
}


def conv_params(k: int, c_in: int, c_out: int) -> int:
    """A k×k convolution (or transposed convolution) with bias."""
    return k * k * c_in * c_out + c_out


def block_params(width: int) -> int:
    """One residual block: two 3×3 convolutions w→w."""
    return 2 * conv_params(3, width, width)


def expected_params(levels, widths, encoder_blocks, middle_blocks, decoder_blocks):
    """intro 3×3 3→w0; per level i: blocks of width w_i, down 2×2 w_i→w_{i+1}, up 2×2
    w_{i+1}→w_i; middle blocks of width w_L; ending 3×3 w0→3. Add layers have no weights."""
    total = conv_params(3, 3, widths[0]) + conv_params(3, widths[0], 3)
    for i in range(levels):
        total += (encoder_blocks[i] + decoder_blocks[i]) * block_params(widths[i])
        total += conv_params(2, widths[i], widths[i + 1]) + conv_params(2, widths[i + 1], widths[i])
    return total + middle_blocks * block_params(widths[levels])


def test_default_config_has_the_parameter_count_of_its_layer_shapes():
    model = models.build("rainunet")
    config = models.full_config(models.spec("rainunet").builder, {})
    assert model.count_params() == expected_params(**config)
    # Written out for the default (widths 16/32/48/64, one conv block per encoder and decoder
    # level, two in the middle): 448 + 435 intro/ending, 4,640 + 18,496 + 41,568 level blocks
    # (×2), 2,080 + 6,192 + 12,352 down, 2,064 + 6,176 + 12,336 up, 2 × 73,856 middle.
    hand = 448 + 435 + 2 * (4_640 + 18_496 + 41_568) + 2_080 + 6_192 + 12_352
    hand += 2_064 + 6_176 + 12_336 + 2 * 73_856
    assert model.count_params() == hand == 319_203


def test_a_reduced_config_has_the_parameter_count_of_its_layer_shapes():
    assert models.build("rainunet", **TINY).count_params() == expected_params(**TINY)


def test_the_registry_multiple_is_two_to_the_number_of_levels():
    spec = models.spec("rainunet")
    levels = models.full_config(spec.builder, {})["levels"]
    assert spec.multiple == 2**levels
    model = models.build(
        "rainunet",
        widths=[4, 4, 4, 4],
        encoder_blocks=[0, 0, 0],
        middle_blocks=0,
        decoder_blocks=[0, 0, 0],
    )
    for height, width in [(spec.multiple, 3 * spec.multiple), (2 * spec.multiple, spec.multiple)]:
        out = model(np.zeros((1, height, width, 3), np.float32))["derained"]
        assert out.shape == (1, height, width, 3)
    # Half a multiple more: the 2×2 stride-2 convolutions drop the odd row at the lowest level
    # and the skip connection's shapes no longer agree.
    with pytest.raises(tf.errors.InvalidArgumentError, match="skip"):
        model(np.zeros((1, spec.multiple + spec.multiple // 2, spec.multiple, 3), np.float32))


def test_one_model_serves_any_size_and_batch():
    model = models.build("rainunet", **TINY)
    for shape in [(1, 64, 96, 3), (2, 12, 20, 3), (1, 4, 4, 3)]:
        assert model(np.zeros(shape, np.float32))["derained"].shape == shape


def test_the_network_adds_a_predicted_residual_to_its_input():
    """With the last convolution zeroed the output is the input exactly: whatever the rest of the
    network computes, brightness changes only through the predicted residual."""
    model = models.build("rainunet", **TINY)
    ending = model.get_layer("ending")
    ending.set_weights([np.zeros_like(w) for w in ending.get_weights()])
    x = np.random.default_rng(0).random((1, 16, 24, 3)).astype(np.float32)
    np.testing.assert_array_equal(model(x)["derained"].numpy(), x)


def test_config_survives_saving_and_loading(tmp_path):
    keras.utils.set_random_seed(1)
    model = models.build("rainunet", **TINY)
    path = saving.save_model(model, tmp_path / "rainunet.keras")
    meta = saving.read_metadata(path)
    assert meta["arch"] == "rainunet"
    assert meta["config"] == TINY
    loaded = saving.load_model(path)
    x = np.random.default_rng(1).random((1, 16, 20, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x)["derained"].numpy(), model(x)["derained"].numpy())


def test_default_model_file_fits_the_two_megabyte_budget(tmp_path):
    path = saving.save_model(models.build("rainunet"), tmp_path / "default.keras")
    assert path.stat().st_size <= 2 * 1024 * 1024


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"levels": 0}, "levels"),
        ({"widths": [16, 32]}, "widths"),
        ({"encoder_blocks": [1, 1]}, "encoder_blocks"),
        ({"middle_blocks": -1}, "middle_blocks"),
        (
            {"levels": 4, "widths": [8] * 5, "encoder_blocks": [1] * 4, "decoder_blocks": [1] * 4},
            "levels must be 1 to 3",
        ),
    ],
)
def test_an_invalid_config_is_a_one_line_error(bad, message):
    with pytest.raises(ValueError, match=message):
        models.build("rainunet", **bad)


@pytest.mark.slow
@pytest.mark.parametrize(
    "quant, options",
    [("int8", {"samples": 2}), ("qat", {"samples": 2, "qat_steps": 0})],
)
def test_int8_tflite_is_flex_free_and_integer_throughout(tmp_path, quant, options):
    # Post-training int8 and the QAT path (fake-quant nodes, calibration, no fine-tune steps)
    # the app's default file goes through: every layer is one TFLite has int8 kernels for.
    from tfderain.export import export_tflite
    from tfderain.export.flatbuffer import float_operators, is_flex_free, operators

    keras.utils.set_random_seed(2)
    model = models.build("rainunet", **TINY)
    path = export_tflite(model, tmp_path / f"tiny_{quant}.tflite", quant=quant, tile=16, **options)
    ops = operators(path)
    assert "CONV_2D" in ops
    assert is_flex_free(ops), ops
    assert float_operators(path) == []
