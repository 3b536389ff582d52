"""Synthetic rain: streak layers rendered on a clean image, deterministic given a numpy Generator.

The model follows how the standard synthetic deraining sets were made:

* Yang et al., "Deep Joint Rain Detection and Removal from a Single Image", CVPR 2017 (Rain100L,
  Rain100H): ``O = B + sum_t S_t`` (additive, clipped) -- Rain100L has one layer of sparse thin
  streaks, Rain100H up to five streak layers in different directions; their heavy-rain model adds
  a veil ``O = alpha * (B + sum_t S_t) + (1 - alpha) * A`` (atmospheric light ``A``,
  transmission ``alpha``).
* Fu et al., "Removing rain from single images via a deep detail network", CVPR 2017 (Rain1400):
  streaks made in Photoshop (noise, motion blur) and composited with a screen-like blend,
  ``O = 1 - (1 - B)(1 - S)``; 14 streak orientations/magnitudes per clean image.
* Zhang & Patel, "Density-aware Single Image De-raining using a Multi-stream Dense Network"
  (DID-MDN), CVPR 2018: rain density labelled as three levels, light / medium / heavy.

One streak layer ``S`` (:func:`rain_streaks`) is made as in Photoshop:

1. seeds: uniform noise thresholded so that a fraction ``p`` of pixels survive (drawn directly as
   a binomial count of uniformly placed seeds); each seed gets a random brightness;
2. width: the seeds are blurred by a Gaussian of standard deviation ``sigma``;
3. motion blur: the result is filtered with a line kernel of length ``L`` rotated to the streak
   angle, whose weight fades over the outer quarter at each end (streaks taper); the combined
   kernel is normalised to peak 1, so an isolated streak keeps its seed's brightness.

Seeds are drawn on a margin around the image so streaks enter from outside the frame.

Every length is given at a reference image size of 512 pixels and multiplied by ``streak_scale``
(default ``max(H, W) / 512``); the seed fraction is divided by ``streak_scale**2`` so the rain
covers the same share of the image at any resolution. With ``d`` the density in [0, 1]:

=====================  ===========================================================================
parameter              range
=====================  ===========================================================================
layers                 ``n_max = 1 + round(2 * max(0, 3d - 1))`` (1 for light rain, 3 at
                       ``d = 2/3``, 5 at ``d = 1``); ``n`` uniform in ``[ceil(n_max / 2), n_max]``
angle                  image direction ``theta`` uniform in [-30, 30] degrees from vertical (or the
                       ``angle`` argument); each layer ``theta + U(-10, 10)`` degrees; positive
                       angles lean the top of a streak to the right, like ``/``
seed fraction ``p``    ``(0.0008 + 0.0032 d) * U(0.7, 1.3)`` per layer, at reference scale
seed brightness        layer brightness ``U(0.5, 0.8)`` times ``U(0.25, 1)`` per seed
length ``L``           ``U(10, 40) + 30 d`` pixels per layer (at least 3 pixels after scaling)
width ``sigma``        ``U(0.3, 0.5 + 0.7 d)`` pixels (no blur below 0.25 pixel after scaling)
blend                  ``"add"`` (``clip(B + S)``, Rain100L/H) or ``"screen"``
                       (``1 - (1 - B)(1 - S)``, Rain1400-like), chosen with equal probability
haze                   medium and heavy rain only: ``h = U(0, 0.25) * max(0, 1.5 (d - 1/3))``,
                       ``A = U(0.75, 0.95)`` grey, ``O = (1 - h) O + h A``
=====================  ===========================================================================

:func:`density_level` maps ``d`` to DID-MDN's classes (:data:`LEVELS`) with thresholds 1/3, 2/3.
"""

from __future__ import annotations

import math
from typing import Literal

import cv2
import numpy as np

__all__ = ["LEVELS", "add_rain", "density_level", "rain_streaks"]

#: DID-MDN rain-density classes, indexed by :func:`density_level`.
LEVELS = ("light", "medium", "heavy")

Blend = Literal["add", "screen"]

REFERENCE_SIZE = 512
ANGLE_RANGE = 30.0
LAYER_ANGLE_JITTER = 10.0
LENGTH_RANGE = (10.0, 40.0)
MIN_LENGTH = 3.0


def density_level(d: float) -> int:
    """The DID-MDN class of a density in [0, 1]: 0 light (< 1/3), 1 medium (< 2/3), 2 heavy."""
    if not 0.0 <= d <= 1.0:
        raise ValueError(f"density must be in [0, 1], got {d}")
    if d < 1 / 3:
        return 0
    return 1 if d < 2 / 3 else 2


