"""Files on any Beam filesystem: matching inputs, reading bytes, writing outputs safely.

Every path is a string that :class:`apache_beam.io.filesystems.FileSystems` understands: a local
path, or a URI of a filesystem whose Beam extra is installed (``gs://`` with
``apache-beam[gcp]``, ``s3://`` with ``apache-beam[aws]``, ``hdfs://`` …). Local paths are made
absolute, so that the same file always has the same name.

How a file is written (:func:`write_bytes`) depends on what the filesystem can do:

* **local files**: :func:`tfderain.io.write_bytes_atomically` (a temporary file beside the
  target, flushed, then renamed over it);
* **object stores** (``gs://``, ``s3://``, ``azfs://``): one object write, which the store makes
  visible only once complete, so readers see the old object or the whole new one;
* **other filesystems** (HDFS …): a temporary name beside the target, then a rename; an existing
  target is deleted just before the rename, so on those a failure at that moment can lose the
  old file (not the new one).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from tfderain import io

#: Filesystems whose single object write is atomic (and whose rename is a copy).
OBJECT_STORES = frozenset({"gs", "s3", "azfs"})
#: Chunk size when copying a file.
_CHUNK = 1 << 20


def is_local(path: str) -> bool:
    """Whether ``path`` is a local file path (no scheme, or ``file://``)."""
    return FileSystems.get_scheme(path) in (None, "file")


def normalize(path: str) -> str:
    """``path`` made absolute when it is local; URIs are returned as they are."""
    path = os.fspath(path)
    if FileSystems.get_scheme(path) == "file":
        path = path[len("file://") :]
    return os.path.abspath(os.path.expanduser(path)) if is_local(path) else path


def basename(path: str) -> str:
    """The last component of a path or URI."""
    return FileSystems.split(path)[1]


def split(path: str) -> tuple[str, str]:
    """``(folder, name)`` of a path or URI."""
    return FileSystems.split(path)


def relative_to(folder: str, path: str) -> str:
    """``path`` itself when it is a URI or an absolute path, else ``folder/path``."""
    if not is_local(path) or os.path.isabs(os.path.expanduser(path)):
        return normalize(path)
    return normalize(join(folder, path))


def join(folder: str, name: str) -> str:
    """``folder/name`` on the filesystem of ``folder``."""
    return FileSystems.join(folder, name)


def is_pattern(path: str) -> bool:
    """Whether ``path`` holds a glob wildcard."""
    return any(c in path for c in "*?[")


def expand_input(path: str) -> tuple[str, str]:
    """``(pattern, kind)`` for one input as the command line takes it.

    ``kind`` is ``"folder"`` (a local folder, or any path ending with ``/``: its image files,
    not recursive), ``"pattern"`` (a glob: the image files it matches) or ``"file"`` (taken as
    given, whatever its extension).
    """
    if is_local(path):
        path = normalize(path)
        if os.path.isdir(path):
            return os.path.join(path, "*"), "folder"
    elif path.endswith("/"):
        return path + "*", "folder"
    return path, "pattern" if is_pattern(path) else "file"


def match(path: str) -> tuple[list[str], str | None]:
    """The files of one input (:func:`expand_input`), sorted, or ``([], cause)``."""
    pattern, kind = expand_input(path)
    try:
        (result,) = FileSystems.match([pattern])
        found = sorted(normalize(m.path) for m in result.metadata_list)
    except OSError as exc:
        if kind == "file":
            return [], "no such file or directory"
        return [], io.error_cause(exc)
    if kind != "file":
        found = [p for p in found if io.is_image_path(p)]
    if found:
        return found, None
    if kind == "folder":
        return [], "folder contains no images"
    if kind == "pattern":
        return [], "pattern matches no images"
    return [], "no such file or directory"


def read_bytes(path: str) -> bytes:
    """All bytes of a file, exactly as stored (no decompression by extension)."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return f.read()


def copy_to_local(path: str, local: str) -> None:
    """Copy a file of any filesystem to the local path ``local``, in chunks."""
    with (
        FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as src,
        open(local, "wb") as dst,
    ):
        while chunk := src.read(_CHUNK):
            dst.write(chunk)


def exists(path: str) -> bool:
    """Whether a file exists at ``path``."""
    return FileSystems.exists(path)


def write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers never see a partial file (module docstring).

    Raises:
        OSError: the write failed; an existing ``path`` is then untouched (local files and
            object stores).
    """
    scheme = FileSystems.get_scheme(path)
    if is_local(path):
        io.write_bytes_atomically(normalize(path), data)
        return
    if scheme in OBJECT_STORES:
        _create(path, data)
        return
    folder, name = FileSystems.split(path)
    tmp = FileSystems.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
    try:
        _create(tmp, data)
        if FileSystems.exists(path):
            FileSystems.delete([path])
        FileSystems.rename([tmp], [path])
    except BaseException:
        if FileSystems.exists(tmp):
            FileSystems.delete([tmp])
        raise


def _create(path: str, data: bytes) -> None:
    with FileSystems.create(
        path, mime_type="application/octet-stream", compression_type=CompressionTypes.UNCOMPRESSED
    ) as f:
        f.write(data)


def write_lines(path: str, lines: Iterable[str]) -> None:
    """Write text lines (each ending with a newline) to ``path`` with :func:`write_bytes`."""
    write_bytes(path, "".join(f"{line}\n" for line in lines).encode())


__all__ = [
    "OBJECT_STORES",
    "basename",
    "copy_to_local",
    "exists",
    "expand_input",
    "is_local",
    "join",
    "match",
    "normalize",
    "read_bytes",
    "relative_to",
    "split",
    "write_bytes",
    "write_lines",
]
