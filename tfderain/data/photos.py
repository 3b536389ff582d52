"""Clean photos for synthetic rain that ship with a package: scikit-image's sample photographs
whose ``skimage.data`` docstrings state they carry no copyright restrictions."""

from __future__ import annotations

import numpy as np

__all__ = ["SKIMAGE_PHOTOS", "skimage_photos"]

#: scikit-image sample photos used as clean images for ``data.clean: skimage``: natural RGB
#: photographs whose ``skimage.data`` docstrings state they carry no copyright restrictions.
SKIMAGE_PHOTOS: dict[str, str] = {
    "astronaut": "NASA; no known copyright restrictions, public domain",
    "chelsea": "Stefan van der Walt; CC0",
    "coffee": "Rachel Michetti; CC0",
    "rocket": "SpaceX; released into the public domain",
}


def skimage_photos() -> list[np.ndarray]:
    """The :data:`SKIMAGE_PHOTOS` as float32 RGB arrays in [0, 1] (needs scikit-image)."""
    try:
        from skimage import data as skdata
    except ImportError as exc:
        message = "data.clean: skimage needs scikit-image (pip install scikit-image)"
        raise ImportError(message) from exc
    return [getattr(skdata, name)()[..., :3].astype(np.float32) / 255.0 for name in SKIMAGE_PHOTOS]
