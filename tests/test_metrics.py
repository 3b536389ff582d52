"""Tests for tfderain.metrics: PSNR/SSIM under protocol A (PReNet) and B (MPRNet/Restormer)."""

from __future__ import annotations

import csv
import math
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import pytest

from tfderain.metrics import (
    _box_downsample,
    _correlate_valid_2d,
    _downsample_factor,
    _gaussian_1d,
    _round_half_away,
    _ssim_mean,
    evaluate_pair,
    psnr,
    psnr_float,
    quantize_output,
    rgb_to_y,
    ssim,
)

GOLDEN_CSV = "golden/metrics/rain100h_1-20_prenet.csv"
PSNR_TOL = 1e-3  # dB
SSIM_TOL = 1e-4


@cache
def _read_rgb(path: str) -> np.ndarray:
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FileNotFoundError(path)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


@cache
def _golden_rows(csv_path: str) -> dict[int, dict[str, float]]:
    with open(csv_path, newline="") as fh:
        rows = csv.DictReader(fh)
        return {int(row["image"]): {k: float(v) for k, v in row.items()} for row in rows}


def _uniform(rgb: tuple[int, int, int], shape: tuple[int, int] = (16, 16)) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, dtype=np.uint8), shape + (3,)).copy()


# --------------------------------------------------------------------------------------------
# Golden values: official PReNet outputs on Rain100H pairs 1..20
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", range(1, 21))
def test_reproduces_golden_rain100h_metrics_for_both_protocols(shared_dir: Path, n: int) -> None:
    expected = _golden_rows(str(shared_dir / GOLDEN_CSV))[n]
    output = _read_rgb(str(shared_dir / f"golden/metrics/prenet_rain100h_out/{n}.png"))
    rainy = _read_rgb(str(shared_dir / f"data/Rain100H-20/input/{n}.png"))
    clean = _read_rgb(str(shared_dir / f"data/Rain100H-20/target/{n}.png"))

    got = {}
    got["input_psnr_A"], got["input_ssim_A"] = evaluate_pair(rainy, clean, "A")
    got["output_psnr_A"], got["output_ssim_A"] = evaluate_pair(output, clean, "A")
    got["output_psnr_B"], got["output_ssim_B"] = evaluate_pair(output, clean, "B")

    for column, value in got.items():
        tol = PSNR_TOL if "psnr" in column else SSIM_TOL
        assert abs(value - expected[column]) <= tol, (column, value, expected[column])


def test_psnr_and_ssim_functions_agree_with_evaluate_pair(shared_dir: Path) -> None:
    output = _read_rgb(str(shared_dir / "golden/metrics/prenet_rain100h_out/1.png"))
    clean = _read_rgb(str(shared_dir / "data/Rain100H-20/target/1.png"))
    for protocol in ("A", "B"):
        assert evaluate_pair(output, clean, protocol) == (
            psnr(output, clean, protocol),
            ssim(output, clean, protocol),
        )
    assert psnr(output, clean) == psnr(output, clean, "A")  # A is the default


# --------------------------------------------------------------------------------------------
# Hand-checked behaviour
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["A", "B"])
def test_identical_images_give_infinite_psnr_and_unit_ssim(protocol: str) -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
    assert psnr(img, img.copy(), protocol) == math.inf
    assert ssim(img, img.copy(), protocol) == pytest.approx(1.0, abs=1e-12)


