"""Synthetic rain: shapes and ranges, determinism, density, and streak orientation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tfderain.data.synthetic import LEVELS, add_rain, density_level, rain_streaks


def _image(seed: int = 0, shape: tuple[int, int] = (96, 128)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.random((shape[0] // 8, shape[1] // 8, 3), dtype=np.float32)
    return cv2.resize(small, shape[::-1], interpolation=cv2.INTER_LINEAR)


def test_density_levels_follow_did_mdn_thirds():
    assert LEVELS == ("light", "medium", "heavy")
    expected = {0.0: 0, 0.33: 0, 1 / 3: 1, 0.5: 1, 0.66: 1, 2 / 3: 2, 1.0: 2}
    assert {d: density_level(d) for d in expected} == expected
    with pytest.raises(ValueError, match="density"):
        density_level(1.5)


@pytest.mark.parametrize("shape", [(64, 96), (97, 45), (256, 256)])
def test_add_rain_returns_float32_images_in_unit_range(shape):
    clean = _image(1, shape)
    rainy, clean_out, density = add_rain(clean, np.random.default_rng(0))
    assert rainy.shape == clean_out.shape == (*shape, 3)
    assert rainy.dtype == clean_out.dtype == np.float32
    assert rainy.min() >= 0.0 and rainy.max() <= 1.0
    assert 0.0 <= density <= 1.0
    np.testing.assert_array_equal(clean_out, clean)


def test_add_rain_is_deterministic_given_the_generator_seed():
    clean = _image()
    a = add_rain(clean, np.random.default_rng(7))
    b = add_rain(clean, np.random.default_rng(7))
    c = add_rain(clean, np.random.default_rng(8))
    np.testing.assert_array_equal(a[0], b[0])
    assert a[2] == b[2]
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("blend", ["add", "screen"])
def test_rain_without_haze_only_brightens(blend):
    clean = _image(2)
    rainy, _, _ = add_rain(clean, np.random.default_rng(0), density=0.8, blend=blend, haze=False)
    assert np.all(rainy >= clean - 1e-6)
    assert np.mean(rainy - clean) > 0.01


def test_haze_is_added_to_heavy_rain_only():
    clean = _image(3)

    def rain(density, haze):
        return add_rain(clean, np.random.default_rng(5), density=density, haze=haze)[0]

    np.testing.assert_array_equal(rain(0.2, True), rain(0.2, False))
    assert not np.array_equal(rain(0.9, True), rain(0.9, False))


def test_denser_rain_changes_the_image_more_on_average():
    clean = _image(4, (128, 128))
    densities = (0.05, 0.35, 0.65, 0.95)
    change = [
        np.mean(
            [
                np.abs(add_rain(clean, np.random.default_rng(s), density=d)[0] - clean).mean()
                for s in range(4)
            ]
        )
        for d in densities
    ]
    assert all(a < b for a, b in zip(change, change[1:], strict=False)), change


def _gradient_energy(layer: np.ndarray, direction: np.ndarray) -> float:
    """Energy of the derivative of ``layer`` along unit ``direction`` = (dx, dy), y down."""
    smooth = cv2.GaussianBlur(layer.astype(np.float64), (0, 0), 1.5)
    gy, gx = np.gradient(smooth)
    return float(np.sum((gx * direction[0] + gy * direction[1]) ** 2))


def _dominant_gradient_angle(layer: np.ndarray) -> float:
    """Angle of the structure tensor's main eigenvector, degrees from +x towards +y (down)."""
    smooth = cv2.GaussianBlur(layer.astype(np.float64), (0, 0), 1.5)
    gy, gx = np.gradient(smooth)
    jxx, jyy, jxy = np.sum(gx * gx), np.sum(gy * gy), np.sum(gx * gy)
    return float(np.degrees(0.5 * np.arctan2(2 * jxy, jxx - jyy)))


@pytest.mark.parametrize("angle", [-25.0, 0.0, 20.0])
def test_streaks_are_oriented_along_the_requested_angle(angle):
    clean = np.full((256, 256, 3), 0.2, np.float32)
    rainy, _, _ = add_rain(
        clean, np.random.default_rng(11), density=0.3, angle=angle, blend="add", haze=False
    )
    layer = (rainy - clean)[..., 0]
    theta = np.radians(angle)
    along = np.array([np.sin(theta), -np.cos(theta)])  # positive angles lean the top right
    across = np.array([np.cos(theta), np.sin(theta)])
    assert _gradient_energy(layer, across) > 3 * _gradient_energy(layer, along)
    # Across the streaks is the direction of strongest gradients; layers deviate up to 10 deg.
    error = (_dominant_gradient_angle(layer) - angle + 90) % 180 - 90
    assert abs(error) < 14, error


def test_rain_streaks_layer_is_a_float32_map_in_unit_range():
    layer = rain_streaks((80, 120), np.random.default_rng(0), density=0.5)
    assert layer.shape == (80, 120) and layer.dtype == np.float32
    assert layer.min() >= 0.0 and layer.max() <= 1.0 and layer.max() > 0.2


def test_add_rain_rejects_bad_input():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="H, W, 3"):
        add_rain(np.zeros((8, 8), np.float32), rng)
    with pytest.raises(ValueError, match="float"):
        add_rain(np.zeros((8, 8, 3), np.uint8), rng)
    with pytest.raises(ValueError, match="density"):
        add_rain(np.zeros((8, 8, 3), np.float32), rng, density=1.5)
    with pytest.raises(ValueError, match="blend"):
        add_rain(np.zeros((8, 8, 3), np.float32), rng, blend="overlay")
