"""A ``$TFDERAIN_MIRROR`` folder built from the official checkpoints in ``../shared/weights``.

The files there are byte-for-byte copies of the upstream files; each preset's copy is found by
:func:`tfderain.presets.local_copy` and linked where its upstream URL puts it in a mirror, so
scripts and tests go through the real :func:`tfderain.presets.resolve` path (mirror layout
``HOST/PATH``) without network.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

from tfderain import presets


def mirror_path(preset: presets.Preset, mirror: Path) -> Path:
    """Where ``preset``'s file belongs in a mirror folder (``HOST/PATH``)."""
    parts = urllib.parse.urlsplit(preset.url)
    return Path(mirror) / parts.netloc / urllib.parse.unquote(parts.path.lstrip("/"))


def build_mirror(weights_dir: Path, mirror: Path, names: list[str] | None = None) -> list[str]:
    """Symlink the shared copies into ``mirror``; returns the names of the presets it serves."""
    served = []
    for name in names or presets.names():
        preset = presets.get(name)
        source = presets.local_copy(preset, weights_dir)
        if source is None:
            continue
        link = mirror_path(preset, mirror)
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            os.symlink(source.resolve(), link)
        served.append(preset.name)
    return served
