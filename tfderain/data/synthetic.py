"""Synthetic rain: streaks and rain accumulation rendered on a clean photo, deterministic given a
numpy Generator. The clean photo is never changed: it is the training target, so a model trained on
these pairs learns to remove the veil's loss of brightness and contrast as well as the streaks.

Sources, and what each contributes:

* Yang et al., "Deep Joint Rain Detection and Removal from a Single Image", CVPR 2017
  (Rain100L, Rain100H; github.com/flyywh/JORDER): the additive model ``O = B + sum_t S_t``;
  Rain100L has one kind of streak, Rain100H overlapping streaks in several directions; rain
  accumulation in heavy rain as a veil, ``O = alpha * (B + sum_t S_t) + (1 - alpha) * A``
  (transmission ``alpha``, atmospheric light ``A``).
* Fu et al., "Removing rain from single images via a deep detail network", CVPR 2017 (DDN,
  Rain1400): streaks made in Photoshop (noise, blur,
  motion blur, screen blend, ``O = 1 - (1 - B)(1 - S)``); 14 kinds of streaks of different
  orientations and magnitudes rendered on every clean image.
* Li, Cheong, Tan, "Heavy Rain Image Restoration: Integrating Physics Model and Conditional
  Adversarial Learning", CVPR 2019 (github.com/liruoteng/HeavyRainRemoval): heavy rain is
  streaks plus accumulation whose transmission falls with scene depth,
  ``O = T * (B + sum_t S_t) + (1 - T) * A`` with ``T = exp(-beta * depth)``.
* Garg & Nayar, "Photorealistic Rendering of Rain Streaks", SIGGRAPH 2006, and "Vision and Rain",
  IJCV 2007: a streak is one drop motion-blurred over the exposure time ``T_e``; its length is
  the distance the drop falls during ``T_e`` (terminal velocity ``v = 200 sqrt(a)`` m/s for
  radius ``a`` in metres), its width the drop's image; a drop is brighter than its background
  and covers each pixel for only a fraction of the exposure, so a streak is semi-transparent
  (``dI = beta * (E - B)``, drop brightness ``E``, ``beta`` the time fraction) and its brightness
  depends only weakly on the background; drops near the camera are out of focus (wider and
  dimmer streaks, larger, fewer in view). Their streak database is rendered for an exposure of
  1/60 s; the exposure ranges below bracket it.
* Zhang & Patel, "Density-aware Single Image De-raining using a Multi-stream Dense Network"
  (DID-MDN), CVPR 2018: three density levels, light / medium / heavy (:data:`LEVELS`).

A streak layer ``S`` (:func:`rain_streaks`) is rendered as in Photoshop: (1) uniform noise
thresholded so a fraction ``p`` of the pixels survive (drawn as a binomial count of uniformly
placed seeds, each with a random brightness), (2) blurred by a Gaussian (the drop's image),
(3) motion-blurred along the streak angle over a length ``L`` with a weight that fades over the
outer quarter at each end, normalised to peak 1 -- done in a frame turned so that the streaks
are vertical, where both blurs are separable, then turned back. Seeds are drawn on a margin
around the image so streaks enter from outside the frame. Lengths are given at a reference image
size of 512 pixels and multiplied by ``streak_scale`` (default ``max(H, W) / 512``); ``p`` is
divided by ``streak_scale**2``.

Common parameters (``d`` the density in [0, 1]; none of the papers gives a number for these,
so each is a choice stated here):

=====================  ===========================================================================
parameter              value
=====================  ===========================================================================
seed fraction ``p``    ``(0.0008 + 0.0032 d) * U(0.7, 1.3)`` per layer
seed brightness        layer opacity ``U(style range)`` times ``U(0.25, 1)`` per seed
drop radius ``a``      ``U(0.5, 0.8 + 0.7 d)`` mm (heavier rain has larger drops, as in the
                       Marshall-Palmer distribution that Garg & Nayar use)
drop image ``w``       ``a * U(1.0, 1.6)`` pixels per mm (full width at half maximum), Gaussian
                       ``sigma = w / 2.355`` (no blur below 0.25 pixel); below one pixel after
                       scaling, the opacity is multiplied by ``w`` (the drop's light spreads
                       over the whole pixel)
length ``L``           ``w * (1 + v T_e / (2 a))`` (Garg & Nayar: the drop's image plus the
                       distance fallen during the exposure, at the drop's image scale); at least
                       3 pixels
near layer             layers of styles with depth: with probability 1/2 the first layer is near
                       the camera, ``k = U(1.5, 3)`` times closer: ``w`` and ``L`` times ``k``,
                       ``p`` over ``k**2`` (fewer drops in the near volume), a defocus blur
                       ``sigma_d = (k - 1) * U(0.5, 1)`` and opacity times
                       ``w_k / sqrt(w_k**2 + (2.355 sigma_d)**2)`` (its light spread wider)
angles                 degrees from vertical, positive leans the top right like ``/``
=====================  ===========================================================================

Styles (``style=``; ``"mixed"``, the default, is the first training stage of the bundled model;
its second stage draws every style):

==========  =====================================================================================
style       rendering
==========  =====================================================================================
rain100l    Yang: one layer, one direction ``U(-20, 20)``; additive; no veil. Exposure
            ``T_e`` in [1/125, 1/60] s and opacity ``U(0.5, 0.8)``: choices (no numbers in the
            paper). Density ``U(0, 1/3)`` by default (light).
rain100h    Yang: 3 to 5 layers (overlapping directions; the count is a choice), mean
            ``U(-30, 30)``, each layer ``+- 15``; additive; the global veil for ``d >= 1/3``.
            ``T_e`` in [1/125, 1/30] s, opacity ``U(0.55, 0.85)``, near layer allowed. Density
            ``U(2/3, 1)`` (heavy).
rain1400    Fu: one Photoshop layer of one of 14 kinds: orientation in ``{-30, -20, ..., 30}``
            times two magnitudes (motion-blur exposures 1/125 s and 1/40 s); screen blend; no
            veil. The 14 values are a choice: the paper does not list them. Density
            ``U(0, 1)``.
heavy       Li et al.: 1 to 3 layers, mean ``U(-30, 30)``, each ``+- 10``; additive inside the
            depth transmission veil. ``T_e`` in [1/125, 1/30] s, opacity ``U(0.5, 0.8)``, near
            layer allowed. Density ``U(2/3, 1)``.
mixed       per image: ``n_max = 1 + round(2 * max(0, 3d - 1))`` layers (1 light, 5 at
            ``d = 1``), ``n`` uniform in ``[ceil(n_max / 2), n_max]``; mean ``U(-30, 30)``, each
            layer ``+- 10``; ``T_e`` in [1/125, 1/30] s; opacity ``U(0.5, 0.8)``; near layer
            allowed; blend ``add``, ``screen`` or ``over`` with equal probability; the global
            or the depth veil (equal probability) for ``d >= 1/3``. Density ``U(0, 1)``.
==========  =====================================================================================

Blends: ``add`` ``clip(B + S)`` (Yang), ``screen`` ``1 - (1 - B)(1 - S)`` (Fu), ``over``
``B + S * max(E - B, 0)`` (Garg & Nayar: ``S`` is the drop's opacity, ``E`` its brightness,
taken as the 90th percentile of the photo's luminance, at least 0.5 -- a drop refracts light from
a wide field of view, dominated by the brightest part of the scene; the percentile is a choice).

Veils (rain accumulation, ``h = max(0, 1.5 (d - 1/3))`` grows from 0 at the light/medium border
to 1 at ``d = 1``; ``A = U(0.75, 0.95)`` grey; the strength ranges are choices -- neither paper
states the values used):

* ``global`` (Yang): ``O = alpha * O_s + (1 - alpha) * A`` with ``1 - alpha = U(0, 0.25) h``.
* ``depth`` (Li et al.): ``T = exp(-beta z)`` with ``beta = U(0.3, 1.2) h`` and a depth-like map
  ``z`` in [0, 1]: far (1) at the top of the frame, near (0) at the bottom,
  ``z = (1 - y / H) ** U(0.5, 2)`` plus smooth noise of amplitude 0.1 (no depth is known for a
  free photo; outdoor photos mostly have the far scene above the near ground).
  Li et al. also blur the distant scene; that is not rendered.

``keep_veil=True`` applies the same veil to the returned clean image: the pair then teaches a
model to remove the streaks and keep the accumulation (the scene's light and contrast), instead
of removing both.

Measured against real pairs with ``benchmarks/rain_statistics.py`` (a report only: nothing above
was tuned to it; medians over pairs, luminance, rain pixels ``> 10/255`` above the fitted veil;
the styles rendered twice on each of the same 23 clean targets)::

    source        coverage  brightness  width  length  angle  spread  veil slope / offset
    Rain100H-20     78.0 %     0.236    2.3 px   8 px   +2.1    7.1     0.992 / +0.019
    Rain100L-3      16.3 %     0.103    2.1 px  13 px   -5.8    5.3     1.000 / +0.000
    mixed           28.8 %     0.124    2.0 px  24 px   -6.9    3.9     0.982 / +0.016
    rain100l         8.3 %     0.165    2.0 px  35 px   +2.6    2.8     1.000 / +0.000
    rain100h        81.4 %     0.283    3.0 px  13 px   +3.1    9.4     0.903 / +0.143
    rain1400        16.4 %     0.140    1.9 px  44 px   +0.1    2.9     1.000 / +0.000
    heavy           76.8 %     0.195    2.5 px  25 px   +7.8    6.7     0.878 / +0.123

Where they differ: the distributed Rain100H pairs carry no measurable veil, while the
``rain100h`` style adds Yang et al.'s accumulation term; Rain100L's streaks are fainter and
twice as frequent as the ``rain100l`` style's; the styles' streaks (length from exposures of
1/125 to 1/30 s) are longer than the thresholded streak pieces of both benchmarks, and those of
``rain100h`` about 0.7 pixel wider; coverage of Rain100H and orientations (near vertical, spread
5 to 10 degrees) agree.

:func:`density_level` maps ``d`` to DID-MDN's classes (:data:`LEVELS`) with thresholds 1/3, 2/3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from tfderain.density import DENSITY_LEVELS

__all__ = ["BLENDS", "LEVELS", "STYLES", "VEILS", "add_rain", "density_level", "rain_streaks"]

#: DID-MDN rain-density classes, indexed by :func:`density_level` (the registry's levels).
LEVELS = DENSITY_LEVELS

Blend = Literal["add", "screen", "over"]
Style = Literal["mixed", "rain100l", "rain100h", "rain1400", "heavy"]
Veil = Literal["global", "depth"]

#: Rendering styles, see the module docstring; ``"mixed"`` is the default.
STYLES: tuple[str, ...] = ("mixed", "rain100l", "rain100h", "rain1400", "heavy")
#: Ways of compositing the streak layer on the photo.
BLENDS: tuple[str, ...] = ("add", "screen", "over")
#: Rain accumulation models.
VEILS: tuple[str, ...] = ("global", "depth")

REFERENCE_SIZE = 512
ANGLE_RANGE = 30.0
LAYER_ANGLE_JITTER = 10.0
MIN_LENGTH = 3.0
ATMOSPHERIC_LIGHT = (0.75, 0.95)
TERMINAL_VELOCITY = 200.0  # v = 200 sqrt(a) m/s, a in metres (Garg & Nayar)
RAIN1400_KINDS = tuple(
    (float(angle), exposure) for angle in range(-30, 31, 10) for exposure in (1 / 125, 1 / 40)
)


@dataclass(frozen=True)
class _Spec:
    """One style's parameter ranges (see the module docstring's table)."""

    density: tuple[float, float]  # default density range
    angle: float  # mean direction uniform in [-angle, angle]
    jitter: float  # each layer deviates from the mean by up to this
    layers: tuple[int, int] | None  # (min, max) layers, None: from the density (mixed)
    exposure: tuple[float, float]  # seconds
    opacity: tuple[float, float]
    blends: tuple[str, ...]
    veils: tuple[str, ...]  # the veil drawn from these for d >= 1/3; empty: none
    near: bool  # a near, defocused first layer is possible


_SPECS: dict[str, _Spec] = {
    "rain100l": _Spec(
        density=(0.0, 1 / 3),
        angle=20.0,
        jitter=0.0,
        layers=(1, 1),
        exposure=(1 / 125, 1 / 60),
        opacity=(0.5, 0.8),
        blends=("add",),
        veils=(),
        near=False,
    ),
    "rain100h": _Spec(
        density=(2 / 3, 1.0),
        angle=30.0,
        jitter=15.0,
        layers=(3, 5),
        exposure=(1 / 125, 1 / 30),
        opacity=(0.55, 0.85),
        blends=("add",),
        veils=("global",),
        near=True,
    ),
    "rain1400": _Spec(
        density=(0.0, 1.0),
        angle=0.0,  # the orientation is one of RAIN1400_KINDS
        jitter=0.0,
        layers=(1, 1),
        exposure=(1 / 125, 1 / 40),  # the two magnitudes of RAIN1400_KINDS
        opacity=(0.5, 0.8),
        blends=("screen",),
        veils=(),
        near=False,
    ),
    "heavy": _Spec(
        density=(2 / 3, 1.0),
        angle=30.0,
        jitter=10.0,
        layers=(1, 3),
        exposure=(1 / 125, 1 / 30),
        opacity=(0.5, 0.8),
        blends=("add",),
        veils=("depth",),
        near=True,
    ),
    "mixed": _Spec(
        density=(0.0, 1.0),
        angle=ANGLE_RANGE,
        jitter=LAYER_ANGLE_JITTER,
        layers=None,
        exposure=(1 / 125, 1 / 30),
        opacity=(0.5, 0.8),
        blends=BLENDS,
        veils=VEILS,
        near=True,
    ),
}


def density_level(d: float) -> int:
    """The DID-MDN class of a density in [0, 1]: 0 light (< 1/3), 1 medium (< 2/3), 2 heavy."""
    if not 0.0 <= d <= 1.0:
        raise ValueError(f"density must be in [0, 1], got {d}")
    if d < 1 / 3:
        return 0
    return 1 if d < 2 / 3 else 2


def _check_style(style: str) -> _Spec:
    if style not in _SPECS:
        raise ValueError(f"style must be one of {', '.join(STYLES)}, got {style!r}")
    return _SPECS[style]


@dataclass(frozen=True)
class _Layer:
    angle: float
    length: float  # pixels
    sigma: float  # pixels
    fraction: float  # seed fraction
    opacity: float


def _layers(
    spec: _Spec,
    style: str,
    rng: np.random.Generator,
    density: float,
    angle: float | None,
    scale: float,
) -> list[_Layer]:
    """Every layer's parameters, drawn from ``rng`` in a fixed order."""
    if style == "rain1400":
        kind_angle, kind_exposure = RAIN1400_KINDS[int(rng.integers(len(RAIN1400_KINDS)))]
        mean = kind_angle if angle is None else angle
    else:
        mean = rng.uniform(-spec.angle, spec.angle) if angle is None else angle
        kind_exposure = None
    if spec.layers is None:
        n_max = 1 + round(2 * max(0.0, 3 * density - 1))
        lo, hi = (n_max + 1) // 2, n_max
    else:
        lo, hi = spec.layers
    n_layers = int(rng.integers(lo, hi + 1))
    near = spec.near and n_layers >= 2 and rng.random() < 0.5

    layers = []
    for t in range(n_layers):
        layer_angle = mean + rng.uniform(-spec.jitter, spec.jitter) if spec.jitter else mean
        radius = rng.uniform(0.5, 0.8 + 0.7 * density)  # mm
        width = radius * rng.uniform(1.0, 1.6)  # pixels at the reference size
        exposure = kind_exposure if kind_exposure is not None else rng.uniform(*spec.exposure)
        fallen = TERMINAL_VELOCITY * math.sqrt(radius * 1e-3) * exposure * 1e3  # mm
        length = width * (1.0 + fallen / (2 * radius))
        fraction = (0.0008 + 0.0032 * density) * rng.uniform(0.7, 1.3)
        opacity = rng.uniform(*spec.opacity)
        sigma = width / 2.355
        if near and t == 0:
            k = rng.uniform(1.5, 3.0)
            width, length, fraction = width * k, length * k, fraction / k**2
            defocus = (k - 1) * rng.uniform(0.5, 1.0)
            sigma = math.hypot(width / 2.355, defocus)
            opacity *= width / math.hypot(width, 2.355 * defocus)
        # A drop image narrower than a pixel spreads its light over the whole pixel.
        opacity *= min(1.0, width * scale)
        layers.append(
            _Layer(
                angle=float(layer_angle),
                length=max(MIN_LENGTH, length * scale),
                sigma=sigma * scale,
                fraction=min(0.5, fraction / scale**2),
                opacity=float(opacity),
            )
        )
    return layers


