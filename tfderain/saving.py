"""Self-describing model files.

A tfderain ``.keras`` file is the standard Keras archive plus a ``tfderain.json`` member naming
the registered architecture and its full config, so ``load_model(path)`` needs no other argument.
Files are written to a temporary name beside the target and renamed into place, so a failure
never leaves a half-written model behind.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tfderain import __version__, models
from tfderain._keras import keras
from tfderain.io import new_file_mode

METADATA = "tfderain.json"


class ModelFileError(ValueError):
    """A model file is missing, unreadable or not a tfderain model."""


def save_model(
    model: keras.Model, path: str | os.PathLike, extra: Mapping[str, Any] | None = None
) -> Path:
    """Save ``model`` (built by the registry) as a self-describing ``.keras`` file, atomically.

    ``extra`` adds JSON-serialisable keys to the stored metadata (e.g. where the weights came
    from); :func:`read_metadata` returns them beside ``arch`` and ``config``.
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"{path}: model files must end in .keras")
    arch = getattr(model, "_tfderain_arch", None)
    if arch is None:
        raise ValueError("only models built by tfderain.build_model/convert can be saved")
    meta = {"arch": arch, "config": model._tfderain_config, "tfderain_version": __version__}  # noqa: SLF001
    clash = sorted(set(meta) & set(extra or {}))
    if clash:
        raise ValueError(f"extra metadata may not replace {', '.join(clash)}")
    meta.update(extra or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".keras", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, new_file_mode())
        model.save(tmp, save_format="keras_v3")
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(METADATA, json.dumps(meta, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
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
    return model
