"""A ``$TFDERAIN_MIRROR`` folder built from the official checkpoints in ``../shared/weights``.

The files there are byte-for-byte copies of the upstream files; this maps each preset's upstream
URL to its copy, so scripts and tests go through the real :func:`tfderain.presets.resolve` path
(mirror layout ``HOST/PATH``) without network.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

from tfderain import presets

# GitHub repository → (its folder in shared/weights, repository path prefix that folder drops)
_SHARED_FOLDERS = {
    "csdwren/PReNet": ("PReNet", ""),
    "Achhhe/CODE-Net": ("CODE-Net", "CODE-Net/pretrained/"),
}


def shared_weight(preset: presets.Preset, weights_dir: Path) -> Path | None:
    """The copy of ``preset``'s upstream file in ``weights_dir``, or ``None``."""
    if preset.url is None:
        return None
    parts = urllib.parse.urlsplit(preset.url)
    if parts.netloc != "raw.githubusercontent.com":
        return None
    owner, repo, _commit, rest = parts.path.lstrip("/").split("/", 3)
    folder, drop = _SHARED_FOLDERS.get(f"{owner}/{repo}", (None, ""))
    if folder is None or not rest.startswith(drop):
        return None
    path = Path(weights_dir) / folder / rest[len(drop) :]
    return path if path.is_file() else None


def mirror_path(preset: presets.Preset, mirror: Path) -> Path:
    """Where ``preset``'s file belongs in a mirror folder (``HOST/PATH``)."""
    parts = urllib.parse.urlsplit(preset.url)
    return Path(mirror) / parts.netloc / urllib.parse.unquote(parts.path.lstrip("/"))


def build_mirror(weights_dir: Path, mirror: Path, names: list[str] | None = None) -> list[str]:
    """Symlink the shared copies into ``mirror``; returns the names of the presets it serves."""
    served = []
    for name in names or presets.names():
        preset = presets.get(name)
        source = shared_weight(preset, weights_dir)
        if source is None:
            continue
        link = mirror_path(preset, mirror)
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            os.symlink(source.resolve(), link)
        served.append(preset.name)
    return served
