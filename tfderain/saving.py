"""Self-describing model files.

A tfderain ``.keras`` file is the standard Keras archive plus a ``tfderain.json`` member naming
the registered architecture and its full config, so ``load_model(path)`` needs no other argument.
Files are written to a temporary name beside the target and renamed into place, so a failure
never leaves a half-written model behind.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tfderain import models
from tfderain._keras import keras
from tfderain._version import __version__
from tfderain.io import atomic_file

METADATA = "tfderain.json"


class ModelFileError(ValueError):
    """A model file is missing, unreadable or not a tfderain model."""


def save_model(
    model: keras.Model, path: str | os.PathLike, extra: Mapping[str, Any] | None = None
) -> Path:
    """Save ``model`` (built by the registry) as a self-describing ``.keras`` file, atomically.

    Where the weights came from (the model's :attr:`tfderain.models.Identity.source`, e.g. a
    preset's name, source sha256 and license note) is stored as ``source`` and given back to the
    model :func:`load_model` returns. ``extra`` adds other JSON-serialisable keys;
    :func:`read_metadata` returns them beside ``arch`` and ``config``.
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"{path}: model files must end in .keras")
    found = models.require_identity(model, "saving a .keras file")
    meta = {"arch": found.arch, "config": dict(found.config), "tfderain_version": __version__}
    if found.source:
        meta["source"] = dict(found.source)
    clash = sorted(set(meta) & set(extra or {}))
    if clash:
        raise ValueError(f"extra metadata may not replace {', '.join(clash)}")
    meta.update(extra or {})
    with atomic_file(path) as tmp:
        model.save(os.fspath(tmp), save_format="keras_v3")
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(METADATA, json.dumps(meta, indent=1, sort_keys=True))
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The architecture name, config and any extra keys stored in a tfderain ``.keras`` file."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read(METADATA))
    except KeyError:
        raise ModelFileError(f"{path}: not a tfderain model (no {METADATA} inside)") from None
    except (zipfile.BadZipFile, OSError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: unreadable model file ({exc})") from None


def load_model(path: str | os.PathLike) -> keras.Model:
    """Load a model saved by :func:`save_model`: rebuilt from the registry, weights restored."""
    meta = read_metadata(path)
    model = models.build(meta["arch"], **meta["config"])
    try:
        model.load_weights(os.fspath(path))
    except (ValueError, OSError) as exc:
        raise ModelFileError(f"{path}: weights do not fit {meta['arch']!r} ({exc})") from None
    if meta.get("source"):
        models.with_source(model, **meta["source"])
    return model
