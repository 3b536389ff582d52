"""PSNR and SSIM under the two published deraining protocols (Y channel) and on RGB.

Deraining papers report PSNR/SSIM on the Y channel of 8-bit RGB images, but the two evaluation
scripts in common use differ in small details that move the numbers by a few hundredths of a dB.
This module reproduces both, in float64 numpy, so results can be compared with published tables,
and adds a third protocol, ``"rgb"``, for comparisons on all three colour channels.

Protocol ``"A"`` -- PReNet (Ren et al., "Progressive Image Deraining Networks: A Better and Simpler
Baseline", CVPR 2019), MATLAB scripts in ``statistic/`` of csdwren/PReNet
(``statistic_rain100H.m`` with its ``psnr.m`` and ``ssim.m``):

* ``Y = rgb2ycbcr(im2double(I))(:, :, 1)``: double precision, **not rounded**, in [16/255, 235/255].
* PSNR with peak 1: ``10 * log10(1 / MSE)`` (``psnr.m`` picks peak ``2^1 - 1`` because max(Y) <= 2).
* SSIM with automatic downsampling (Wang's 2009 ``ssim.m``) on ``255 * Y``: with
  ``f = max(1, round(min(H, W) / 256))``, if ``f > 1`` both images are filtered by an ``f x f``
  box filter ('symmetric' boundary, 'same' size) and every ``f``-th row/column is kept, starting at
  the first. Then the SSIM map below, averaged.

Protocol ``"B"`` -- MPRNet (Zamir et al., CVPR 2021, swz30/MPRNet) and Restormer (Zamir et al.,
CVPR 2022, swz30/Restormer), ``evaluate_PSNR_SSIM.m``:

* ``Y8 = rgb2ycbcr(uint8 I)(:, :, 1)``: rounded half away from zero and saturated to 0..255.
* PSNR ``20 * log10(255 / RMSE)`` on the integer Y values.
* SSIM (Wang's 2003 ``SSIM_index``) on ``double(Y8)``, **no downsampling**, averaged.

Protocol ``"rgb"`` -- PSNR and SSIM over the three RGB channels of the 8-bit images (no colour
conversion, no rounding step: the 8-bit values themselves, as float64):

* PSNR ``10 * log10(255^2 / MSE)``, peak 255, the MSE taken over all ``H x W x 3`` values at
  once (not a mean of per-channel PSNRs).
* SSIM: the SSIM map below computed on each channel separately (values 0..255), each map
  averaged, then the mean of the three channel means; **no downsampling**. This is what
  ``skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=255, channel_axis=2)`` computes: skimage filters with
  'same' size and then drops the 5-pixel border where the window overlaps the edge, which leaves
  exactly the 'valid' map used here.

The output rule of ``"rgb"`` (:func:`quantize_output`) is rounding to nearest, ties to even (as
``skimage.img_as_ubyte``): no official script defines one.

Common SSIM map (Wang et al., "Image Quality Assessment: From Error Visibility to Structural
Similarity", IEEE TIP 2004): 11x11 Gaussian window (sigma 1.5, normalised to sum 1), 'valid'
2-D correlation (output ``(H-10) x (W-10)``), ``L = 255``, ``K1 = 0.01``, ``K2 = 0.03``.

All metric functions take HxWx3 ``uint8`` RGB arrays. The 8-bit quantisation is part of each
protocol (the official test scripts save 8-bit PNGs before scoring), so float images are
refused: convert model outputs first with :func:`quantize_output`, which reproduces the official
test scripts' float -> uint8 step for each protocol. The one exception, :func:`psnr_float`,
compares two float outputs of a model with each other (an exported file against its Keras
model), where no protocol applies.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

__all__ = [
    "PROTOCOLS",
    "Protocol",
    "check_protocol",
    "evaluate_pair",
    "luma_ratio",
    "psnr",
    "psnr_float",
    "quantize_output",
    "rgb_to_y",
    "ssim",
]

Protocol = Literal["A", "B", "rgb"]
#: Protocol names accepted by every metric function.
PROTOCOLS = ("A", "B", "rgb")
#: The output rule (:func:`tfderain.processing.round_output`) of each protocol's scripts.
_OUTPUT_RULES = {"A": "truncate", "B": "round", "rgb": "round"}

# ITU-R BT.601 luma coefficients as used by MATLAB ``rgb2ycbcr`` (for 0..255 input and output).
_Y_COEFFS = (65.481, 128.553, 24.966)
_Y_OFFSET = 16.0

# SSIM constants (Wang et al. 2004).
_SSIM_WINDOW_SIZE = 11
_SSIM_SIGMA = 1.5
_SSIM_L = 255.0
_SSIM_C1 = (0.01 * _SSIM_L) ** 2  # 6.5025
_SSIM_C2 = (0.03 * _SSIM_L) ** 2  # 58.5225


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def check_protocol(protocol: str) -> str:
    """``protocol`` if it is one of :data:`PROTOCOLS`, else a ``ValueError`` listing them."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}; got {protocol!r}")
    return protocol