def _streak_layer(shape: tuple[int, int], rng: np.random.Generator, layer: _Layer) -> np.ndarray:
    """One layer of streaks, rendered in a frame where they are vertical, then rotated.

    In that frame the motion blur is separable: a vertical trapezoid (the line whose weight fades
    over the outer quarter at each end, a box of ``L - L/4`` convolved with a box of ``L/4``)
    and a horizontal Gaussian (the drop's image), both normalised to peak 1, so an isolated
    streak keeps its seed's brightness. Along the streaks the frame is sampled every
    ``r = max(1, L // 12)`` pixels (the trapezoid is smooth there; the rotation back into the
    image interpolates linearly), which keeps a layer's cost independent of ``L``. The frame
    covers the rotated image plus a margin, so streaks enter from outside the picture.
    """
    height, width = shape
    theta = math.radians(layer.angle)
    cos, sin = abs(math.cos(theta)), abs(math.sin(theta))
    length = int(round(layer.length))
    step = max(1, length // 12)
    taper = max(1, int(round(length / 4 / step)))
    box = max(taper, int(round(length / step)) - taper)
    reach = int(math.ceil(3 * layer.sigma)) if layer.sigma >= 0.25 else 0
    margin = length // 2 + reach + 2 * step
    rows = -(-(int(math.ceil(height * cos + width * sin)) + 2 * margin) // step)
    cols = int(math.ceil(width * cos + height * sin)) + 2 * margin

    # Uniform noise thresholded at ``fraction``: a binomial number of uniform seeds.
    count = rng.binomial(rows * cols, min(1.0, layer.fraction * step))
    where = rng.integers(0, rows * cols, count)
    weights = layer.opacity * rng.uniform(0.25, 1.0, count)
    frame = np.bincount(where, weights, rows * cols).astype(np.float32).reshape(rows, cols)
    frame = cv2.blur(frame, (1, box), borderType=cv2.BORDER_CONSTANT)
    if taper > 1:
        frame = cv2.blur(frame, (1, taper), borderType=cv2.BORDER_CONSTANT)
    frame *= box
    if reach:
        x = np.arange(-reach, reach + 1, dtype=np.float32)
        gauss = np.exp(-0.5 * (x / layer.sigma) ** 2)
        frame = cv2.sepFilter2D(
            frame, -1, gauss, np.ones(1, np.float32), borderType=cv2.BORDER_CONSTANT
        )
    # Image pixel (x, y) -> frame: rotate about the centres so that the direction
    # (sin(angle), -cos(angle)) (the top leaning right for positive angles) becomes (0, -1),
    # then divide the frame's rows by ``step`` (row j is centred on fine row j * step).
    c, s = math.cos(theta), math.sin(theta)
    cx, cy = (width - 1) / 2, (height - 1) / 2
    fx, fy = (cols - 1) / 2, (rows * step - 1) / 2
    matrix = np.array(
        [
            [c, s, fx - c * cx - s * cy],
            [-s / step, c / step, (fy + s * cx - c * cy) / step],
        ],
        np.float64,
    )
    return cv2.warpAffine(
        frame,
        matrix,
        (width, height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
    )


def _render(shape: tuple[int, int], rng: np.random.Generator, layers: list[_Layer]) -> np.ndarray:
    rain = np.zeros(shape, np.float32)
    for layer in layers:
        rain += _streak_layer(shape, rng, layer)
    return np.clip(rain, 0.0, 1.0)


def _scale(shape: tuple[int, int], streak_scale: float | None) -> float:
    scale = max(shape) / REFERENCE_SIZE if streak_scale is None else float(streak_scale)
    if scale <= 0:
        raise ValueError(f"streak_scale must be positive, got {streak_scale}")
    return scale


def rain_streaks(
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    density: float,
    angle: float | None = None,
    streak_scale: float | None = None,
    style: Style = "mixed",
) -> np.ndarray:
    """The rain layer ``sum_t S_t``: an ``(H, W)`` float32 array in [0, 1].

    Args:
        shape: ``(height, width)`` of the image.
        rng: source of every random choice.
        density: rain density in [0, 1] (streak count, drop size, layers in ``"mixed"``).
        angle: mean streak direction in degrees from vertical (positive leans the top right);
            drawn from the style's range when None. Layers deviate from it by the style's jitter.
        streak_scale: multiplier for lengths given at 512 pixels; ``max(H, W) / 512`` when None.
        style: one of :data:`STYLES` (module docstring).
    """
    if not 0.0 <= density <= 1.0:
        raise ValueError(f"density must be in [0, 1], got {density}")
    spec = _check_style(style)
    size = (int(shape[0]), int(shape[1]))
    layers = _layers(spec, style, rng, density, angle, _scale(size, streak_scale))
    return _render(size, rng, layers)


def _depth_map(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A depth-like map in [0, 1]: 1 (far) at the top row, 0 (near) at the bottom, plus smooth
    noise."""
    height, width = shape
    gamma = rng.uniform(0.5, 2.0)
    rows = (1.0 - np.arange(height, dtype=np.float32) / max(1, height - 1)) ** gamma
    coarse = rng.uniform(-0.1, 0.1, (4, 4)).astype(np.float32)
    noise = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(rows[:, None] + noise, 0.0, 1.0)


def _drop_brightness(clean: np.ndarray) -> float:
    """Garg & Nayar's drop brightness ``E``: the 90th percentile of the luminance, >= 0.5."""
    luma = clean[::4, ::4] @ np.array([0.299, 0.587, 0.114], np.float32)
    return max(0.5, float(np.quantile(luma, 0.9)))


def add_rain(
    clean: np.ndarray,
    rng: np.random.Generator,
    *,
    density: float | None = None,
    angle: float | None = None,
    blend: Blend | None = None,
    haze: bool | Veil = True,
    streak_scale: float | None = None,
    style: Style = "mixed",
    keep_veil: bool = False,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Render synthetic rain on ``clean``; see the module docstring for the model.

    Args:
        clean: ``(H, W, 3)`` float image in [0, 1]; it is neither modified nor copied.
        rng: source of every random choice; the same generator state gives the same output.
        density: rain density in [0, 1]; uniform in the style's range when None.
        angle: mean streak direction in degrees from vertical; the style's range when None.
        blend: ``"add"``, ``"screen"`` or ``"over"``; the style's when None.
        haze: rain accumulation for medium and heavy rain (``d >= 1/3``): True for the style's
            veil, ``"global"`` or ``"depth"`` for that one, False for none.
        streak_scale: multiplier for streak lengths given at 512 pixels; ``max(H, W) / 512`` when
            None. Pass the scale of the full image when ``clean`` is a crop of it.
        style: one of :data:`STYLES`.
        keep_veil: return as ``clean`` the clean image seen through the same veil (the same
            transmission and atmospheric light, without streaks) instead of ``clean`` itself:
            the target of a model that removes the streaks and keeps the rain accumulation, so
            the scene's brightness. Draws nothing more: ``rainy`` is the same either way.

    Returns:
        ``(rainy, clean, density)``: float32 ``(H, W, 3)`` images in [0, 1] and the density used.
    """
    clean = np.asarray(clean)
    if clean.ndim != 3 or clean.shape[2] != 3:
        raise ValueError(f"clean must be an (H, W, 3) image, got shape {clean.shape}")
    if not np.issubdtype(clean.dtype, np.floating):
        raise ValueError(f"clean must be a float image in [0, 1], got dtype {clean.dtype}")
    spec = _check_style(style)
    if haze not in (True, False, *VEILS):
        raise ValueError(f"haze must be True, False, 'global' or 'depth', got {haze!r}")
    clean = clean.astype(np.float32, copy=False)
    if density is None:
        density = float(rng.uniform(*spec.density))
    if blend is None:
        blend = (
            spec.blends[int(rng.integers(len(spec.blends)))]
            if len(spec.blends) > 1
            else spec.blends[0]
        )
    if blend not in BLENDS:
        raise ValueError(f"blend must be 'add', 'screen' or 'over', got {blend!r}")

    rain = rain_streaks(
        clean.shape[:2], rng, density=density, angle=angle, streak_scale=streak_scale, style=style
    )[..., None]
    if blend == "add":
        rainy = np.minimum(clean + rain, 1.0)
    elif blend == "screen":
        rainy = 1 - (1 - clean) * (1 - rain)
    else:
        rainy = clean + rain * np.maximum(_drop_brightness(clean) - clean, 0.0)

    level = max(0.0, 1.5 * (density - 1 / 3))
    veils = spec.veils if haze is True else (haze,) if haze else ()
    if veils:
        veil = veils[int(rng.integers(len(veils)))] if len(veils) > 1 else veils[0]
        light = rng.uniform(*ATMOSPHERIC_LIGHT)
        if veil == "global":
            transmission = 1.0 - rng.uniform(0.0, 0.25) * level
        else:
            beta = rng.uniform(0.3, 1.2) * level
            transmission = np.exp(-beta * _depth_map(clean.shape[:2], rng))[..., None]
        if level > 0:
            rainy = transmission * rainy + (1.0 - transmission) * light
            if keep_veil:
                # a convex combination of values in [0, 1]: no clipping needed
                clean = (transmission * clean + (1.0 - transmission) * light).astype(np.float32)
    rainy = np.clip(rainy, 0.0, 1.0).astype(np.float32)
    return rainy, clean, float(density)
