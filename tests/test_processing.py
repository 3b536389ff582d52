"""tfderain.processing: the one implementation of padding, cropping, the 8-bit output rule and
the density input, shared by inference, evaluation, density estimation and the exports."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tfderain import models
from tfderain._keras import tf
from tfderain.processing import Processor, reflect_pad, round_output


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (2, 17), (8, 8)])
def test_in_graph_padding_equals_numpy_reflect_padding(shape):
    image = np.arange(np.prod(shape) * 3, dtype=np.float32).reshape(1, *shape, 3)
    h, w = shape
    expected = np.pad(image, ((0, 0), (0, -h % 8), (0, -w % 8), (0, 0)), mode="reflect")
    np.testing.assert_array_equal(reflect_pad(tf.constant(image), 8).numpy(), expected)


def test_uint8_output_rules_follow_the_official_scripts():
    values = np.array([0.0, 0.5 / 255, 1.5 / 255, 2.5 / 255, 0.9999, 1.0, 1.7, -0.2], np.float32)
    # round: 255x rounded to nearest, ties to even; truncate: floor(255x); both clip first.
    np.testing.assert_array_equal(
        round_output(tf.constant(values), "round").numpy(), [0, 0, 2, 2, 255, 255, 255, 0]
    )
    np.testing.assert_array_equal(
        round_output(tf.constant(values), "truncate").numpy(), [0, 0, 1, 2, 254, 255, 255, 0]
    )
    with pytest.raises(ValueError, match="unknown output rule"):
        round_output(tf.constant(values), "ceil")


def test_float64_outputs_are_scaled_in_float64():
    """255 * x in float64 can land exactly on a .5 tie that float32 would move off."""
    x = np.array([2.5 / 255], np.float64)  # 255 * x == 2.5 exactly in float64
    assert 255 * x[0] == 2.5
    assert round_output(x, "round").numpy()[0] == 2  # ties to even


def test_processor_pads_and_crops():
    processor = Processor(multiple=4, output_rule="truncate")
    image = tf.random.uniform([1, 5, 7, 3], seed=1)
    padded = processor.pad(image)
    assert padded.shape == (1, 8, 8, 3)
    np.testing.assert_array_equal(processor.crop(padded, 5, 7).numpy(), image.numpy())
    with pytest.raises(ValueError, match="unknown output rule"):
        Processor(output_rule="floor")


@pytest.mark.parametrize(
    ("height", "width", "expected"),
    [
        (300, 400, (300, 400)),  # at most 512 x 512 pixels: kept
        (1080, 1920, (384, 682)),  # scaled by sqrt(512^2 / (1080 * 1920)), floored
        (1, 600_000, (1, 396_593)),  # never below one pixel (then above the limit)
    ],
)
def test_density_input_size_keeps_at_most_the_pixel_limit(height, width, expected):
    target = Processor().density_target(height, width).numpy()
    assert tuple(target) == expected
    scale = math.sqrt(512 * 512 / (height * width))
    if height * width > 512 * 512:
        assert tuple(target) == (max(1, int(height * scale)), max(1, int(width * scale)))


def test_fixed_density_size_resizes_whole_images_to_it():
    assert tuple(Processor(density_size=512).density_target(30, 40).numpy()) == (512, 512)


def test_every_registered_model_has_a_processor_from_its_entry():
    for name in models.names():
        spec = models.spec(name)
        processor = spec.processor
        assert (processor.multiple, processor.halo) == (spec.multiple, spec.halo)
        assert processor.output_rule == spec.output_rule
        assert processor.density_size == spec.density_size
    assert models.spec("prenet").processor.output_rule == "truncate"  # test_PReNet.py
    assert models.spec("restormer").processor.output_rule == "round"  # img_as_ubyte
