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


# ------------------------------------------------------------------------------------ styles

STYLES = ("mixed", "rain100l", "rain100h", "rain1400", "heavy")


def _luma_rain(style: str, seed: int, **kwargs) -> np.ndarray:
    """The rain layer ``rainy - clean`` of a render on flat grey, without veil."""
    clean = np.full((128, 128, 3), 0.3, np.float32)
    kwargs.setdefault("haze", False)
    kwargs.setdefault("streak_scale", 1.0)  # a crop of a 512-pixel photo: streaks as stated
    rainy, _, _ = add_rain(clean, np.random.default_rng(seed), style=style, **kwargs)
    return (rainy - clean)[..., 0]


def _orientation_spread(layer: np.ndarray) -> float:
    """Spread in degrees of the local streak orientations (doubled-angle resultant length)."""
    smooth = cv2.GaussianBlur(layer.astype(np.float64), (0, 0), 1.0)
    gy, gx = np.gradient(smooth)
    jxx, jyy, jxy = (cv2.GaussianBlur(g, (0, 0), 2.0) for g in (gx * gx, gy * gy, gx * gy))
    mask = layer > 0.05
    weight = (jxx + jyy)[mask]
    doubled = np.arctan2(2 * jxy, jxx - jyy)[mask]
    resultant = abs(np.sum(weight * np.exp(1j * doubled))) / weight.sum()
    return float(np.degrees(np.sqrt(-2 * np.log(resultant)) / 2))


@pytest.mark.parametrize("style", STYLES)
def test_every_style_is_deterministic_in_range_and_leaves_the_clean_photo_alone(style):
    clean = _image(5, (64, 80))
    original = clean.copy()
    a = add_rain(clean, np.random.default_rng(3), style=style)
    b = add_rain(clean, np.random.default_rng(3), style=style)
    c = add_rain(clean, np.random.default_rng(4), style=style)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[2] == b[2]
    assert not np.array_equal(a[0], c[0])
    assert a[0].dtype == np.float32 and a[0].min() >= 0.0 and a[0].max() <= 1.0
    # The target is the photo itself, bit for bit, and the input is not modified.
    np.testing.assert_array_equal(a[1], original)
    np.testing.assert_array_equal(clean, original)
    assert np.abs(a[0] - original).mean() > 0.002


# Stated ranges of a style's streak directions (degrees from vertical): the mean direction's
# range widened by the per-layer deviation.
STYLE_ANGLES = {"rain100l": 20.0, "rain100h": 45.0, "heavy": 40.0, "mixed": 40.0}
RAIN1400_ORIENTATIONS = np.arange(-30, 31, 10)


@pytest.mark.parametrize("style", sorted(STYLE_ANGLES))
def test_streak_orientation_lies_within_the_styles_range(style):
    angles = [_dominant_gradient_angle(_luma_rain(style, seed, density=0.5)) for seed in range(10)]
    limit = STYLE_ANGLES[style] + 4  # measurement tolerance
    assert all(abs(a) <= limit for a in angles), angles
    assert max(angles) - min(angles) > 10, angles  # the direction is drawn, not fixed


def test_rain1400_orientations_are_its_fourteen_kinds():
    angles = [
        _dominant_gradient_angle(_luma_rain("rain1400", seed, density=0.5)) for seed in range(10)
    ]
    nearest = [np.min(np.abs(RAIN1400_ORIENTATIONS - a)) for a in angles]
    assert max(nearest) < 3, angles
    assert len({int(np.argmin(np.abs(RAIN1400_ORIENTATIONS - a))) for a in angles}) >= 3


def test_rain100h_streaks_run_in_several_directions_rain100l_in_one():
    heavy = np.median(
        [_orientation_spread(_luma_rain("rain100h", s, density=0.8)) for s in range(6)]
    )
    light = np.median(
        [_orientation_spread(_luma_rain("rain100l", s, density=0.2)) for s in range(6)]
    )
    assert heavy > light + 2, (heavy, light)


@pytest.mark.parametrize("style", STYLES)
def test_heavier_density_gives_more_rain_energy(style):
    energy = [
        np.mean([np.maximum(_luma_rain(style, s, density=d), 0).mean() for s in range(6)])
        for d in (0.1, 0.5, 0.9)
    ]
    assert energy[0] < energy[1] < energy[2], energy


def _dark_textured(shape: tuple[int, int] = (96, 96)) -> np.ndarray:
    return 0.05 + 0.25 * _image(6, shape)


def test_global_veil_is_yangs_affine_accumulation():
    # O = alpha * O_s + (1 - alpha) * A: an affine map of the unveiled render with slope alpha
    # in (0, 1), raising dark images towards A and scaling their contrast by alpha.
    clean = _dark_textured()

    def render(haze):
        rng = np.random.default_rng(2)
        rainy, _, _ = add_rain(
            clean, rng, style="rain100h", density=0.8, haze=haze, streak_scale=1.0
        )
        return rainy.astype(np.float64)

    plain, veiled = render(False), render("global")
    assert plain.mean() < 0.6  # still a dark image under the streaks
    slope, intercept = np.polyfit(plain.ravel(), veiled.ravel(), 1)
    np.testing.assert_allclose(veiled, slope * plain + intercept, atol=1e-5)
    assert 0.0 < slope < 0.999
    assert 0.75 <= intercept / (1 - slope) <= 0.95  # atmospheric light A, as stated
    assert veiled.mean() > plain.mean()
    np.testing.assert_allclose(veiled.std(), slope * plain.std(), rtol=1e-4)


