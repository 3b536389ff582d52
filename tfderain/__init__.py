"""tfderain: single-image deraining networks for TensorFlow 2 / Keras.

Public API::

    build_model(name, **config)   # a registered architecture as a functional keras.Model
    load_model(path)              # a saved .keras model (or an official .pth with arch=...)
    derain(image, model=...)      # restore a numpy image of any size
    estimate_density(image, model=...)  # rain density (value in [0, 1], level) of an image
    list_models()                 # registered architecture names

The names are imported on first use, so ``import tfderain`` (and ``tfderain --help``) does not
load TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public names and the module that defines each one.
_LAZY = {
    "Density": "tfderain.api",
    "build_model": "tfderain.api",
    "derain": "tfderain.api",
    "estimate_density": "tfderain.api",
    "list_models": "tfderain.api",
    "load_model": "tfderain.api",
}

__all__ = ["Density", "__version__", *sorted(k for k in _LAZY if k != "Density")]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
