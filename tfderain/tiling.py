"""Tiling geometry for images larger than a model runs whole: where tiles start, how they are
blended, and the default sizes. Plain numpy (no TensorFlow), so the command lines read the
defaults without loading a model; :mod:`tfderain.inference` runs the tiles (see its docstring).
The Android app's Java core has a twin of :func:`tile_starts` and :func:`blend_window`, tested
against vectors written from these.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_HALO",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_TILE",
    "blend_window",
    "tile_starts",
]

#: Default tile side in pixels (before rounding down to the model's multiple).
DEFAULT_TILE = 512
#: Images with at most this many pixels run in one piece.
DEFAULT_MAX_PIXELS = 1024 * 1024
#: Tiles run through the network together. PReNet on a 3840×2160 image with 512-pixel tiles peaks
#: at 1.36 GB RSS with 2 and 1.87 GB with 4 (benchmarks/bench_tiling_memory.py).
DEFAULT_BATCH_SIZE = 2
#: Context assumed for models without a registry entry.
DEFAULT_HALO = 32


def tile_starts(length: int, tile: int, overlap: int, multiple: int = 1) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` pixels.

    The first tile starts at 0 and the last ends at ``length``; the ones between are spread
    evenly. Every start is a multiple of ``multiple`` (``length`` and ``tile`` must be), and
    consecutive tiles overlap by at least ``overlap`` pixels.
    """
    if tile >= length:
        return [0]
    step = (tile - overlap) // multiple * multiple
    if step < multiple:
        raise ValueError(
            f"tile size {tile} is too small: it must exceed the overlap of {overlap} pixels "
            f"(2 × the model's halo) by at least {multiple}"
        )
    count = 1 + math.ceil((length - tile) / step)
    units = (length - tile) // multiple
    # Flooring an even spacing of at most `step` keeps every gap at most `step`.
    return [i * units // (count - 1) * multiple for i in range(count)]


def blend_window(size: int, halo: int, ramp_start: bool, ramp_end: bool) -> np.ndarray:
    """One axis of a tile's blending weight (see the module docstring).

    ``ramp_start`` / ``ramp_end`` say whether that side of the tile is inside the image (and is
    blended with a neighbour) rather than on the image border (kept at full weight).
    """
    window = np.ones(size, np.float32)
    if halo <= 0:
        return window
    margin = halo // 2
    # Pixel centres at distance d + 0.5 from the edge: 0 up to `margin`, 1 from `margin + halo`.
    distance = np.arange(size, dtype=np.float32) + 0.5
    t = np.clip((distance - margin) / halo, 0.0, 1.0)
    ramp = (0.5 - 0.5 * np.cos(np.pi * t)).astype(np.float32)
    if ramp_start:
        window = np.minimum(window, ramp)
    if ramp_end:
        window = np.minimum(window, ramp[::-1])
    return window
