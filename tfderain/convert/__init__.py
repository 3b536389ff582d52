"""Official PyTorch checkpoints → tfderain Keras models, without PyTorch.

>>> model = convert("prenet", "net_latest.pth")          # doctest: +SKIP
>>> save_model(model, "prenet_rain100h.keras")           # doctest: +SKIP

:mod:`tfderain.pth` reads ``.pth`` files (zip and legacy formats);
:mod:`tfderain.convert.mapping` applies a state dict through each model's declarative key table.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from tfderain import models
from tfderain._keras import keras
from tfderain.convert.mapping import apply_state_dict
from tfderain.models import ConversionError
from tfderain.pth import PthFormatError, load_state_dict

#: Version of the conversion rules (key tables, layout transposes). Raise it whenever a change
#: makes a converted model differ from what an earlier version produced: converted models cached
#: by :mod:`tfderain.presets` are keyed by it, so they are converted again.
CONVERTER_VERSION = 1


def config_from_state_dict(arch: str, state_dict: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Builder kwargs of ``arch`` recovered from the checkpoint's tensor shapes."""
    infer = models.spec(arch).infer_config
    if infer is None:
        return {}
    try:
        return infer(state_dict)
    except KeyError as exc:
        raise ConversionError(
            f"checkpoint does not look like {arch!r}: it has no key {exc.args[0]!r}"
        ) from None


def convert_state_dict(
    arch: str, state_dict: Mapping[str, np.ndarray], **overrides: Any
) -> keras.Model:
    """Build ``arch`` configured from ``state_dict``'s shapes (``overrides`` win) and load it."""
    spec = models.spec(arch)
    config = {**config_from_state_dict(arch, state_dict), **overrides}
    model = models.build(arch, **config)
    full = models.identity(model).config
    apply_state_dict(model, state_dict, spec.key_table(**full), ignore=spec.ignored_keys(**full))
    return model


def convert(arch: str, path: str | os.PathLike, **overrides: Any) -> keras.Model:
    """Read the official checkpoint at ``path`` and return the equivalent Keras model.

    Raises :class:`PthFormatError` for unreadable files and :class:`ConversionError` (listing
    every missing/unexpected key and shape mismatch) when the checkpoint does not fit ``arch``.
    """
    state_dict = load_state_dict(path)
    try:
        return convert_state_dict(arch, state_dict, **overrides)
    except ConversionError as exc:
        raise ConversionError(f"{os.fspath(path)}: {exc}") from None


__all__ = [
    "CONVERTER_VERSION",
    "ConversionError",
    "PthFormatError",
    "apply_state_dict",
    "config_from_state_dict",
    "convert",
    "convert_state_dict",
    "load_state_dict",
]