def _check_image(img: np.ndarray, name: str) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise ValueError(
            f"{name} must be a uint8 RGB image (the evaluation protocols are defined on 8-bit "
            f"images); got dtype {img.dtype}. Convert float model outputs in [0, 1] with "
            "quantize_output(x, protocol) first."
        )
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"{name} must have shape (H, W, 3) (RGB); got shape {img.shape}")
    return img


def _check_pair(output: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    output = _check_image(output, "output")
    target = _check_image(target, "target")
    if output.shape != target.shape:
        raise ValueError(
            f"output and target must have the same shape; got output {output.shape} "
            f"and target {target.shape}"
        )
    return output, target


def _round_half_away(x: np.ndarray) -> np.ndarray:
    """MATLAB ``round``: to the nearest integer, ties away from zero (numpy rounds ties to even)."""
    x = np.asarray(x, dtype=np.float64)
    rounded = np.round(x)  # exact except for ties, where it picks the even neighbour
    truncated = np.trunc(x)
    ties = np.abs(x - truncated) == 0.5
    return np.where(ties, truncated + np.sign(x), rounded)


def _gaussian_1d(size: int = _SSIM_WINDOW_SIZE, sigma: float = _SSIM_SIGMA) -> np.ndarray:
    """1-D factor of MATLAB ``fspecial('gaussian', size, sigma)``.

    The 2-D window is ``outer(g, g)``; since it is separable and normalised, normalising each 1-D
    factor to sum 1 gives the same window as normalising the 2-D one.
    """
    half = (size - 1) / 2.0
    x = np.arange(size, dtype=np.float64) - half
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _correlate_valid_1d(img: np.ndarray, kernel: np.ndarray, axis: int) -> np.ndarray:
    """1-D correlation along ``axis`` with 'valid' boundary handling (output shrinks by k-1)."""
    k = kernel.size
    n = img.shape[axis] - k + 1
    out = np.zeros(img.shape[:axis] + (n,) + img.shape[axis + 1 :], dtype=np.float64)
    for i in range(k):
        index = [slice(None)] * img.ndim
        index[axis] = slice(i, i + n)
        out += kernel[i] * img[tuple(index)]
    return out


def _correlate_valid_2d(img: np.ndarray, kernel_1d: np.ndarray) -> np.ndarray:
    """2-D 'valid' correlation with the separable window ``outer(kernel_1d, kernel_1d)``.

    Equivalent to MATLAB ``filter2(window, img, 'valid')`` (up to float64 rounding).
    """
    return _correlate_valid_1d(_correlate_valid_1d(img, kernel_1d, axis=0), kernel_1d, axis=1)


def _ssim_mean(a: np.ndarray, b: np.ndarray) -> float:
    """Mean of the SSIM map of two grey images (float64, range 0..255), Gaussian window, 'valid'."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if min(a.shape) < _SSIM_WINDOW_SIZE:
        raise ValueError(
            f"SSIM needs images of at least {_SSIM_WINDOW_SIZE}x{_SSIM_WINDOW_SIZE} pixels "
            f"(after any downsampling); got {a.shape[0]}x{a.shape[1]}"
        )
    g = _gaussian_1d()
    mu_a = _correlate_valid_2d(a, g)
    mu_b = _correlate_valid_2d(b, g)
    mu_a2 = mu_a * mu_a
    mu_b2 = mu_b * mu_b
    mu_ab = mu_a * mu_b
    sigma_a2 = _correlate_valid_2d(a * a, g) - mu_a2
    sigma_b2 = _correlate_valid_2d(b * b, g) - mu_b2
    sigma_ab = _correlate_valid_2d(a * b, g) - mu_ab
    ssim_map = ((2.0 * mu_ab + _SSIM_C1) * (2.0 * sigma_ab + _SSIM_C2)) / (
        (mu_a2 + mu_b2 + _SSIM_C1) * (sigma_a2 + sigma_b2 + _SSIM_C2)
    )
    return float(ssim_map.mean())


def _downsample_factor(height: int, width: int) -> int:
    """Protocol A's ``f = max(1, round(min(M, N) / 256))`` with MATLAB rounding (ties up)."""
    return max(1, int(_round_half_away(np.float64(min(height, width)) / 256.0)))


def _box_downsample(img: np.ndarray, f: int) -> np.ndarray:
    """Protocol A's downsampling: ``imfilter(img, ones(f)/f^2, 'symmetric', 'same')`` then
    ``img(1:f:end, 1:f:end)``.

    MATLAB centres an ``f``-tap kernel at tap ``floor((f + 1) / 2)`` (1-based), so each output pixel
    averages ``floor((f - 1) / 2)`` pixels before it and ``ceil((f - 1) / 2)`` after it, along each
    axis. 'symmetric' padding mirrors including the edge pixel (numpy ``mode="symmetric"``).
    """
    img = np.asarray(img, dtype=np.float64)
    if f <= 1:
        return img
    before = (f - 1) // 2
    after = f - 1 - before
    padded = np.pad(img, ((before, after), (before, after)), mode="symmetric")
    box = np.full(f, 1.0 / f)
    filtered = _correlate_valid_2d(padded, box)  # same size as img
    return filtered[::f, ::f]


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def rgb_to_y(img_uint8: np.ndarray, protocol: Protocol) -> np.ndarray:
    """Luma channel of an 8-bit RGB image, as protocols ``"A"`` and ``"B"`` compute it.

    ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` (MATLAB ``rgb2ycbcr``, BT.601), with R, G,
    B in 0..255, evaluated in float64 in the order MATLAB's ``rgb2ycbcr`` uses
    (``65.481/255 * R + 128.553/255 * G + 24.966/255 * B + 16``).

    Args:
        img_uint8: HxWx3 ``uint8`` RGB image.
        protocol: ``"A"`` (PReNet ``statistic/`` scripts): ``rgb2ycbcr(im2double(I))``, i.e. the
            value above divided by 255, unrounded, float64 in [16/255, 235/255].
            ``"B"`` (MPRNet/Restormer ``evaluate_PSNR_SSIM.m``): ``rgb2ycbcr`` on the ``uint8``
            image, i.e. the value above rounded half away from zero and saturated to 0..255,
            returned as float64 holding those integers. (``"rgb"`` has no luma channel.)

    Returns:
        HxW float64 array.
    """
    check_protocol(protocol)
    if protocol == "rgb":
        raise ValueError("protocol 'rgb' scores the RGB channels; it has no luma channel")
    img = _check_image(img_uint8, "img_uint8").astype(np.float64)
    # Same float64 evaluation order as MATLAB: coefficients pre-divided by 255, weighted sum in
    # R, G, B order, offset added last. The order matters for protocol B, where a handful of
    # pixels land within 1e-14 of a .5 tie and the rounding direction depends on it.
    kr, kg, kb = (k / 255.0 for k in _Y_COEFFS)
    if protocol == "A":
        rgb = img / 255.0  # im2double
        offset = _Y_OFFSET / 255.0
    else:
        rgb = img
        offset = _Y_OFFSET
    y = kr * rgb[..., 0] + kg * rgb[..., 1] + kb * rgb[..., 2] + offset
    if protocol == "A":
        return y
    return np.clip(_round_half_away(y), 0.0, 255.0)


def _planes(img: np.ndarray, protocol: Protocol) -> np.ndarray:
    """HxWxC float64: the Y channel (C = 1) for ``"A"``/``"B"``, the RGB values for ``"rgb"``."""
    if protocol == "rgb":
        return img.astype(np.float64)
    return rgb_to_y(img, protocol)[..., None]


def _psnr_from_planes(out: np.ndarray, gt: np.ndarray, protocol: Protocol) -> float:
    diff = out - gt
    mse = float(np.mean(diff * diff))  # over every pixel (and, for "rgb", every channel)
    if mse == 0.0:
        return math.inf
    if protocol == "A":
        return 10.0 * math.log10(1.0 / mse)
    if protocol == "B":
        return 20.0 * math.log10(255.0 / math.sqrt(mse))
    return 10.0 * math.log10(255.0 * 255.0 / mse)


def _ssim_from_planes(out: np.ndarray, gt: np.ndarray, protocol: Protocol) -> float:
    if protocol == "A":
        a, b = 255.0 * out[..., 0], 255.0 * gt[..., 0]
        f = _downsample_factor(*a.shape)
        if f > 1:
            a, b = _box_downsample(a, f), _box_downsample(b, f)
        return _ssim_mean(a, b)
    channels = [_ssim_mean(out[..., c], gt[..., c]) for c in range(out.shape[-1])]
    return float(np.mean(channels))


def psnr(output: np.ndarray, target: np.ndarray, protocol: Protocol = "A") -> float:
    """PSNR (dB) of ``output`` against ``target``.

    Protocol ``"A"`` (PReNet ``statistic/psnr.m``): ``10 log10(1 / MSE)`` on the unrounded Y in
    [0, 1]. Protocol ``"B"`` (MPRNet/Restormer ``evaluate_PSNR_SSIM.m``):
    ``20 log10(255 / RMSE)`` on the 8-bit rounded Y. See :func:`rgb_to_y`. Protocol ``"rgb"``:
    ``10 log10(255^2 / MSE)`` with the MSE over all three RGB channels.

    Args:
        output: HxWx3 ``uint8`` RGB image (e.g. a derained result).
        target: HxWx3 ``uint8`` RGB ground truth, same shape.
        protocol: ``"A"``, ``"B"`` or ``"rgb"``.

    Returns:
        PSNR in dB; ``math.inf`` when the compared values are identical (MSE = 0), as the MATLAB
        scripts give (division by zero).

    Raises:
        ValueError: if an image is not ``uint8`` HxWx3, the shapes differ, or the protocol is
            unknown.
    """
    check_protocol(protocol)
    output, target = _check_pair(output, target)
    return _psnr_from_planes(_planes(output, protocol), _planes(target, protocol), protocol)


def ssim(output: np.ndarray, target: np.ndarray, protocol: Protocol = "A") -> float:
    """Mean SSIM of ``output`` against ``target`` (values in the range 0..255).

    Every protocol uses the 11x11 Gaussian window (sigma 1.5), ``K = (0.01, 0.03)``, ``L = 255``
    and 'valid' filtering. Protocol ``"A"`` (PReNet ``statistic/ssim.m``, Wang 2009) works on
    ``255 * Y`` unrounded and first downsamples by ``f = max(1, round(min(H, W) / 256))`` (box
    filter + subsampling) when ``f > 1``. Protocol ``"B"`` (``SSIM_index`` in MPRNet/Restormer
    ``evaluate_PSNR_SSIM.m``, Wang 2003) works on the 8-bit rounded Y, without downsampling.
    Protocol ``"rgb"`` averages the SSIM of the R, G and B channels (8-bit values), without
    downsampling.

    Args:
        output: HxWx3 ``uint8`` RGB image.
        target: HxWx3 ``uint8`` RGB ground truth, same shape.
        protocol: ``"A"``, ``"B"`` or ``"rgb"``.

    Returns:
        Mean of the SSIM map; 1.0 for identical images.

    Raises:
        ValueError: if an image is not ``uint8`` HxWx3, the shapes differ, the image is smaller
            than the 11x11 window (after downsampling), or the protocol is unknown.
    """
    check_protocol(protocol)
    output, target = _check_pair(output, target)
    return _ssim_from_planes(_planes(output, protocol), _planes(target, protocol), protocol)


def evaluate_pair(
    output: np.ndarray, target: np.ndarray, protocol: Protocol = "A"
) -> tuple[float, float]:
    """``(psnr, ssim)`` of one image pair under ``protocol``, converting each image once.

    See :func:`psnr` and :func:`ssim` for the protocols and the accepted inputs.
    """
    check_protocol(protocol)
    output, target = _check_pair(output, target)
    out, gt = _planes(output, protocol), _planes(target, protocol)
    return _psnr_from_planes(out, gt, protocol), _ssim_from_planes(out, gt, protocol)


#: ITU-R BT.601 luma weights of R, G and B (no offset, no scaling): the brightness of a pixel.
_LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def luma_ratio(output: np.ndarray, target: np.ndarray) -> float:
    """Mean BT.601 luma of ``output`` over that of ``target`` (1.0: brightness kept).

    ``Y = 0.299 R + 0.587 G + 0.114 B`` without the 16/255 offset of ``rgb2ycbcr``, so a dark
    output is not hidden behind a constant. A restoration that darkens the scene by 8 % gives
    0.92. Both images are 8-bit RGB of one shape; a black ``target`` gives ``nan``.
    """
    output, target = _check_pair(output, target)
    weights = np.asarray(_LUMA_WEIGHTS)
    out, gt = float((output @ weights).mean()), float((target @ weights).mean())
    return out / gt if gt > 0 else float("nan")


def quantize_output(x: np.ndarray, protocol: Protocol) -> np.ndarray:
    """Convert a float model output in [0, 1] to ``uint8`` as each protocol's test script does.

    * ``"A"`` -- PReNet ``test_PReNet.py``: clamp to [0, 1], then ``np.uint8(255 * out)``, i.e.
      **truncation** ``floor(255 * x)``: 0.9999 -> 254, only exactly 1.0 -> 255.
    * ``"B"`` -- MPRNet/Restormer test scripts: clamp to [0, 1], then ``skimage.img_as_ubyte``,
      which multiplies by 255 and rounds with ``np.rint``, i.e. to nearest with **ties to even**
      (0.5/255 -> 0, 1.5/255 -> 2); torch's ``(x * 255).round()`` rounds the same way.
    * ``"rgb"`` -- no official script: rounds like ``"B"``.

    The product ``255 * x`` is computed in the input's float precision (float16 is promoted to
    float32), as in the official scripts where the network output is float32, so values whose
    product lands on an integer or a .5 tie behave as they do there.

    Args:
        x: float array (any shape, e.g. HxWx3 or NxHxWx3) with values nominally in [0, 1];
            values outside are clamped.
        protocol: ``"A"``, ``"B"`` or ``"rgb"``.

    Returns:
        ``uint8`` array of the same shape.

    Raises:
        ValueError: if ``x`` is not a floating-point array, contains NaN/inf, or the protocol is
            unknown.
    """
    check_protocol(protocol)
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"quantize_output expects a float array in [0, 1]; got dtype {x.dtype}")
    if not np.all(np.isfinite(x)):
        raise ValueError("quantize_output got NaN or infinite values")
    from tfderain.processing import round_output

    # A: truncation (np.uint8 of a non-negative float); B and rgb: np.rint, ties to even.
    return round_output(x, _OUTPUT_RULES[protocol]).numpy()


def psnr_float(output: np.ndarray, target: np.ndarray, peak: float = 1.0) -> float:
    """PSNR (dB) of two float arrays of the same shape: ``10 log10(peak^2 / MSE)`` over every
    value, in float64, without rounding or clamping.

    Not a score of the published protocols (those are defined on 8-bit images, :func:`psnr`):
    it measures how far one float output of a model is from another, e.g. a quantized TFLite
    file's from its Keras model's, where an error below one 8-bit step still counts.

    Returns:
        PSNR in dB; ``math.inf`` for equal arrays.

    Raises:
        ValueError: if the shapes differ.
    """
    a, b = np.asarray(output, np.float64), np.asarray(target, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"output and target must have the same shape; got {a.shape} and {b.shape}")
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(peak * peak / mse)