def test_y_of_white_and_black_is_studio_range() -> None:
    white, black = _uniform((255, 255, 255), (2, 2)), _uniform((0, 0, 0), (2, 2))
    np.testing.assert_allclose(rgb_to_y(white, "A"), 235 / 255, rtol=0, atol=1e-12)
    np.testing.assert_allclose(rgb_to_y(black, "A"), 16 / 255, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(rgb_to_y(white, "B"), 235.0)
    np.testing.assert_array_equal(rgb_to_y(black, "B"), 16.0)
    assert rgb_to_y(white, "A").dtype == rgb_to_y(white, "B").dtype == np.float64


def test_y_of_an_arbitrary_pixel_matches_hand_computation() -> None:
    # (200, 100, 50): 16 + (65.481*200 + 128.553*100 + 24.966*50) / 255
    #               = 16 + (13096.2 + 12855.3 + 1248.3) / 255 = 16 + 27199.8 / 255 = 122.666...
    img = _uniform((200, 100, 50), (1, 1))
    assert rgb_to_y(img, "A")[0, 0] == pytest.approx(122.66588235294118 / 255, abs=1e-14)
    assert rgb_to_y(img, "B")[0, 0] == 123.0


def test_protocol_b_y_rounds_exact_ties_away_from_zero() -> None:
    # (5, 65, 25): 65.481*5 + 128.553*65 + 24.966*25 = 327.405 + 8355.945 + 624.15 = 9307.5,
    # 9307.5 / 255 = 36.5, Y = 52.5 exactly in float64: MATLAB round -> 53 (numpy's round -> 52).
    img = _uniform((5, 65, 25), (1, 1))
    assert rgb_to_y(img, "A")[0, 0] * 255 == pytest.approx(52.5, abs=1e-12)
    assert rgb_to_y(img, "B")[0, 0] == 53.0


def test_round_half_away_from_zero() -> None:
    x = np.array([-2.5, -1.5, -0.5, -0.49, 0.49, 0.5, 1.5, 2.5, 2.6])
    np.testing.assert_array_equal(_round_half_away(x), [-3, -2, -1, 0, 0, 1, 2, 3, 3])


def test_psnr_on_uniform_images_matches_hand_computation() -> None:
    out, gt = _uniform((100, 100, 100)), _uniform((101, 101, 101))
    # A: Y differs by (65.481 + 128.553 + 24.966) / 255 / 255 = 219 / 65025, peak 1.
    assert psnr(out, gt, "A") == pytest.approx(20 * math.log10(65025 / 219), abs=1e-9)
    # B: Y = round(16 + 219 * 100 / 255) = round(101.88) = 102 vs round(102.74) = 103, peak 255.
    assert psnr(out, gt, "B") == pytest.approx(20 * math.log10(255), abs=1e-9)


def test_ssim_on_uniform_images_reduces_to_the_luminance_term() -> None:
    out, gt = _uniform((100, 100, 100)), _uniform((101, 101, 101))
    c1 = (0.01 * 255) ** 2

    def luminance(a: float, b: float) -> float:
        return (2 * a * b + c1) / (a * a + b * b + c1)

    a, b = 16 + 219 * 100 / 255, 16 + 219 * 101 / 255
    assert ssim(out, gt, "A") == pytest.approx(luminance(a, b), abs=1e-12)
    assert ssim(out, gt, "B") == pytest.approx(luminance(102, 103), abs=1e-12)


def test_gaussian_valid_correlation_matches_direct_11x11_window() -> None:
    # fspecial('gaussian', 11, 1.5) built directly in 2-D, applied by brute force.
    x = np.arange(-5, 6, dtype=np.float64)
    window = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * 1.5**2))
    window /= window.sum()
    np.testing.assert_allclose(np.outer(_gaussian_1d(), _gaussian_1d()), window, atol=1e-17)

    rng = np.random.default_rng(1)
    img = rng.uniform(0, 255, size=(15, 18))
    expected = np.array(
        [[np.sum(window * img[i : i + 11, j : j + 11]) for j in range(8)] for i in range(5)]
    )
    got = _correlate_valid_2d(img, _gaussian_1d())
    assert got.shape == (5, 8) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)


def test_ssim_rejects_images_smaller_than_the_window() -> None:
    with pytest.raises(ValueError, match="11x11"):
        _ssim_mean(np.zeros((10, 20)), np.zeros((10, 20)))