def test_depth_veil_brightens_far_rows_more_and_lowers_contrast():
    # O = T * O_s + (1 - T) * A with T = exp(-beta * depth), far at the top of the frame.
    clean = _dark_textured()

    def render(haze):
        rng = np.random.default_rng(2)
        rainy, _, _ = add_rain(clean, rng, style="heavy", density=0.95, haze=haze, streak_scale=1.0)
        return rainy.astype(np.float64)

    plain, veiled = render(False), render("depth")
    lift = (veiled - plain).mean(axis=(1, 2))
    assert np.all(lift >= -1e-6) and veiled.mean() > plain.mean() + 0.01
    assert lift[:24].mean() > lift[-24:].mean() + 0.01

    def detail(image):  # local contrast: energy of the difference to a blurred copy
        return np.mean((image - cv2.GaussianBlur(image, (0, 0), 2.0)) ** 2)

    assert detail(veiled) < detail(plain)


@pytest.mark.parametrize(("style", "veil"), [("rain100h", "global"), ("heavy", "depth")])
def test_keep_veil_puts_the_same_veil_over_the_target_without_streaks(style, veil):
    # With the veil kept, the target is the clean image seen through the same veil: rendering
    # the rain on the veiled target with no veil gives the same streaks, so rainy - target is
    # the streak layer alone (rain only adds light), and a flat black photo's target is the
    # veil's own light (1 - T) A, at most A = 0.95 and brighter in the far (top) rows.
    clean = _dark_textured()

    def render(keep):
        rng = np.random.default_rng(5)
        return add_rain(
            clean, rng, style=style, density=0.9, haze=veil, streak_scale=1.0, keep_veil=keep
        )

    rainy, target, density = render(True)
    removed_rainy, removed_target, removed_density = render(False)
    np.testing.assert_array_equal(rainy, removed_rainy)  # the input does not change
    assert density == removed_density
    np.testing.assert_array_equal(removed_target, clean)
    assert target.dtype == np.float32 and target.shape == clean.shape
    assert target.mean() > clean.mean() + 0.01  # the veil lifts the dark photo
    assert (rainy - target).min() >= -1e-6
    black = np.zeros((96, 96, 3), np.float32)
    _, lit, _ = add_rain(
        black, np.random.default_rng(5), style=style, density=0.9, haze=veil, keep_veil=True
    )
    assert 0.0 < lit.max() <= 0.95
    rows = lit[..., 0].mean(axis=1)
    if veil == "global":
        np.testing.assert_allclose(lit, lit[0, 0, 0], atol=1e-6)
    else:
        assert rows[:24].mean() > rows[-24:].mean()


def test_keep_veil_leaves_unveiled_rain_alone():
    clean = _image(7)
    for density, haze in [(0.2, True), (0.9, False)]:
        _, target, _ = add_rain(
            clean, np.random.default_rng(1), density=density, haze=haze, keep_veil=True
        )
        np.testing.assert_array_equal(target, clean)


@pytest.mark.parametrize("style", ["heavy", "rain100h", "mixed"])
def test_light_rain_has_no_veil_in_any_style(style):
    clean = _image(7)

    def rain(haze):
        return add_rain(clean, np.random.default_rng(1), style=style, density=0.2, haze=haze)[0]

    np.testing.assert_array_equal(rain(True), rain(False))


def test_over_blend_streaks_are_semi_transparent_and_brighter_than_the_background():
    # Garg & Nayar: dI = S * (E - B). On flat backgrounds below 0.5 the stated drop brightness is
    # E = 0.5, so one streak pattern changes B = 0.1 four times as much as B = 0.4.
    def change(level):
        clean = np.full((96, 96, 3), level, np.float32)
        rainy, _, _ = add_rain(
            clean, np.random.default_rng(4), density=0.6, blend="over", haze=False
        )
        return (rainy - clean)[..., 0].astype(np.float64)

    dark, bright = change(0.1), change(0.4)
    assert dark.min() >= 0.0 and bright.min() >= 0.0 and dark.max() > 0.05
    assert dark.max() <= 0.4 + 1e-6  # never brighter than the drop itself
    streak = bright > 1e-3
    np.testing.assert_allclose(dark[streak], 4 * bright[streak], rtol=1e-3, atol=1e-5)


def test_style_and_haze_are_checked():
    rng = np.random.default_rng(0)
    clean = np.zeros((8, 8, 3), np.float32)
    with pytest.raises(ValueError, match="style"):
        add_rain(clean, rng, style="drizzle")
    with pytest.raises(ValueError, match="haze"):
        add_rain(clean, rng, haze="fog")
    with pytest.raises(ValueError, match="style"):
        rain_streaks((8, 8), rng, density=0.5, style="drizzle")
