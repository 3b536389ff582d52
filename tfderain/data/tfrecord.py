"""Packing a paired dataset into TFRecord shards, and reading the packs back by random access.

A pack is a folder::

    OUT/pairs-00000-of-00004.tfrecord ... pairs-00003-of-00004.tfrecord
    OUT/manifest.json

Each record is a ``tf.train.Example`` with the features ``name`` (bytes), ``rainy`` and
``clean`` (the original encoded file bytes, never re-encoded), ``split`` (``""``, or
``"rainy|clean"`` / ``"clean|rainy"`` for one side-by-side file stored in ``rainy``, with
``clean`` empty) and ``density`` (int64 class index into ``LEVELS``, ``-1`` when unlabelled).
Pair ``k`` of the source goes to shard ``k % shards`` (round robin), and the manifest keeps the
pairs in source order.

**Reading.** The shards are standard TFRecord files (``tf.data.TFRecordDataset`` reads them),
but :func:`tfderain.data.pipeline.paired_dataset` reads a pack by random access: the manifest
records each pair's ``(shard, offset, length)``, so element ``i`` of the stream reads just its
record with one ``os.pread`` (TFRecord framing: an 8-byte length, a 4-byte CRC, the data, a
4-byte CRC). This keeps memory flat for packs of any size, needs no shuffle buffer (the epoch
permutation is exact) and makes a pack give the same batches as its source folder. The CRCs
are not checked when reading: a damaged record fails to parse or decode and is reported like
any bad file.

``manifest.json`` holds ``format`` (``"tfderain-pairs"``), ``version``, ``count``, ``shards``,
``shard_counts``, ``files``, ``source``, ``layout``, ``names``, ``density``, ``records``
(``[shard, offset, length]`` per pair), ``skipped`` (``[file, cause]`` per bad pair) and
``warnings`` (files the layout left without a partner).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tfderain._keras import tf
from tfderain.data.decode import decode_pair
from tfderain.data.layouts import LayoutError, find_pairs
from tfderain.data.synthetic import LEVELS
from tfderain.io import ImageError, atomic_directory

__all__ = [
    "FORMAT",
    "MANIFEST",
    "VERSION",
    "describe",
    "PackError",
    "PackReport",
    "PackedPairs",
    "PackedRecord",
    "is_packed",
    "pack",
    "read_pack_manifest",
    "shard_name",
]

#: File name of a pack's manifest.
MANIFEST = "manifest.json"
#: ``format`` field of a pack's manifest, and its version.
FORMAT = "tfderain-pairs"
VERSION = 1
# TFRecord framing around each record's data: length (8) + length CRC (4) ... data CRC (4).
_HEADER = 12
_FRAMING = 16


class PackError(ValueError):
    """A pack cannot be written or read (the message names the folder and the cause)."""


def shard_name(index: int, shards: int) -> str:
    """File name of shard ``index`` of ``shards``: ``pairs-00000-of-00004.tfrecord``."""
    return f"pairs-{index:05d}-of-{shards:05d}.tfrecord"


def is_packed(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder holding a pack's ``manifest.json``."""
    return (Path(path) / MANIFEST).is_file()