# --------------------------------------------------------------------------------------------
# Protocol A's automatic downsampling (never triggered by Rain100H, min side 320 -> f = 1)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("height", "width", "f"),
    [
        (320, 480, 1),  # 1.25
        (100, 50, 1),  # max(1, round(0.195)) = 1
        (128, 900, 1),  # round(0.5) = 1 (MATLAB), the max(1, .) would hide numpy's 0 anyway
        (383, 500, 1),  # 1.496
        (384, 500, 2),  # 1.5 -> 2
        (600, 800, 2),  # 2.34
        (900, 640, 3),  # 2.5 -> 3 (numpy's half-to-even would give 2)
        (1152, 2000, 5),  # 4.5 -> 5 (numpy would give 4)
    ],
)
def test_downsample_factor_uses_matlab_rounding(height: int, width: int, f: int) -> None:
    assert _downsample_factor(height, width) == f


def test_box_downsample_f2_matches_hand_computation() -> None:
    # f = 2: each output averages [i, i+1] x [j, j+1]; 'symmetric' pads the last row/column
    # with a copy of itself. x[i, j] = 5 i + j; kept rows/columns 0, 2, 4.
    img = np.arange(25, dtype=np.float64).reshape(5, 5)
    expected = np.array([[3.0, 5.0, 6.5], [13.0, 15.0, 16.5], [20.5, 22.5, 24.0]])
    np.testing.assert_allclose(_box_downsample(img, 2), expected, rtol=0, atol=1e-12)


def test_box_downsample_f3_matches_hand_computation() -> None:
    # f = 3: each output averages [i-1, i+1]; kept rows/columns 0 and 3 average the mirrored
    # taps {0, 0, 1} and {2, 3, 3}. x[i, j] = 4 i + j is linear, so rows and columns add up:
    # rows 4*(0+0+1)/3 = 4/3 and 4*(2+3+3)/3 = 32/3; columns 1/3 and 8/3.
    img = np.arange(16, dtype=np.float64).reshape(4, 4)
    expected = np.array([[5 / 3, 4.0], [11.0, 40 / 3]])
    np.testing.assert_allclose(_box_downsample(img, 3), expected, rtol=0, atol=1e-12)


def test_box_downsample_is_identity_for_f1() -> None:
    img = np.arange(12, dtype=np.float64).reshape(3, 4)
    np.testing.assert_array_equal(_box_downsample(img, 1), img)


def test_protocol_a_ssim_downsamples_large_images_and_b_does_not() -> None:
    rng = np.random.default_rng(2)
    gt = cv2.GaussianBlur(rng.integers(0, 256, size=(600, 800, 3), dtype=np.uint8), (7, 7), 2)
    noise = rng.integers(-20, 21, size=gt.shape)
    out = np.clip(gt.astype(np.int64) + noise, 0, 255).astype(np.uint8)

    a_out, a_gt = 255 * rgb_to_y(out, "A"), 255 * rgb_to_y(gt, "A")
    assert _downsample_factor(*a_out.shape) == 2
    down_out, down_gt = _box_downsample(a_out, 2), _box_downsample(a_gt, 2)
    assert down_out.shape == (300, 400)
    expected_a = _ssim_mean(down_out, down_gt)
    assert ssim(out, gt, "A") == pytest.approx(expected_a, abs=1e-12)
    assert abs(expected_a - _ssim_mean(a_out, a_gt)) > 1e-3  # downsampling changes the score

    b_out, b_gt = rgb_to_y(out, "B"), rgb_to_y(gt, "B")
    assert ssim(out, gt, "B") == pytest.approx(_ssim_mean(b_out, b_gt), abs=1e-12)


