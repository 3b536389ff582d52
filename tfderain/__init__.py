"""tfderain: single-image deraining networks for TensorFlow 2 / Keras.

Public API::

    build_model(name, **config)   # a registered architecture as a functional keras.Model
    load_model(path)              # a saved .keras model, a preset name or an official .pth
    save_model(model, path)       # a self-describing .keras file
    derain(image, model=...)      # restore a numpy image of any size
    estimate_density(image, model=...)  # rain density (value in [0, 1], level) of an image
    list_models()                 # registered architecture names

The names are imported on first use, so ``import tfderain`` (and ``tfderain --help``) does not
load TensorFlow.
"""

from __future__ import annotations

from tfderain._lazy import lazy_exports
from tfderain._version import __version__

#: Public names and the module that defines each one.
_LAZY = {
    "Density": "tfderain.api",
    "build_model": "tfderain.api",
    "derain": "tfderain.api",
    "estimate_density": "tfderain.api",
    "list_models": "tfderain.api",
    "load_model": "tfderain.api",
    "save_model": "tfderain.saving",
}

__all__ = ["Density", "__version__", *sorted(k for k in _LAZY if k != "Density")]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
