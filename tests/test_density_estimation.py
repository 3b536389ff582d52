"""The density estimator: image forms, how images are prepared for the density branch, and which
models it takes; ``tfderain.api`` re-exports it."""

from __future__ import annotations

import numpy as np
import pytest

from tfderain import api, density_estimation, models
from tfderain._keras import keras
from tfderain.density_estimation import DensityEstimator, density_estimator


@pytest.fixture(scope="module")
def tiny_mcodenet():
    keras.utils.set_random_seed(0)
    return models.build(
        "mcodenet", channels=4, code_channels=8, kernel_sizes=(3,), reduction=2, iterations=1
    )


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w, 3), dtype=np.float32)


def test_image_forms_are_read_like_derain_accepts_them(tiny_mcodenet):
    estimator = DensityEstimator(tiny_mcodenet)
    rgb8 = (_image(24, 40) * 255).astype(np.uint8)
    base = estimator.estimate(rgb8.astype(np.float32) / 255)
    rgba = np.concatenate([rgb8, np.full((24, 40, 1), 7, np.uint8)], axis=2)
    for form in (rgb8, rgba, rgb8.astype(np.uint16) * 257):
        result = estimator.estimate(form)
        assert result.value == pytest.approx(base.value, abs=1e-6)
        assert result.level == base.level and result.model == "mcodenet"
    gray = estimator.estimate(rgb8[:, :, 0])
    assert gray == estimator.estimate(np.repeat(rgb8[:, :, :1], 3, axis=2))
    with pytest.raises(ValueError, match="shape"):
        estimator.estimate(np.zeros((4, 5, 2), np.float32))
    with pytest.raises(ValueError, match="dtype"):
        estimator.estimate(np.zeros((4, 5, 3), np.int32))
    # Float RGB as an io.Image holds it gives the same estimate directly.
    assert estimator.estimate_array(rgb8.astype(np.float32) / 255) == base


def test_inputs_are_resized_whole_to_a_fixed_density_size_or_bounded_in_pixels(tiny_mcodenet):
    # A fixed size (CRDNet's 512) takes the whole image, whatever its aspect ratio.
    fixed = DensityEstimator(tiny_mcodenet, models.spec("crdnet"))
    assert fixed.prepare(_image(321, 481)).shape == (512, 512, 3)
    exact = _image(512, 512)
    np.testing.assert_array_equal(fixed.prepare(exact), exact)
    # Otherwise the image keeps its size up to max_pixels and is shrunk beyond, aspect kept.
    bounded = DensityEstimator(tiny_mcodenet, max_pixels=60 * 90)
    assert bounded.prepare(_image(60, 90)).shape == (60, 90, 3)
    h, w, _ = bounded.prepare(_image(120, 180)).shape
    assert h * w <= 60 * 90 and abs(w / h - 1.5) < 0.05
    flat = np.full((120, 180, 3), 0.25, np.float32)
    np.testing.assert_allclose(bounded.prepare(flat), 0.25, atol=1e-6)


def test_models_without_density_are_refused_or_get_no_estimator(tiny_mcodenet):
    prn = models.build("prn", stages=1, channels=4)
    with pytest.raises(ValueError, match="model 'prn' does not estimate rain density"):
        DensityEstimator(prn)
    # A density-aware entry whose model lacks the output (e.g. crdnet built with density=False).
    with pytest.raises(ValueError, match="built without its density output"):
        DensityEstimator(prn, models.spec("mcodenet"))
    with pytest.raises(ValueError, match="max_pixels must be a positive integer"):
        DensityEstimator(tiny_mcodenet, max_pixels=0)
    assert density_estimator(prn) is None
    assert density_estimator(prn, models.spec("mcodenet")) is None
    found = density_estimator(tiny_mcodenet, max_pixels=60 * 90)
    assert isinstance(found, DensityEstimator) and found.max_pixels == 60 * 90


def test_density_spec_names_the_models_that_estimate_density():
    assert density_estimation.density_spec("mcodenet") is models.spec("mcodenet")
    with pytest.raises(ValueError, match="density-aware models: .*mcodenet") as raised:
        density_estimation.density_spec("prenet")
    assert density_estimation.density_models() in str(raised.value)


def test_the_api_re_exports_the_estimator():
    names = ("DEFAULT_DENSITY_MAX_PIXELS", "Density", "DensityEstimator")
    for name in (*names, "density_models", "density_spec"):
        assert getattr(api, name) is getattr(density_estimation, name), name
