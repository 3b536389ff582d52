"""The public Python API, re-exported by :mod:`tfderain`.

Models named by registry or preset name are resolved and loaded here; rain-density estimation
itself (:class:`Density`, :class:`DensityEstimator`, :func:`density_spec`, :func:`density_models`)
lives in :mod:`tfderain.density_estimation` and is re-exported.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from tfderain import models, presets
from tfderain.density_estimation import (
    DEFAULT_DENSITY_MAX_PIXELS,
    Density,
    DensityEstimator,
    density_models,
    density_spec,
)

#: The bundled default model (trained by tfderain on synthetic rain; see the README).
DEFAULT_MODEL = "default"


def list_models() -> list[str]:
    """Names of all registered architectures."""
    return models.names()


def build_model(name: str, **config: Any):
    """Build the registered architecture ``name`` (random weights); ``config`` overrides defaults.

    Every builder's defaults are the paper configuration. The result is a plain functional
    ``keras.Model``; :func:`tfderain.models.identity` gives its architecture name and config,
    and ``identity(model).spec.processor`` its processing.
    """
    return models.build(name, **config)


#: Path of the bundled default model file.
default_model_path = presets.default_model_path


def load_model(path: str | os.PathLike, arch: str | None = None, **overrides: Any):
    """Load a model file.

    Args:
        path: a tfderain ``.keras`` file (self-describing), an official PyTorch checkpoint
            (``.pth``/``.pt``/``.pth.tar``), which then needs ``arch``, or a preset name
            (``"prenet:rain100h"``, see :mod:`tfderain.presets`; downloaded on first use).
        arch: registry name; required for official checkpoints, checked against ``.keras`` files.
        overrides: config values that the checkpoint's shapes cannot tell (e.g. ``stages``);
            official checkpoints only.

    Returns:
        The plain functional ``keras.Model`` (``fit``, ``save``, TFMOT QAT and SavedModel export
        take it as any Keras model). The rest of its bundle is kept by the registry, not set on
        the model: :func:`tfderain.models.identity` gives its architecture name, config and
        weight source (``Identity(arch, config, source)``; for a preset its name, source URL
        and sha256, and license note), and ``identity(model).spec.processor`` its processing.
    """
    from tfderain import saving

    if presets.is_preset_name(path):
        if overrides:
            raise ValueError(f"preset {path}: config overrides apply to official checkpoints only")
        return saving.load_model(_preset_file(path, arch))
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


def _preset_file(name: str, arch: str | None) -> Path:
    """The cached ``.keras`` file of preset ``name`` (downloaded and converted on first use),
    after checking that it holds ``arch`` when one is asked for."""
    preset = presets.get(name)
    if arch is not None and arch != preset.arch:
        raise ValueError(f"preset {name}: holds a {preset.arch!r} model, not {arch!r}")
    return presets.resolve(name)


#: Models loaded by :func:`resolve_model`, most recently used last (a few, for loops that
#: derain many images with the same weights).
_RESOLVED: OrderedDict[tuple, Any] = OrderedDict()
_RESOLVED_KEPT = 4


def _load_once(path: str | os.PathLike, arch: str | None):
    """:func:`load_model`, remembered for the same file (path, size and modification time), so
    that ``derain(image)`` in a loop loads the weights and traces the network once."""
    if presets.is_preset_name(path):
        path, arch = _preset_file(path, arch), None
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        return load_model(path, arch=arch)  # the loader names the problem
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, arch)
    if key in _RESOLVED:
        _RESOLVED.move_to_end(key)
        return _RESOLVED[key]
    model = load_model(path, arch=arch)
    _RESOLVED[key] = model
    while len(_RESOLVED) > _RESOLVED_KEPT:
        _RESOLVED.popitem(last=False)
    return model


def resolve_model(model: Any = None, weights: str | os.PathLike | None = None):
    """A Keras model from the forms the CLI and :func:`derain` accept.

    ``model`` may be a ``keras.Model`` (used as is), ``None``/``"default"`` (the bundled default),
    a preset name (``"prenet:rain100h"``) or a registry name, in which case ``weights``
    (``.keras``, official ``.pth`` or a preset name) is required. The same file is loaded once:
    later calls return the same model (do not train it; use :func:`load_model` for a model of
    your own).
    """
    if model is not None and not isinstance(model, str):
        return model
    if weights is not None:
        arch = None if model in (None, DEFAULT_MODEL) else model
        return _load_once(weights, arch)
    if model in (None, DEFAULT_MODEL):
        return _load_once(default_model_path(), None)
    if presets.is_preset_name(model):
        return _load_once(model, None)
    models.spec(model)  # unknown names fail here with the list of known ones
    raise ValueError(
        f"model {model!r} needs weights: an official checkpoint (.pth) or a converted .keras file"
    )


def model_spec(model) -> models.ModelSpec:
    """The registry entry a loaded model was built from (:func:`tfderain.models.spec_of`)."""
    return models.spec_of(model)


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


# -------------------------------------------------------------------------------- rain density
# The estimator is tfderain.density_estimation's; this resolves the model by name first.


def estimate_density(
    image: np.ndarray,
    model: Any = None,
    weights: str | os.PathLike | None = None,
    **options: Any,
) -> Density:
    """Estimate the rain density of one image with a density-aware model.

    Args:
        image: ``(H, W, 3)`` RGB, uint8/uint16 or float in [0, 1]; ``(H, W)`` grayscale and
            ``(H, W, 4)`` RGBA are accepted (alpha is ignored). Any size: see
            :class:`DensityEstimator` for how it is resized or padded for the model.
        model: a ``keras.Model``, a registry name (with ``weights``) or ``None`` for the
            default; it must be density-aware (``codenet``, ``mcodenet``, ``crdnet``,
            ``crdnet_anysize``, ``didmdn``).
        weights: ``.keras`` or official ``.pth`` file for ``model``.
        options: keyword arguments of :class:`DensityEstimator` (``max_pixels``).

    Returns:
        A :class:`Density`: the continuous value in [0, 1] and the level. Each registered
        model's ``density_decoder`` documents how its output maps to both.

    Raises:
        ValueError: the model does not estimate rain density, or the image is not usable.

    For many images, build a :class:`DensityEstimator` once and call its ``estimate``.
    """
    if isinstance(model, str) and model != DEFAULT_MODEL:
        density_spec(model)  # a clear error before any weights are loaded
    net = resolve_model(model, weights)
    return DensityEstimator(net, **options).estimate(image)


__all__ = [
    "DEFAULT_DENSITY_MAX_PIXELS",
    "DEFAULT_MODEL",
    "Density",
    "DensityEstimator",
    "build_model",
    "default_model_path",
    "density_models",
    "density_spec",
    "derain",
    "estimate_density",
    "list_models",
    "load_model",
    "model_spec",
    "resolve_model",
]
