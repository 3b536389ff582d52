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
``"sidebyside"``
    one image file per pair, the rainy and the clean image concatenated horizontally. Detected
    when every image of a folder is exactly twice as wide as high (square halves, as DID-MDN's
    512x512), read from the PNG / JPEG / BMP headers alone; halves of other shapes need
    ``layout="sidebyside"`` (then only files of odd width are left out, with a warning).
    :attr:`Pair.split` tells which half is which:

    * ``"rainy|clean"`` -- DID-MDN (Zhang & Patel, CVPR 2018, ``hezhangsprinter/DID-MDN``): its
      loader crops the left half as the network input and the right half as the target. Its
      training set is ``DID-MDN-training/Rain_Heavy|Rain_Medium|Rain_Light/train2018new/*.jpg``
      (4,000 pairs each, 1024x512), its test sets (Test1200 = ``testing_fu``, and the 1,000
      images of "Test B") are flat folders of ``N.jpg``. This is the default order.
    * ``"clean|rainy"`` -- Rain800 (ID-CGAN, Zhang, Sindagi & Patel, TCSVT 2019,
      ``hezhangsprinter/ID-CGAN``): pix2pix-style ``A|B`` files trained ``which_direction=BtoA``,
      i.e. the clean image on the left. Its folders are ``rain/training/`` (700 pairs) and
      ``rain/test_syn/`` (100 pairs). The order cannot be seen in the headers: it is chosen
      automatically only when a component of the path is named like ``rain800`` or
      ``id-cgan``; pass ``order="clean|rainy"`` otherwise.
``"levels"``
    DID-MDN-style density classes: subfolders ``light/``, ``medium/`` and ``heavy/`` (any case,
    optionally prefixed ``rain_``), each holding one of the layouts above, or one level deeper
    (DID-MDN's ``Rain_Heavy/train2018new/``). Pairs get ``density`` = the class index in
    :data:`tfderain.data.synthetic.LEVELS`.

Outside the ``levels`` layout, a pair whose rainy file stem has a ``light``, ``medium`` or
``heavy`` token (``heavy_12.png``, ``rain-light-3.jpg``, any case) gets that class too; otherwise
``density`` is None. DID-MDN's official test sets carry no class in their file names.

**Mixes.** :func:`find_pairs` also takes a list of roots, or a YAML / text manifest listing
them, and concatenates their pairs with each name prefixed by its root's folder name. The
Rain13K training mix of MPRNet (Zamir et al., CVPR 2021, Table 1) is Rain14000 (11,200 train
pairs) + Rain1800 (1,800) + Rain800 (700) + Rain12 (12) = 13,712 pairs; Rain100H/L and Rain1200
are used for testing only.

Folder names are matched case-insensitively. Image files are ``.png``, ``.jpg``, ``.jpeg`` and
``.bmp``; other files are ignored. Pairs are sorted naturally (``2`` before ``10``). Image files
without a partner are not an error: each one adds a line to :attr:`Pairs.warnings` (also logged).
"""

from __future__ import annotations

import logging
import os
import re
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from tfderain.data.synthetic import LEVELS

__all__ = [
    "IMAGE_SUFFIXES",
    "LAYOUTS",
    "SPLIT_ORDERS",
    "LayoutError",
    "Pair",
    "Pairs",
    "detect_layout",
    "find_pairs",
    "image_size",
    "read_manifest",
]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp"})
#: Layout names :func:`find_pairs` knows (``layout=`` accepts each of them).
LAYOUTS = ("rain13k", "prenet", "folders", "sidebyside", "levels")
#: How a side-by-side file is split: the left half first.
SPLIT_ORDERS = ("rainy|clean", "clean|rainy")
#: Manifest files listing the roots of a mix.
MANIFEST_SUFFIXES = frozenset({".yaml", ".yml", ".txt"})

# (rainy folder, clean folder) of the "folders" layout, in order of preference.
FOLDER_PAIRS = (
    ("rainy", "clean"),
    ("rain", "norain"),
    ("input", "gt"),
    ("rainy_image", "ground_truth"),
)

_NUMBERED = re.compile(r"^(no)?rain-(\d+)$", re.IGNORECASE)
# Path components that name a dataset stored as [clean | rainy].
_CLEAN_FIRST = re.compile(r"^(rain[-_ ]?800|id[-_ ]?cgan)", re.IGNORECASE)
# Bytes read to find a JPEG frame header (EXIF thumbnails can push it far).
_HEADER_CHUNK = 1 << 16


class LayoutError(ValueError):
    """A folder is not a dataset of a known layout, or holds no pairs."""


@dataclass(frozen=True)
class Pair:
    """One rainy image and its clean ground truth.

    Attributes:
        name: the rainy file's stem (prefixed ``"<level>/"`` in the ``levels`` layout and
            ``"<root>/"`` in a mix).
        rainy: path of the rainy image.
        clean: path of the clean image (the same file as ``rainy`` for side-by-side pairs).
        density: index into ``LEVELS`` (0 light, 1 medium, 2 heavy) when the layout or the file
            name says so.
        split: None for two files; for one side-by-side file, ``"rainy|clean"`` or
            ``"clean|rainy"`` (the left half first).
    """

    name: str
    rainy: Path
    clean: Path
    density: int | None = None
    split: str | None = None


class Pairs(list[Pair]):
    """The pairs of a dataset (a ``list[Pair]``) with the layout found and any warnings.

    ``roots`` lists ``(root, layout, number of pairs)`` per root (one entry unless a mix).
    """

    def __init__(
        self,
        pairs: Iterable[Pair] = (),
        layout: str = "",
        warnings: Iterable[str] = (),
        roots: Iterable[tuple[Path, str, int]] = (),
    ):
        super().__init__(pairs)
        self.layout = layout
        self.warnings = list(warnings)
        self.roots = list(roots)


# ----------------------------------------------------------------------------- image headers


def _png_size(head: bytes) -> tuple[int, int] | None:
    if len(head) >= 24 and head[12:16] == b"IHDR":
        return struct.unpack(">II", head[16:24])
    return None


def _bmp_size(head: bytes) -> tuple[int, int] | None:
    if len(head) >= 26:
        (size,) = struct.unpack_from("<I", head, 14)
        if size == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
            return struct.unpack_from("<HH", head, 18)
        width, height = struct.unpack_from("<ii", head, 18)
        return width, abs(height)
    return None


def _jpeg_size(f) -> tuple[int, int] | None:
    """Walk the JPEG segments up to the first start-of-frame marker (SOF0..SOF15)."""
    data = f.read(_HEADER_CHUNK)

    def need(n: int) -> bool:
        nonlocal data
        while len(data) < n:
            more = f.read(_HEADER_CHUNK)
            if not more:
                return False
            data += more
        return True

    pos = 2
    while need(pos + 4):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # no length field
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame
            return None
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if not need(pos + 9):
                return None
            height, width = struct.unpack_from(">HH", data, pos + 5)
            return width, height
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if length < 2:
            return None
        pos += 2 + length
    return None


def image_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(width, height)`` from a PNG, JPEG or BMP file's header, without decoding pixels.

    Returns None when the file cannot be read or its header is not one of these formats.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(32)
            if head.startswith(b"\x89PNG\r\n\x1a\n"):
                return _png_size(head)
            if head.startswith(b"BM"):
                return _bmp_size(head)
            if head.startswith(b"\xff\xd8"):
                f.seek(0)
                return _jpeg_size(f)
    except (OSError, struct.error):
        return None
    return None


# ------------------------------------------------------------------------------ folder layouts


def _natural_key(text: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def _child_dirs(root: Path) -> dict[str, Path]:
    return {p.name.lower(): p for p in sorted(root.iterdir()) if p.is_dir()}


def _images(folder: Path) -> list[Path]:
    files = (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return sorted(files, key=lambda p: _natural_key(p.name))


def _level_of(name: str) -> int | None:
    name = name.lower().removeprefix("rain_").removeprefix("rain-")
    return LEVELS.index(name) if name in LEVELS else None


def _level_dirs(root: Path) -> dict[int, Path]:
    levels = {}
    for name, path in _child_dirs(root).items():
        level = _level_of(name)
        if level is not None:
            levels[level] = path
    return levels


def _name_level(stem: str) -> int | None:
    """The class named by a ``light``/``medium``/``heavy`` token of a file stem, if just one."""
    found = {LEVELS.index(t) for t in re.split(r"[^a-z]+", stem.lower()) if t in LEVELS}
    return found.pop() if len(found) == 1 else None


def _numbered_clean(root: Path) -> list[Path]:
    return [p for p in _images(root) if p.stem.lower().startswith("norain-")]


def _folder_pair(root: Path) -> tuple[Path, Path] | None:
    dirs = _child_dirs(root)
    for rainy, clean in FOLDER_PAIRS:
        if rainy in dirs and clean in dirs:
            return dirs[rainy], dirs[clean]
    return None


def _is_side_by_side(root: Path) -> bool:
    """Every image of ``root`` whose header is readable is exactly twice as wide as high."""
    sizes = [s for s in map(image_size, _images(root)) if s is not None]
    return bool(sizes) and all(w == 2 * h and h > 0 for w, h in sizes)


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
    if _is_side_by_side(root):
        return "sidebyside"
    return None


def detect_layout(root: str | os.PathLike) -> str:
    """The layout of ``root``: one of :data:`LAYOUTS`.

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


Found = list[tuple[str, Path, Path]]


def _match(
    rainy_dir: Path, clean: dict, key: Callable[[Path], object], unmatched: str
) -> tuple[Found, list[str]]:
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


def _match_by_stem(rainy_dir: Path, clean_dir: Path, split_suffix: bool) -> tuple[Found, list[str]]:
    clean = {p.stem: p for p in _images(clean_dir)}

    def key(path: Path) -> str:
        stem = path.stem
        if stem not in clean and split_suffix and "_" in stem:
            stem = stem.rsplit("_", 1)[0]
        return stem

    return _match(rainy_dir, clean, key, f"no clean image with the same name in {clean_dir}")


def _match_by_number(root: Path) -> tuple[Found, list[str]]:
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


def _side_by_side(root: Path) -> tuple[Found, list[str]]:
    found, warnings = [], []
    for path in _images(root):
        size = image_size(path)
        if size is not None and size[0] % 2:
            warnings.append(f"{path}: width {size[0]} is odd: not a side-by-side pair")
            continue
        found.append((path.stem, path, path))  # unreadable headers: the pipeline reports them
    return found, warnings


def _flat_pairs(root: Path, layout: str) -> tuple[Found, list[str]]:
    """The pairs of a layout other than ``levels``, checking the folders it needs."""
    dirs = _child_dirs(root)
    if layout == "rain13k":
        if not ("input" in dirs and "target" in dirs):
            raise LayoutError(f"{root}: the rain13k layout needs input/ and target/ folders")
        return _match_by_stem(dirs["input"], dirs["target"], split_suffix=False)
    if layout == "prenet":
        if "rainy" not in dirs:
            raise LayoutError(f"{root}: the prenet layout needs a rainy/ folder and norain-N files")
        return _match_by_number(root)
    if layout == "folders":
        folders = _folder_pair(root)
        if folders is None:
            names = ", ".join(f"{r}/+{c}/" for r, c in FOLDER_PAIRS)
            raise LayoutError(f"{root}: the folders layout needs one of {names}")
        return _match_by_stem(*folders, split_suffix=True)
    return _side_by_side(root)


def _default_order(root: Path) -> str:
    parts = root.resolve().parts
    return "clean|rainy" if any(_CLEAN_FIRST.match(p) for p in parts) else SPLIT_ORDERS[0]


def _level_pairs(root: Path, layout: str | None, order: str | None) -> tuple[list[Pair], list[str]]:
    """Pairs of the ``levels`` layout: each level folder, or its subfolders, holds a layout."""
    levels = _level_dirs(root)
    if not levels:
        raise LayoutError(f"{root}: the levels layout needs light/, medium/ or heavy/ folders")
    pairs: list[Pair] = []
    warnings: list[str] = []
    for level, folder in sorted(levels.items()):
        inner = layout or _detect(folder)
        if inner is not None and inner != "levels":
            places = [(folder, inner, LEVELS[level])]
        else:  # one level deeper, e.g. DID-MDN's Rain_Heavy/train2018new/
            places = []
            for sub in _child_dirs(folder).values():
                found = _detect(sub)
                if found is not None and found != "levels":
                    places.append((sub, found, None))
            if not places:
                warnings.append(f"{folder}: no known dataset layout, skipped")
            for i, (sub, found, _) in enumerate(places):
                prefix = LEVELS[level] if len(places) == 1 else f"{LEVELS[level]}/{sub.name}"
                places[i] = (sub, found, prefix)
        for place, kind, prefix in places:
            found, unmatched = _flat_pairs(place, kind)
            split = (order or _default_order(place)) if kind == "sidebyside" else None
            pairs += [Pair(f"{prefix}/{n}", r, c, level, split) for n, r, c in found]
            warnings += unmatched
    return pairs, warnings


def _one_root(root: Path, layout: str | None, order: str | None) -> Pairs:
    if layout is None:
        layout = detect_layout(root)
    elif not root.is_dir():
        raise LayoutError(f"{root}: not a directory")
    if layout == "levels":
        pairs, warnings = _level_pairs(root, None, order)
    else:
        found, warnings = _flat_pairs(root, layout)
        split = (order or _default_order(root)) if layout == "sidebyside" else None
        pairs = [Pair(n, r, c, _name_level(n), split) for n, r, c in found]
    if warnings:
        log.warning(
            "%s: %d file(s) left without a partner, e.g. %s", root, len(warnings), warnings[0]
        )
    if not pairs:
        raise LayoutError(f"{root}: {layout} layout but no rainy/clean pairs found")
    return Pairs(pairs, layout=layout, warnings=warnings, roots=[(root, layout, len(pairs))])


def read_manifest(path: str | os.PathLike) -> list[dict]:
    """The roots a mix manifest lists, as ``{"path", "layout", "order"}`` dicts.

    A ``.txt`` manifest lists one root per line (``#`` starts a comment). A YAML manifest is a
    list, or a mapping with a ``roots`` list, of paths or of ``{path, layout, order}`` mappings.
    Relative paths are relative to the manifest's folder.

    Raises:
        LayoutError: the manifest is missing, unreadable or malformed.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise LayoutError(f"{path}: cannot read the manifest: {e}") from None
    if path.suffix.lower() == ".txt":
        items: object = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
        items = [ln for ln in items if ln]  # type: ignore[union-attr]
    else:
        import yaml

        try:
            items = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise LayoutError(f"{path}: invalid YAML: {' '.join(str(e).split())}") from None
        if isinstance(items, dict):
            items = items.get("roots")
    if not isinstance(items, list) or not items:
        raise LayoutError(f"{path}: a manifest lists roots (a list, or a mapping with 'roots')")
    roots = []
    for item in items:
        entry = {"path": item} if isinstance(item, str) else item
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise LayoutError(f"{path}: each root is a path or a mapping with 'path', got {item!r}")
        unknown = set(entry) - {"path", "layout", "order"}
        if unknown:
            raise LayoutError(f"{path}: unknown root key(s) {', '.join(sorted(unknown))}")
        roots.append({**entry, "path": path.parent / entry["path"]})
    return roots


def _check_choice(value: str | None, choices: Sequence[str], what: str) -> None:
    if value is not None and value not in choices:
        raise LayoutError(f"{what} must be one of {', '.join(choices)}, got {value!r}")


def find_pairs(
    root: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    layout: str | None = None,
    order: str | None = None,
) -> Pairs:
    """All (rainy, clean) pairs under ``root``, in natural order of the rainy file names.

    Args:
        root: a dataset folder; a list of folders (a mix); or a ``.yaml``/``.yml``/``.txt``
            manifest listing folders (see :func:`read_manifest`). In a mix each pair's name is
            prefixed with ``"<folder name>/"`` (``"<folder name>~2/"`` ... for repeated names).
        layout: one of :data:`LAYOUTS` to use instead of detection (for every root of a mix
            without its own ``layout``).
        order: ``"rainy|clean"`` or ``"clean|rainy"``, the halves of side-by-side files;
            default from the path (see the module docstring).

    Returns:
        a :class:`Pairs` list of :class:`Pair`; ``.layout`` names the layout (``"mix"`` for
        several roots) and ``.warnings`` lists the image files left without a partner.

    Raises:
        LayoutError: no known layout, a layout without a single pair, or bad arguments.
    """
    _check_choice(layout, LAYOUTS, "layout")
    _check_choice(order, SPLIT_ORDERS, "order")
    if isinstance(root, (str, os.PathLike)):
        path = Path(root)
        if not (path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES):
            return _one_root(path, layout, order)
        entries = read_manifest(path)
    else:
        entries = [{"path": Path(r)} for r in root]
        if not entries:
            raise LayoutError("find_pairs: the list of dataset folders is empty")
    pairs: list[Pair] = []
    warnings: list[str] = []
    roots: list[tuple[Path, str, int]] = []
    seen: dict[str, int] = {}
    for entry in entries:
        _check_choice(entry.get("layout"), LAYOUTS, f"{entry['path']}: layout")
        _check_choice(entry.get("order"), SPLIT_ORDERS, f"{entry['path']}: order")
        part = _one_root(
            Path(entry["path"]), entry.get("layout") or layout, entry.get("order") or order
        )
        name = Path(entry["path"]).resolve().name or "root"
        seen[name] = seen.get(name, 0) + 1
        prefix = name if seen[name] == 1 else f"{name}~{seen[name]}"
        pairs += [replace(p, name=f"{prefix}/{p.name}") for p in part]
        warnings += part.warnings
        roots += part.roots
    return Pairs(pairs, layout="mix", warnings=warnings, roots=roots)
