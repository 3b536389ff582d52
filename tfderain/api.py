"""The public Python API, re-exported by :mod:`tfderain`."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from tfderain import models

#: The bundled default model (trained by tfderain on synthetic rain; see the README).
DEFAULT_MODEL = "default"


def list_models() -> list[str]:
    """Names of all registered architectures."""
    return models.names()


def build_model(name: str, **config: Any):
    """Build the registered architecture ``name`` (random weights); ``config`` overrides defaults.

    Every builder's defaults are the paper configuration.
    """
    return models.build(name, **config)


def default_model_path() -> Path:
    """Path of the bundled default model file."""
    return Path(str(resources.files("tfderain") / "weights" / "default.keras"))


def load_model(path: str | os.PathLike, arch: str | None = None, **overrides: Any):
    """Load a model file.

    Args:
        path: a tfderain ``.keras`` file (self-describing), or an official PyTorch checkpoint
            (``.pth``/``.pt``/``.pth.tar``), which then needs ``arch``.
        arch: registry name; required for official checkpoints, checked against ``.keras`` files.
        overrides: config values that the checkpoint's shapes cannot tell (e.g. ``stages``);
            official checkpoints only.
    """
    from tfderain import saving

    path = Path(path)
    if path.suffix == ".keras":
        if overrides:
            raise ValueError(f"{path}: config overrides apply to official checkpoints only")
        meta = saving.read_metadata(path)
        if arch is not None and arch != meta["arch"]:
            raise ValueError(f"{path}: holds a {meta['arch']!r} model, not {arch!r}")
        return saving.load_model(path)
    if arch is None:
        raise ValueError(f"{path}: an official checkpoint needs the architecture name (arch=...)")
    from tfderain.convert import convert

    return convert(arch, path, **overrides)


def resolve_model(model: Any = None, weights: str | os.PathLike | None = None):
    """A Keras model from the forms the CLI and :func:`derain` accept.

    ``model`` may be a ``keras.Model`` (used as is), ``None``/``"default"`` (the bundled default),
    or a registry name, in which case ``weights`` (``.keras`` or official ``.pth``) is required.
    """
    if model is not None and not isinstance(model, str):
        return model
    if weights is not None:
        arch = None if model in (None, DEFAULT_MODEL) else model
        return load_model(weights, arch=arch)
    if model in (None, DEFAULT_MODEL):
        return load_model(default_model_path())
    models.spec(model)  # unknown names fail here with the list of known ones
    raise ValueError(
        f"model {model!r} needs weights: an official checkpoint (.pth) or a converted .keras file"
    )


def model_spec(model) -> models.ModelSpec:
    """The registry entry a loaded model was built from."""
    arch = getattr(model, "_tfderain_arch", None)
    if arch is None:
        return models.ModelSpec(name=model.name, builder=lambda: model)
    return models.spec(arch)


def derain(
    image: np.ndarray, model: Any = None, weights: str | os.PathLike | None = None, **options: Any
) -> np.ndarray:
    """Derain one image of any size.

    Args:
        image: ``(H, W, 3)`` RGB, either uint8/uint16 or float in [0, 1]; ``(H, W)`` grayscale
            and ``(H, W, 4)`` RGBA are accepted (alpha is passed through).
        model: a ``keras.Model``, a registry name (with ``weights``) or ``None`` for the default.
        weights: ``.keras`` or official ``.pth`` file for ``model``.
        options: tiling options of :func:`tfderain.inference.derain_array`.

    Returns:
        The derained image, same shape and dtype as ``image`` (floats clipped to [0, 1]).
    """
    from tfderain import inference

    net = resolve_model(model, weights)
    return inference.derain_numpy(net, image, spec=model_spec(net), **options)
