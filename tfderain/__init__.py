"""tfderain: single-image deraining networks for TensorFlow 2 / Keras.

Public API::

    build_model(name, **config)   # a registered architecture as a functional keras.Model
    load_model(path)              # a saved .keras model (or an official .pth with arch=...)
    derain(image, model=...)      # restore a numpy image of any size
    estimate_density(image, model=...)  # rain density (value in [0, 1], level) of an image
    list_models()                 # registered architecture names
"""

from __future__ import annotations

from tfderain._version import __version__
from tfderain.api import (  # noqa: E402
    Density,
    build_model,
    derain,
    estimate_density,
    list_models,
    load_model,
)

__all__ = [
    "Density",
    "__version__",
    "build_model",
    "derain",
    "estimate_density",
    "list_models",
    "load_model",
]