def read_pack_manifest(folder: str | os.PathLike) -> dict:
    """The checked manifest of a pack.

    Raises:
        PackError: missing or unreadable manifest, another format or version, or fields that
            do not agree with each other.
    """
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PackError(f"{path}: cannot read the pack manifest: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise PackError(f"{path}: not a tfderain pairs manifest (format != {FORMAT!r})")
    if manifest.get("version") != VERSION:
        raise PackError(f"{path}: unsupported pack version {manifest.get('version')!r}")
    count = manifest.get("count")
    lists = ("names", "density", "records")
    if not all(isinstance(manifest.get(k), list) and len(manifest[k]) == count for k in lists):
        raise PackError(f"{path}: names, density and records must each list {count} pairs")
    if len(manifest.get("files", [])) != manifest.get("shards"):
        raise PackError(f"{path}: {manifest.get('shards')} shards but files lists others")
    return manifest


@dataclass(frozen=True)
class PackedRecord:
    """One pair of a pack: its name, the encoded file bytes, the split order and the class."""

    name: str
    rainy: bytes
    clean: bytes
    split: str | None
    density: int | None


class PackedPairs:
    """Random access to the records of a pack (thread-safe: one ``pread`` per record)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.manifest = read_pack_manifest(self.folder)
        self.names: list[str] = list(self.manifest["names"])
        self.levels: list[int | None] = [None if d < 0 else d for d in self.manifest["density"]]
        self._records = self.manifest["records"]
        self._fds: list[int] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.names)

    def _fd(self, shard: int) -> int:
        with self._lock:
            if not self._fds:
                for name in self.manifest["files"]:
                    path = self.folder / name
                    try:
                        self._fds.append(os.open(path, os.O_RDONLY))
                    except OSError as e:
                        raise PackError(f"{path}: cannot open shard: {e.strerror}") from None
            return self._fds[shard]

    def record(self, k: int) -> PackedRecord:
        """Record ``k``; ValueError naming the pack and the pair if it is damaged."""
        shard, offset, length = self._records[k]
        data = os.pread(self._fd(shard), length, offset + _HEADER)
        where = f"{self.folder / self.manifest['files'][shard]}: record {k} ({self.names[k]})"
        if len(data) != length:
            raise ValueError(f"{where}: truncated shard")
        try:
            features = tf.train.Example.FromString(data).features.feature
            name = features["name"].bytes_list.value[0].decode()
            rainy = features["rainy"].bytes_list.value[0]
            clean = features["clean"].bytes_list.value[0]
            split = features["split"].bytes_list.value[0].decode() or None
            density = int(features["density"].int64_list.value[0])
        except Exception as e:  # noqa: BLE001 - any parse failure is a damaged record
            raise ValueError(f"{where}: damaged record ({type(e).__name__})") from None
        return PackedRecord(name, rainy, clean, split, None if density < 0 else density)

    def close(self) -> None:
        with self._lock:
            for fd in self._fds:
                os.close(fd)
            self._fds = []

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown
            self.close()


def _example(name: str, rainy: bytes, clean: bytes, split: str | None, density: int) -> bytes:
    def as_bytes(value: bytes) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    feature = {
        "name": as_bytes(name.encode()),
        "rainy": as_bytes(rainy),
        "clean": as_bytes(clean),
        "split": as_bytes((split or "").encode()),
        "density": tf.train.Feature(int64_list=tf.train.Int64List(value=[density])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


@dataclass
class PackReport:
    """What :func:`pack` did: pairs written, and ``(file, cause)`` of each pair skipped."""

    folder: Path
    count: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _load(pair) -> tuple[bytes, bytes] | tuple[str, str]:
    """The pair's file bytes after a full decode check, or ``(file, cause)``."""
    try:
        try:
            rainy = pair.rainy.read_bytes()
            clean = b"" if pair.split else pair.clean.read_bytes()
        except OSError as e:
            path = pair.rainy if not Path(pair.rainy).is_file() else pair.clean
            raise ImageError(path, e.strerror or str(e)) from None
        decode_pair(rainy, clean or None, pair.split, str(pair.rainy), str(pair.clean))
    except ImageError as e:
        return e.path, e.cause
    return rainy, clean


def pack(
    source: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    shards: int = 1,
    layout: str | None = None,
    order: str | None = None,
    overwrite: bool = False,
    on_skip: Callable[[str, str], None] | None = None,
) -> PackReport:
    """Write the pairs of ``source`` into ``shards`` TFRecord files plus ``manifest.json``.

    Every pair is decoded once to check it; a bad pair (missing, empty, not an image,
    truncated, sizes differing) is skipped, reported to ``on_skip(file, cause)`` and listed in
    the report and the manifest. The pack is written into a temporary folder next to ``out``
    and renamed to ``out`` at the end, so ``out`` is either complete or absent.

    Args:
        source: what :func:`~tfderain.data.layouts.find_pairs` accepts.
        out: the pack folder to create.
        shards: number of TFRecord files (pair ``k`` goes to shard ``k % shards``).
        layout, order: passed to :func:`~tfderain.data.layouts.find_pairs`.
        overwrite: replace an existing ``out``.

    Raises:
        PackError: ``out`` exists (without ``overwrite``), ``shards`` < 1, or no pair could
            be packed; :class:`~tfderain.data.layouts.LayoutError` for a source without pairs.
    """
    out = Path(out)
    if shards < 1:
        raise PackError(f"{out}: shards must be at least 1, got {shards}")
    if out.exists() and not overwrite:
        raise PackError(f"{out}: already exists (use --overwrite to replace it)")
    pairs = find_pairs(source, layout=layout, order=order)
    if isinstance(source, (str, os.PathLike)):
        source_text: object = str(source)
    else:
        source_text = [str(s) for s in source]
    report = PackReport(out, warnings=list(pairs.warnings))
    with atomic_directory(out) as tmp:
        files = [shard_name(i, shards) for i in range(shards)]
        writers = [tf.io.TFRecordWriter(str(tmp / name)) for name in files]
        offsets = [0] * shards
        names, density, records = [], [], []
        with ThreadPoolExecutor(max_workers=4) as executor:
            for pair, loaded in zip(pairs, executor.map(_load, pairs), strict=True):
                if isinstance(loaded[0], str):
                    report.skipped.append(loaded)  # type: ignore[arg-type]
                    if on_skip is not None:
                        on_skip(*loaded)  # type: ignore[misc]
                    continue
                rainy, clean = loaded
                label = -1 if pair.density is None else pair.density
                data = _example(pair.name, rainy, clean, pair.split, label)  # type: ignore[arg-type]
                shard = len(names) % shards
                writers[shard].write(data)
                records.append([shard, offsets[shard], len(data)])
                offsets[shard] += len(data) + _FRAMING
                names.append(pair.name)
                density.append(label)
        for writer in writers:
            writer.close()
        if not names:
            raise PackError(f"{source_text}: no pair could be packed ({len(pairs)} bad)")
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "count": len(names),
            "shards": shards,
            "shard_counts": [sum(1 for r in records if r[0] == s) for s in range(shards)],
            "files": files,
            "source": source_text,
            "layout": pairs.layout,
            "names": names,
            "density": density,
            "records": records,
            "skipped": [list(s) for s in report.skipped],
            "warnings": report.warnings,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    report.count = len(names)
    return report


def describe(path: str | os.PathLike) -> dict:
    """Layout, pair count, density class counts and warnings of a dataset folder or pack."""

    if is_packed(path):
        manifest = read_pack_manifest(path)
        levels = [None if d < 0 else d for d in manifest["density"]]
        layout = f"packed ({manifest['layout']}, {manifest['shards']} shard(s))"
        warnings = list(manifest.get("warnings", []))
        warnings += [f"{f}: {cause} (not packed)" for f, cause in manifest.get("skipped", [])]
    else:
        if not Path(path).exists():
            raise LayoutError(f"{path}: no such file or directory")
        pairs = find_pairs(path)
        levels = [p.density for p in pairs]
        layout, warnings = pairs.layout, pairs.warnings
    counts = {name: levels.count(i) for i, name in enumerate(LEVELS)}
    counts["unlabelled"] = levels.count(None)
    return {"layout": layout, "count": len(levels), "density": counts, "warnings": warnings}
