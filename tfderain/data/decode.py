"""Decoding a training or test pair from its file bytes, side-by-side files included.

Datasets store a pair either as two files (rainy, clean) or as one side-by-side file (DID-MDN:
``[rainy | clean]``; Rain800: ``[clean | rainy]``). :func:`split_side_by_side` is the one place that
cuts such a file into its halves; training pipelines, TFRecord packing and evaluation all use it.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from tfderain.data.layouts import SPLIT_ORDERS
from tfderain.io import ImageError, check_complete, quiet_opencv

__all__ = ["decode_pair", "split_side_by_side"]


#: Signatures of the formats dataset pairs may use: PNG, JPEG, BMP.
_FORMATS = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8", b"BM")


def split_side_by_side(
    both: np.ndarray, split: str, path: str | os.PathLike
) -> tuple[np.ndarray, np.ndarray]:
    """``(rainy, clean)`` halves of a side-by-side image ``(H, 2W, ...)``.

    Raises:
        ImageError: the width is odd (naming ``path``).
        ValueError: ``split`` is not one of :data:`SPLIT_ORDERS`.
    """
    if split not in SPLIT_ORDERS:
        raise ValueError(f"split must be one of {', '.join(SPLIT_ORDERS)}, got {split!r}")
    width = both.shape[1]
    if width % 2:
        raise ImageError(path, f"width {width} is odd: not a side-by-side pair")
    left, right = both[:, : width // 2], both[:, width // 2 :]
    return (left, right) if split == "rainy|clean" else (right, left)


def _decode(data: bytes, path: str) -> np.ndarray:
    """Bytes of a PNG, JPEG or BMP file → uint8 BGR ``(H, W, 3)``; ImageError naming ``path``."""
    if not data:
        raise ImageError(path, "empty file")
    if not data.startswith(_FORMATS):
        raise ImageError(path, "not a PNG, JPEG or BMP file")
    check_complete(path, data)
    with quiet_opencv():
        try:
            pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        except cv2.error:
            pixels = None
    if pixels is None or pixels.size == 0:
        raise ImageError(path, "truncated or corrupt image data")
    return pixels  # BGR: converted once, after the two images are merged


def decode_pair(
    rainy: bytes, clean: bytes | None, split: str | None, rainy_path: str, clean_path: str
) -> np.ndarray:
    """Decode a pair's file bytes into one uint8 ``(H, W, 6)`` array: rainy RGB, clean RGB.

    ``clean`` is None for a side-by-side file ``rainy`` split by ``split`` (``"rainy|clean"``
    or ``"clean|rainy"``, left half first).

    Raises:
        ImageError: a file is empty, not an image, truncated or corrupt, a side-by-side width
            is odd, or the two images differ in size.
    """
    if split is not None:
        rainy_bgr, clean_bgr = split_side_by_side(_decode(rainy, rainy_path), split, rainy_path)
    else:
        rainy_bgr, clean_bgr = _decode(rainy, rainy_path), _decode(clean or b"", clean_path)
        if rainy_bgr.shape != clean_bgr.shape:
            (h, w), (ch, cw) = rainy_bgr.shape[:2], clean_bgr.shape[:2]
            raise ImageError(
                rainy_path, f"size {w}x{h} differs from its clean image {clean_path} ({cw}x{ch})"
            )
    # cv2.merge and cvtColor are several times faster than numpy on strided channel views.
    merged = cv2.merge([rainy_bgr, clean_bgr])
    height, width = merged.shape[:2]
    rgb = cv2.cvtColor(merged.reshape(height, 2 * width, 3), cv2.COLOR_BGR2RGB)
    return rgb.reshape(height, width, 6)
