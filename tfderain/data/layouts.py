"""Paired deraining datasets on disk: the known folder layouts, detected automatically.

``"rain13k"``
    ``ROOT/input/*`` and ``ROOT/target/*`` matched by file stem -- the Rain13K training set and
    the Rain100L/H, Test100, Test1200 test sets as distributed with MPRNet and Restormer.
``"prenet"``
    ``ROOT/rainy/rain-N.png`` with ``ROOT/norain-N.png`` matched by the number ``N`` (so
    ``rain-1`` matches ``norain-001``) -- the test sets distributed with PReNet.
``"folders"``
    a generic pair of folders matched by file stem: ``rainy/`` + ``clean/``, ``rain/`` +
    ``norain/``, ``input/`` + ``gt/``, or ``rainy_image/`` + ``ground_truth/``. A rainy stem with
    no clean twin also matches the clean stem before its last ``_`` (Rain1400/DDN names its
    14 rainy versions of ``N.jpg`` as ``N_1.jpg`` ... ``N_14.jpg``).
``"levels"``
    DID-MDN-style density classes: subfolders ``light/``, ``medium/`` and ``heavy/`` (optionally
    prefixed ``rain_``), each holding one of the layouts above. Pairs get ``density`` = the
    class index in :data:`tfderain.data.synthetic.LEVELS`; elsewhere ``density`` is None.

Folder names are matched case-insensitively. Image files are ``.png``, ``.jpg``, ``.jpeg`` and
``.bmp``; other files are ignored. Pairs are sorted naturally (``2`` before ``10``). Image files
without a partner are not an error: each one adds a line to :attr:`Pairs.warnings` (also logged).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from tfderain.data.synthetic import LEVELS

__all__ = ["IMAGE_SUFFIXES", "LayoutError", "Pair", "Pairs", "detect_layout", "find_pairs"]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp"})

# (rainy folder, clean folder) of the "folders" layout, in order of preference.
FOLDER_PAIRS = (
    ("rainy", "clean"),
    ("rain", "norain"),
    ("input", "gt"),
    ("rainy_image", "ground_truth"),
)

_NUMBERED = re.compile(r"^(no)?rain-(\d+)$", re.IGNORECASE)


class LayoutError(ValueError):
    """A folder is not a dataset of a known layout, or holds no pairs."""


@dataclass(frozen=True)
class Pair:
    """One rainy image and its clean ground truth.

    Attributes:
        name: the rainy file's stem (prefixed ``"<level>/"`` in the ``levels`` layout).
        rainy: path of the rainy image.
        clean: path of the clean image.
        density: index into ``LEVELS`` (0 light, 1 medium, 2 heavy) when the layout says so.
    """

    name: str
    rainy: Path
    clean: Path
    density: int | None = None


class Pairs(list[Pair]):
    """The pairs of a dataset (a ``list[Pair]``) with the layout found and any warnings."""

    def __init__(self, pairs: Iterable[Pair] = (), layout: str = "", warnings: Iterable[str] = ()):
        super().__init__(pairs)
        self.layout = layout
        self.warnings = list(warnings)


def _natural_key(text: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def _child_dirs(root: Path) -> dict[str, Path]:
    return {p.name.lower(): p for p in root.iterdir() if p.is_dir()}


def _images(folder: Path) -> list[Path]:
    files = (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return sorted(files, key=lambda p: _natural_key(p.name))


def _level_dirs(root: Path) -> dict[int, Path]:
    levels = {}
    for name, path in _child_dirs(root).items():
        level = name.removeprefix("rain_")
        if level in LEVELS:
            levels[LEVELS.index(level)] = path
    return levels


def _numbered_clean(root: Path) -> list[Path]:
    return [p for p in _images(root) if p.stem.lower().startswith("norain-")]


def _folder_pair(root: Path) -> tuple[Path, Path] | None:
    dirs = _child_dirs(root)
    for rainy, clean in FOLDER_PAIRS:
        if rainy in dirs and clean in dirs:
            return dirs[rainy], dirs[clean]
    return None


def _detect(root: Path) -> str | None:
    dirs = _child_dirs(root)
    if "input" in dirs and "target" in dirs:
        return "rain13k"
    if "rainy" in dirs and _numbered_clean(root):
        return "prenet"
    if _folder_pair(root) is not None:
        return "folders"
    if _level_dirs(root):
        return "levels"
    return None


def detect_layout(root: str | os.PathLike) -> str:
    """The layout of ``root``: ``"rain13k"``, ``"prenet"``, ``"folders"`` or ``"levels"``.

    Raises:
        LayoutError: ``root`` is not a folder or matches no known layout.
    """
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"{root}: not a directory")
    layout = _detect(root)
    if layout is None:
        raise LayoutError(
            f"{root}: no known dataset layout "
            "(expected input/+target/, rainy/+norain-*.png, or rainy/+clean/)"
        )
    return layout


def _match(
    rainy_dir: Path, clean: dict, key: Callable[[Path], object], unmatched: str
) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    """Pair each rainy image with ``clean[key(path)]``; a warning for every file left alone.

    ``unmatched`` ends the warning for a rainy image without a clean one.
    """
    used: set = set()
    matched, warnings = [], []
    for path in _images(rainy_dir):
        k = key(path)
        if k in clean:
            matched.append((path.stem, path, clean[k]))
            used.add(k)
        else:
            warnings.append(f"{path}: {unmatched}")
    warnings += [
        f"{p}: no rainy image for it in {rainy_dir}" for k, p in clean.items() if k not in used
    ]
    return matched, warnings


def _match_by_stem(
    rainy_dir: Path, clean_dir: Path, split_suffix: bool
) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    clean = {p.stem: p for p in _images(clean_dir)}

    def key(path: Path) -> str:
        stem = path.stem
        if stem not in clean and split_suffix and "_" in stem:
            stem = stem.rsplit("_", 1)[0]
        return stem

    return _match(rainy_dir, clean, key, f"no clean image with the same name in {clean_dir}")


def _match_by_number(root: Path) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    rainy_dir = _child_dirs(root)["rainy"]
    clean = {}
    for path in _numbered_clean(root):
        m = _NUMBERED.match(path.stem)
        if m:
            clean[int(m.group(2))] = path

    def key(path: Path) -> int | None:
        m = _NUMBERED.match(path.stem)
        return int(m.group(2)) if m and not m.group(1) else None

    return _match(rainy_dir, clean, key, f"no matching norain-N image in {root}")


def _flat_pairs(root: Path, layout: str) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    if layout == "rain13k":
        dirs = _child_dirs(root)
        return _match_by_stem(dirs["input"], dirs["target"], split_suffix=False)
    if layout == "prenet":
        return _match_by_number(root)
    rainy_dir, clean_dir = _folder_pair(root)  # type: ignore[misc]
    return _match_by_stem(rainy_dir, clean_dir, split_suffix=True)


def find_pairs(root: str | os.PathLike) -> Pairs:
    """All (rainy, clean) pairs under ``root``, in natural order of the rainy file names.

    Returns:
        a :class:`Pairs` list of :class:`Pair`; ``.layout`` names the layout and ``.warnings``
        lists the image files left without a partner.

    Raises:
        LayoutError: no known layout, or a layout without a single pair.
    """
    root = Path(root)
    layout = detect_layout(root)
    pairs: list[Pair] = []
    warnings: list[str] = []
    if layout == "levels":
        for level, folder in sorted(_level_dirs(root).items()):
            inner = _detect(folder)
            if inner is None or inner == "levels":
                warnings.append(f"{folder}: no known dataset layout, skipped")
                continue
            found, unmatched = _flat_pairs(folder, inner)
            prefix = LEVELS[level]
            pairs += [Pair(f"{prefix}/{n}", r, c, level) for n, r, c in found]
            warnings += unmatched
    else:
        found, warnings = _flat_pairs(root, layout)
        pairs = [Pair(n, r, c) for n, r, c in found]
    if warnings:
        log.warning(
            "%s: %d file(s) left without a partner, e.g. %s", root, len(warnings), warnings[0]
        )
    if not pairs:
        raise LayoutError(f"{root}: {layout} layout but no rainy/clean pairs found")
    return Pairs(pairs, layout=layout, warnings=warnings)