# --------------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [psnr, ssim, evaluate_pair])
def test_metrics_reject_float_images(fn) -> None:
    img = np.zeros((16, 16, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="uint8"):
        fn(img, img)


@pytest.mark.parametrize("fn", [psnr, ssim, evaluate_pair])
def test_metrics_reject_shape_mismatch_naming_both_shapes(fn) -> None:
    a = np.zeros((16, 20, 3), dtype=np.uint8)
    b = np.zeros((20, 16, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"\(16, 20, 3\).*\(20, 16, 3\)"):
        fn(a, b)


def test_metrics_reject_non_rgb_and_unknown_protocol() -> None:
    gray = np.zeros((16, 16), dtype=np.uint8)
    rgb = np.zeros((16, 16, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="H, W, 3"):
        psnr(gray, gray)
    with pytest.raises(ValueError, match="protocol"):
        psnr(rgb, rgb, "C")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="uint8"):
        rgb_to_y(rgb.astype(np.float64), "A")


# --------------------------------------------------------------------------------------------
# quantize_output
# --------------------------------------------------------------------------------------------

_CRAFTED = [0.9999, 1.2, -0.1, 0.0, 1.0, 0.5 / 255, 1.5 / 255, 2.5 / 255, 254.5 / 255]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_quantize_output_protocol_a_truncates(dtype) -> None:
    x = np.array(_CRAFTED, dtype=dtype)
    q = quantize_output(x, "A")
    assert q.dtype == np.uint8
    np.testing.assert_array_equal(q, [254, 255, 0, 0, 255, 0, 1, 2, 254])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_quantize_output_protocol_b_rounds_half_to_even(dtype) -> None:
    x = np.array(_CRAFTED, dtype=dtype)
    # The x.5 / 255 values are exact ties after multiplying by 255 in this precision.
    np.testing.assert_array_equal(x[5:] * dtype(255), [0.5, 1.5, 2.5, 254.5])
    q = quantize_output(x, "B")
    assert q.dtype == np.uint8
    np.testing.assert_array_equal(q, [255, 255, 0, 0, 255, 0, 2, 2, 254])


def test_quantize_output_matches_the_official_conversions_on_a_dense_grid() -> None:
    x = np.linspace(-0.01, 1.01, 200_001, dtype=np.float32).reshape(-1, 1, 1)
    clipped = np.clip(x, 0, 1)
    # PReNet test_PReNet.py: np.uint8(255 * clamp(out, 0, 1)), float32.
    np.testing.assert_array_equal(quantize_output(x, "A"), np.uint8(255 * clipped))
    skimage = pytest.importorskip("skimage")
    np.testing.assert_array_equal(quantize_output(x, "B"), skimage.img_as_ubyte(clipped))


def test_quantize_output_keeps_shape_and_rejects_bad_input() -> None:
    x = np.full((2, 5, 7, 3), 0.5, dtype=np.float32)
    assert quantize_output(x, "A").shape == x.shape
    with pytest.raises(ValueError, match="float"):
        quantize_output(np.zeros((4, 4, 3), dtype=np.uint8), "A")
    with pytest.raises(ValueError, match="NaN"):
        quantize_output(np.array([0.5, np.nan]), "B")
    with pytest.raises(ValueError, match="protocol"):
        quantize_output(x, "C")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Protocol rgb
# --------------------------------------------------------------------------------------------


def _skimage_rgb(output: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """The rgb protocol as scikit-image computes it (an independent implementation).

    skimage filters with 'same' size (``scipy.ndimage.gaussian_filter``, truncate 3.5, so an
    11-tap window for sigma 1.5) and then averages the SSIM map without its 5-pixel border, i.e.
    exactly over the positions of the 'valid' map.
    """
    metrics = pytest.importorskip("skimage.metrics")
    p = metrics.peak_signal_noise_ratio(target, output, data_range=255)
    s = metrics.structural_similarity(
        target,
        output,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        channel_axis=2,
    )
    return p, s


@pytest.mark.parametrize("n", [1, 7])
def test_rgb_protocol_matches_scikit_image_on_official_outputs(shared_dir: Path, n: int) -> None:
    output = _read_rgb(str(shared_dir / f"golden/metrics/prenet_rain100h_out/{n}.png"))
    clean = _read_rgb(str(shared_dir / f"data/Rain100H-20/target/{n}.png"))
    got = evaluate_pair(output, clean, "rgb")
    expected = _skimage_rgb(output, clean)
    assert got[0] == pytest.approx(expected[0], abs=1e-9)
    assert got[1] == pytest.approx(expected[1], abs=1e-9)


def test_rgb_protocol_matches_scikit_image_on_random_images() -> None:
    rng = np.random.default_rng(3)
    target = rng.integers(0, 256, (23, 31, 3), dtype=np.uint8)
    noise = rng.integers(-40, 41, target.shape)
    output = np.clip(target.astype(int) + noise, 0, 255).astype(np.uint8)
    expected = _skimage_rgb(output, target)
    assert psnr(output, target, "rgb") == pytest.approx(expected[0], abs=1e-9)
    assert ssim(output, target, "rgb") == pytest.approx(expected[1], abs=1e-9)


def test_rgb_psnr_takes_the_mse_over_all_three_channels() -> None:
    # Only the red channel differs, by 6: MSE over the three channels = 36 / 3 = 12.
    target = _uniform((100, 100, 100))
    output = _uniform((106, 100, 100))
    assert psnr(output, target, "rgb") == pytest.approx(10 * math.log10(255**2 / 12), abs=1e-12)


def test_rgb_ssim_is_the_mean_of_the_channel_ssims() -> None:
    # Uniform channels: each channel's SSIM reduces to the luminance term
    # (2 a b + C1) / (a^2 + b^2 + C1); the green and blue channels are equal (SSIM 1).
    target = _uniform((100, 50, 200))
    output = _uniform((120, 50, 200))
    c1 = (0.01 * 255) ** 2
    red = (2 * 120 * 100 + c1) / (120**2 + 100**2 + c1)
    assert ssim(output, target, "rgb") == pytest.approx((red + 1 + 1) / 3, abs=1e-12)
    assert psnr(target, target.copy(), "rgb") == math.inf
    assert ssim(target, target.copy(), "rgb") == pytest.approx(1.0, abs=1e-12)


def test_rgb_protocol_has_no_luma_and_rounds_outputs_to_nearest() -> None:
    with pytest.raises(ValueError, match="rgb"):
        rgb_to_y(_uniform((1, 2, 3)), "rgb")
    x = np.array(_CRAFTED, dtype=np.float32)
    np.testing.assert_array_equal(quantize_output(x, "rgb"), quantize_output(x, "B"))


def test_protocol_output_rules_are_the_processors() -> None:
    from tfderain.metrics import _OUTPUT_RULES
    from tfderain.processing import PROTOCOL_RULES

    for protocol, rule in PROTOCOL_RULES.items():
        assert _OUTPUT_RULES[protocol] == rule


def test_luma_ratio_weighs_the_channels_as_bt601_without_offset() -> None:
    from tfderain.metrics import luma_ratio

    target = np.zeros((4, 4, 3), np.uint8)
    target[...] = (100, 150, 200)
    assert luma_ratio(target, target) == 1.0
    assert luma_ratio(target // 2, target) == pytest.approx(0.5)
    # Pure red against pure green: 0.299 / 0.587.
    red, green = np.zeros_like(target), np.zeros_like(target)
    red[..., 0], green[..., 1] = 255, 255
    assert luma_ratio(red, green) == pytest.approx(0.299 / 0.587)
    assert np.isnan(luma_ratio(red, np.zeros_like(target)))
    with pytest.raises(ValueError):
        luma_ratio(red, target[:2])


def test_psnr_float_compares_float_outputs_without_rounding() -> None:
    a = np.full((4, 4, 3), 0.5)
    # an error of a tenth of an 8-bit step counts: MSE (0.1/255)^2 gives 10 log10(1/MSE)
    assert psnr_float(a + 0.1 / 255, a) == pytest.approx(20 * np.log10(2550))
    assert psnr_float(a, a) == math.inf
    assert psnr_float(a * 255 + 1, a * 255, peak=255) == pytest.approx(20 * np.log10(255))
    with pytest.raises(ValueError, match=r"same shape; got \(4, 4, 3\) and \(4, 4\)"):
        psnr_float(a, a[..., 0])