def _streak_kernel(length: float, angle: float, sigma: float) -> np.ndarray:
    """A line of ``length`` pixels at ``angle`` degrees from vertical, blurred, with peak 1."""
    size = int(math.ceil(length + 6 * sigma)) | 1
    line = np.zeros((size, size), np.float32)
    c = size // 2
    half = (length - 1) / 2
    # A vertical line whose brightness fades over the outer quarter at each end (real streaks
    # taper), then rotated about the kernel centre.
    taper = max(1.0, length / 4)
    offsets = np.abs(np.arange(size, dtype=np.float32) - c)
    line[:, c] = np.clip((half + 0.5 - offsets) / taper, 0.0, 1.0)
    # cv2 rotates counter-clockwise for positive angles; ours lean the top to the right (clockwise).
    rot = cv2.getRotationMatrix2D((float(c), float(c)), -angle, 1.0)
    kernel = cv2.warpAffine(line, rot, (size, size), flags=cv2.INTER_LINEAR)
    if sigma >= 0.25:
        kernel = cv2.GaussianBlur(kernel, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
    return kernel / kernel.max()


def rain_streaks(
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    density: float,
    angle: float | None = None,
    streak_scale: float | None = None,
) -> np.ndarray:
    """The rain layer ``sum_t S_t``: an ``(H, W)`` float32 array in [0, 1].

    Args:
        shape: ``(height, width)`` of the image.
        rng: source of every random choice.
        density: rain density in [0, 1] (number of layers, streak count, brightness, width).
        angle: mean streak direction in degrees from vertical (positive leans the top right);
            uniform in [-30, 30] when None. Layers deviate from it by up to 10 degrees.
        streak_scale: multiplier for lengths given at 512 pixels; ``max(H, W) / 512`` when None.
    """
    if not 0.0 <= density <= 1.0:
        raise ValueError(f"density must be in [0, 1], got {density}")
    height, width = int(shape[0]), int(shape[1])
    scale = max(height, width) / REFERENCE_SIZE if streak_scale is None else float(streak_scale)
    if scale <= 0:
        raise ValueError(f"streak_scale must be positive, got {streak_scale}")
    if angle is None:
        angle = rng.uniform(-ANGLE_RANGE, ANGLE_RANGE)

    n_max = 1 + round(2 * max(0.0, 3 * density - 1))
    n_layers = int(rng.integers((n_max + 1) // 2, n_max + 1))
    rain = np.zeros((height, width), np.float32)
    for _ in range(n_layers):
        layer_angle = angle + rng.uniform(-LAYER_ANGLE_JITTER, LAYER_ANGLE_JITTER)
        length = max(MIN_LENGTH, (rng.uniform(*LENGTH_RANGE) + 30 * density) * scale)
        sigma = rng.uniform(0.3, 0.5 + 0.7 * density) * scale
        fraction = min(0.5, (0.0008 + 0.0032 * density) * rng.uniform(0.7, 1.3) / scale**2)
        brightness = rng.uniform(0.5, 0.8)

        kernel = _streak_kernel(length, layer_angle, sigma)
        m = kernel.shape[0] // 2
        # Uniform noise thresholded at ``fraction``, drawn directly as a binomial number of
        # seeds at uniform positions.
        padded = (height + 2 * m, width + 2 * m)
        count = rng.binomial(padded[0] * padded[1], fraction)
        seeds = np.zeros(padded[0] * padded[1], np.float32)
        seeds[rng.integers(0, seeds.size, count)] = brightness * rng.uniform(0.25, 1.0, count)
        seeds = seeds.reshape(padded)
        layer = cv2.filter2D(seeds, -1, kernel, borderType=cv2.BORDER_CONSTANT)
        rain += layer[m : m + height, m : m + width]
    return np.clip(rain, 0.0, 1.0)


def add_rain(
    clean: np.ndarray,
    rng: np.random.Generator,
    *,
    density: float | None = None,
    angle: float | None = None,
    blend: Blend | None = None,
    haze: bool = True,
    streak_scale: float | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Render synthetic rain on ``clean``; see the module docstring for the model.

    Args:
        clean: ``(H, W, 3)`` float image in [0, 1].
        rng: source of every random choice; the same generator state gives the same output.
        density: rain density in [0, 1]; uniform in [0, 1] when None.
        angle: mean streak direction in degrees from vertical; uniform in [-30, 30] when None.
        blend: ``"add"`` or ``"screen"``; chosen at random when None.
        haze: add the atmospheric veil for medium and heavy rain.
        streak_scale: multiplier for streak lengths given at 512 pixels; ``max(H, W) / 512`` when
            None. Pass the scale of the full image when ``clean`` is a crop of it.

    Returns:
        ``(rainy, clean, density)``: float32 ``(H, W, 3)`` images in [0, 1] and the density used.
    """
    clean = np.asarray(clean)
    if clean.ndim != 3 or clean.shape[2] != 3:
        raise ValueError(f"clean must be an (H, W, 3) image, got shape {clean.shape}")
    if not np.issubdtype(clean.dtype, np.floating):
        raise ValueError(f"clean must be a float image in [0, 1], got dtype {clean.dtype}")
    clean = clean.astype(np.float32, copy=False)
    if density is None:
        density = float(rng.uniform(0.0, 1.0))
    if blend is None:
        blend = "add" if rng.random() < 0.5 else "screen"
    if blend not in ("add", "screen"):
        raise ValueError(f"blend must be 'add' or 'screen', got {blend!r}")

    rain = rain_streaks(
        clean.shape[:2], rng, density=density, angle=angle, streak_scale=streak_scale
    )[..., None]
    rainy = np.minimum(clean + rain, 1.0) if blend == "add" else 1 - (1 - clean) * (1 - rain)
    if haze:
        strength = rng.uniform(0.0, 0.25) * max(0.0, 1.5 * (density - 1 / 3))
        light = rng.uniform(0.75, 0.95)
        rainy = (1.0 - strength) * rainy + strength * light
    rainy = np.clip(rainy, 0.0, 1.0).astype(np.float32)
    return rainy, clean, float(density)
