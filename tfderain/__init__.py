"""tfderain: single-image deraining networks for TensorFlow 2 / Keras.

Public API::

    build_model(name, **config)   # a registered architecture as a functional keras.Model
    load_model(path)              # a saved .keras model (or an official .pth with arch=...)
    derain(image, model=...)      # restore a numpy image of any size
    list_models()                 # registered architecture names
"""

from __future__ import annotations

__version__ = "0.1.0"

from tfderain.api import build_model, derain, list_models, load_model  # noqa: E402

__all__ = ["__version__", "build_model", "derain", "list_models", "load_model"]
