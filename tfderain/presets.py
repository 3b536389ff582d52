"""Pretrained presets: one name (``ARCH:WEIGHTS``) gets a working model.

>>> model = load("prenet:rain100h")        # doctest: +SKIP
>>> path = resolve("prn_r:rain100l")       # the cached, converted .keras file  # doctest: +SKIP

``ARCH`` is the registered architecture that runs the weights, ``WEIGHTS`` names the training
set or release. Each preset records the upstream file (a URL pinned to a commit or release), its
sha256, the config the weights cannot tell (PReNet's stage count), what it was trained on, the
paper and the license status. tfderain never redistributes official weights: the first use
downloads the file from its authors' release (with a progress bar), checks its sha256, converts
it once through :mod:`tfderain.convert` and caches the ``.keras`` file; later uses are offline.

Cache: ``$TFDERAIN_HOME`` (default ``~/.cache/tfderain``) holds ``downloads/HOST/PATH`` (the
upstream files, laid out like their URLs, so the folder can serve as a mirror) and
``models/NAME-HASH-cV.keras`` (converted models, keyed by the source sha256 and
:data:`tfderain.convert.CONVERTER_VERSION`, so a converter change converts again).

Mirrors: ``$TFDERAIN_MIRROR`` (an ``http(s)://`` URL or a local folder) replaces the origin: the
file whose upstream URL is ``https://HOST/PATH`` is read from ``$TFDERAIN_MIRROR/HOST/PATH``.

Failures (no network, HTTP error, truncated transfer, hash mismatch, full disk) raise
:class:`PresetError` with one line and leave no partial file behind; two processes resolving
the same preset for the first time serialise on a lock file and both get the same model.

Presets marked ``verified=False`` record a hash that was published elsewhere (a sha256 or the
8-hex prefix that torch.hub-style file names carry) but whose bytes no test here has loaded.

Official weights that are **not available as presets** (no stable URL: Google Drive, Baidu,
OneDrive folders, or no release at all); convert them yourself with ``tfderain convert``:

* MPRNet deraining (swz30/MPRNet): Google Drive only.
* PCNet (kuijiang0802/PCNet): no stable URL found; its README names no weights download.
* DTPNet (JackAILab/DTPNet): no released weights found.
* DID-MDN (hezhangsprinter/DID-MDN): derain network and density classifier on Google Drive.
* CRDNet (peylnog/CRDNet): Baidu Netdisk only.
* ReMAEN (nnUyi/ReMAEN): a TensorFlow 1 checkpoint (Rain100L), not a PyTorch file.
* SPAIR: no official code or weights (tfderain implements it from the paper).
* CODE-Net single-scale ``CODENET-*.pth`` (Achhhe/CODE-Net): no hash recorded here yet.
* Restormer deraining on Google Drive (the README's link); its GitHub release v1.0 file and
  the OpenMMLab copy are presets (``restormer:rain13k``, ``restormer:rain13k-openmmlab``),
  not verified here.
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import hashlib
import http.client
import json
import os
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, BinaryIO

from tfderain import models

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: the atomic rename alone protects the cache
    fcntl = None

#: The default cache folder when ``$TFDERAIN_HOME`` is not set.
DEFAULT_HOME = "~/.cache/tfderain"
#: Alias of the bundled default model.
DEFAULT = "default"
#: Seconds before a stalled connection counts as failed.
TIMEOUT = 60
_CHUNK = 1 << 20


class PresetError(RuntimeError):
    """A preset cannot be resolved (unknown name, download or hash failure); one line."""


@dataclass(frozen=True)
class Preset:
    """One named set of trained weights.

    Attributes:
        name: ``ARCH:WEIGHTS``.
        arch: registered architecture that runs the weights.
        url: upstream file, pinned to a commit or a release; ``None`` for a packaged file.
        sha256: the file's sha256 (64 hex digits) or, where only that was published, its prefix.
        size: file size in bytes, where known.
        config: builder values the weights cannot tell (``tfderain convert --set``).
        trained_on: training data, as the authors state it.
        paper: title, venue, year.
        license: status of the weights, ``"SHORT: explanation"``.
        verified: a test here has loaded these exact bytes (and scored them).
        packaged: file inside the tfderain package (no download, no conversion).
        strip_prefix: key prefix the file's state dict carries that the official one does not.
    """

    name: str
    arch: str
    url: str | None
    sha256: str | None
    size: int | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    trained_on: str = ""
    paper: str = ""
    license: str = ""
    verified: bool = True
    packaged: str | None = None
    strip_prefix: str = ""

    @property
    def source(self) -> str:
        """Where the weights come from, for tables: the host, or ``packaged``."""
        return urllib.parse.urlsplit(self.url).netloc if self.url else "packaged"

    @property
    def slug(self) -> str:
        """The name as a file-name part."""
        return self.name.replace(":", "-")


# ------------------------------------------------------------------------------- the table

_PRENET_PAPER = (
    "Ren, Zuo, Hu, Zhu, Meng: Progressive Image Deraining Networks: A Better and Simpler "
    "Baseline, CVPR 2019"
)
_PRENET_URL = (
    "https://raw.githubusercontent.com/csdwren/PReNet/6d908d1e3c7ff5c26fee624112297ad1c8603ca7/"
)
_PRENET_LICENSE = (
    "no license stated: csdwren/PReNet has no LICENSE file; downloaded by you from the "
    "authors' repository, never redistributed by tfderain"
)
_PRENET_TRAINED_ON = {
    "rain100h": "RainTrainH (Rain100H training set less 546 images sharing backgrounds with "
    "its test set: 1,254 pairs)",
    "rain100l": "RainTrainL (Rain100L training set, 200 pairs)",
    "rain1400": "Rain12600 (Rain1400 training set, 12,600 pairs)",
}
_PRENET_FOLDER = {"prenet": "PReNet6", "prenet_r": "PReNet6_r", "prn": "PRN6", "prn_r": "PRN6_r"}
_PRENET_DATASET = {"rain100h": "Rain100H", "rain100l": "Rain100L", "rain1400": "Rain1400"}
_PRENET_SIZE = {"prenet": 681694, "prenet_r": 382755, "prn": 384596, "prn_r": 86047}
# (arch, weights) → sha256 of logs/<Dataset>/<Folder>/net_latest.pth
_PRENET_FILES = {
    ("prenet", "rain100h"): "127c0098787c5272f1f8583f6c5202e7ef674f750cd145a1691912a6d9e96210",
    ("prenet", "rain100l"): "cb9b743bb33cf6e5c56ba45f8ade93add46266dea9fa582e1934dc5eed942333",
    ("prenet", "rain1400"): "d5744dc2e35d73187a3f34936b3413884d293277073ffb78b961a78e65337879",
    ("prenet_r", "rain100h"): "ece8127c651cf49026d998fa36857cb9d462c92cf535b640a377fc025f765b5f",
    ("prenet_r", "rain100l"): "31dd4419cdb0f4da623d974747113d60e2c22803598c39dcf03d789f86a7f62b",
    ("prenet_r", "rain1400"): "c639c19b342d6ae977b7ff8a4b2fbeb24179510a6e57b8bf5ef32d6b071fc8d5",
    ("prn", "rain100h"): "f1d56a7df0851eb087652663781d3f34c4c37a4c7ddd9a3f0802abbede1a06c2",
    ("prn", "rain100l"): "ed4be5b78f76dcec5c781e1655dee48c2a90b56993de555945d72e31848aea99",
    ("prn", "rain1400"): "c6620860a51b54afec0c1eebe412f0f1ca00128100f5b23c13758605206a0bf2",
    ("prn_r", "rain100h"): "99242ce096c9c617bd529a5e189797e8955a4b8611d355974c7c1c64a18b9074",
    ("prn_r", "rain100l"): "87ee3b1c027b33e7e532a4881c3b077d100cf40c65dd2843690600e3023acee0",
    ("prn_r", "rain1400"): "c0f7f18f3d33e26f50af8c693494a03c2776c627140a1d8e0514edd53e9398fb",
}
# PReNet's real-rain generator (test_real.py, Generator_lstm): 4 stages.
_PRENET_REAL_FILES = {
    "real1": ("PReNet1.pth", "eba0c0ed941565abce9c61ceb8b36ff5e1532320c20efc11843f5f7fc810f7bb"),
    "real2": ("PReNet2.pth", "cbf6068474e64bf81ea8597fe1473cda19e7d0afadb3c81beb41f8dcc3751269"),
}

_CODENET_URL = (
    "https://raw.githubusercontent.com/Achhhe/CODE-Net/d6de7561ed3196a6dd8ee59fc4fdb1c2e42e3bdd/"
    "CODE-Net/pretrained/"
)
_CODENET_PAPER = (
    "He et al.: Single Image Deraining with Continuous Rain Density Estimation, IEEE TMM 2023"
)
_CODENET_LICENSE = (
    "no license stated: Achhhe/CODE-Net has no LICENSE file; downloaded by you from the "
    "authors' repository, never redistributed by tfderain"
)
_CODENET_TRAINING = (
    "the authors' training sets (12,000 DID-MDN pairs, 1,800 JORDER pairs, SPANet real pairs); "
    "released for testing on "
)
#: Rain1200 first: the checkpoint of the golden fixture, which the export report (first preset of
#: an architecture) and the Android exporter take as mCODE-Net's official weights.
_CODENET_FILES = {
    "rain1200": ("010d14f9d2cceee4884efdcd28c9e83ae74c03980150b89fa44648b457c60dca", "Rain1200"),
    "rain12": ("9271c8934fbfb41f68a41b90309293e86bda52081b53439006ea294bc910289c", "Rain12"),
    "real": ("b13df940f200d3c1d1b3dba94230b6d6a7704e13e16ebad36de91f7ac3920b80", "real photos"),
    "test1000": ("e9923b7803d8e9035252af5e672be6c2927cd14ededf4822d80f6bc0af058d7c", "Test1000"),
}

_RESTORMER_PAPER = (
    "Zamir, Arora, Khan, Hayat, Khan, Yang: Restormer: Efficient Transformer for "
    "High-Resolution Image Restoration, CVPR 2022"
)
_RESTORMER_LICENSE = (
    "non-commercial: swz30/Restormer's LICENSE.md is an Academic Public License "
    "(non-commercial use) — check it; downloaded by you, never redistributed by tfderain"
)
_RAIN13K = "Rain13K (13,712 pairs: Rain14000, Rain1800, Rain800, Rain12)"


def _table() -> list[Preset]:
    table = [
        Preset(
            name=f"{arch}:{weights}",
            arch=arch,
            url=f"{_PRENET_URL}logs/{_PRENET_DATASET[weights]}/{_PRENET_FOLDER[arch]}/"
            "net_latest.pth",
            sha256=sha,
            size=_PRENET_SIZE[arch],
            config={"stages": 6},
            trained_on=_PRENET_TRAINED_ON[weights],
            paper=_PRENET_PAPER,
            license=_PRENET_LICENSE,
        )
        for (arch, weights), sha in _PRENET_FILES.items()
    ]
    table += [
        Preset(
            name=f"prenet_real:{weights}",
            arch="prenet_real",
            url=f"{_PRENET_URL}logs/real/{file}",
            sha256=sha,
            size=681694,
            config={"stages": 4},
            trained_on="not stated by the authors; released for real rainy photos (test_real.py)",
            paper=_PRENET_PAPER,
            license=_PRENET_LICENSE,
        )
        for weights, (file, sha) in _PRENET_REAL_FILES.items()
    ]
    table += [
        Preset(
            name=f"mcodenet:{weights}",
            arch="mcodenet",
            url=f"{_CODENET_URL}mCODENET-{weights}.pth",
            sha256=sha,
            size=3214026,
            trained_on=_CODENET_TRAINING + test_set,
            paper=_CODENET_PAPER,
            license=_CODENET_LICENSE,
        )
        for weights, (sha, test_set) in _CODENET_FILES.items()
    ]
    table += [
        Preset(
            name="restormer:rain13k",
            arch="restormer",
            url="https://github.com/swz30/Restormer/releases/download/v1.0/deraining.pth",
            # as published by a third-party download script; not verified here
            sha256="225ed9acf80b3527d7080e5182918f642a23a78ef8593ad700b7e924bd660681",
            trained_on=_RAIN13K,
            paper=_RESTORMER_PAPER,
            license=_RESTORMER_LICENSE,
            verified=False,
        ),
        Preset(
            name="restormer:rain13k-openmmlab",
            arch="restormer",
            url="https://download.openmmlab.com/mmediting/restormer/"
            "restormer_official_rain13k-2be7b550.pth",
            sha256="2be7b550",  # the prefix in the file name, torch.hub style
            trained_on=_RAIN13K + "; the official weights as re-saved by OpenMMLab MMagic",
            paper=_RESTORMER_PAPER,
            license=_RESTORMER_LICENSE,
            verified=False,
            strip_prefix="generator.",
        ),
        Preset(
            name="rainunet:synthetic",
            arch="rainunet",
            url=None,
            sha256=None,
            trained_on="synthetic rain (tfderain.data.synthetic) rendered over 42 freely "
            "licensed photos of training/data/LICENSES.md: 12 of 80 epochs of "
            "tfderain/configs/default.yaml (26 of the photos), then "
            "tfderain/configs/default_finetune.yaml",
            paper="tfderain's bundled default model (RainUNet, tfderain/models/rainunet.py)",
            license="Apache-2.0: trained and distributed by tfderain",
            packaged="weights/default.keras",
        ),
        Preset(
            name="prenet:synthetic16",
            arch="prenet",
            url=None,
            sha256=None,
            config={"stages": 6, "channels": 16},
            trained_on="synthetic rain rendered over four public-domain/CC0 scikit-image photos",
            paper="tfderain's first bundled default model (PReNet architecture, 16 channels)",
            license="Apache-2.0: trained and distributed by tfderain",
            packaged="weights/prenet_synthetic16.keras",
        ),
    ]
    return table


PRESETS: dict[str, Preset] = {p.name: p for p in _table()}
#: Other names of presets.
ALIASES = {DEFAULT: "rainunet:synthetic"}


# ---------------------------------------------------------------------------------- lookup


def names() -> list[str]:
    """Sorted preset names (aliases not included)."""
    return sorted(PRESETS)


def get(name: str) -> Preset:
    """The preset called ``name`` (or an alias); unknown names list close matches."""
    key = ALIASES.get(name, name)
    if key in PRESETS:
        return PRESETS[key]
    known = [*PRESETS, *ALIASES]
    close = difflib.get_close_matches(name, known, n=4, cutoff=0.5)
    if close:
        hint = f"did you mean {', '.join(close)}?"
    else:
        hint = f"known presets: {', '.join(sorted(known))}"
    raise PresetError(f"unknown preset {name!r}; {hint}")


_NAME = re.compile(r"[a-z][a-z0-9_]*:[a-z0-9][a-z0-9_.-]*", re.IGNORECASE)


def is_preset_name(text: Any) -> bool:
    """``text`` reads as a preset name (``ARCH:WEIGHTS``) rather than a file or a URL."""
    return isinstance(text, str) and bool(_NAME.fullmatch(text)) and not os.path.exists(text)


def home() -> Path:
    """The cache folder: ``$TFDERAIN_HOME`` or ``~/.cache/tfderain``."""
    return Path(os.environ.get("TFDERAIN_HOME") or DEFAULT_HOME).expanduser()


def default_model_path() -> Path:
    """The bundled default model file: the packaged file of the :data:`DEFAULT` preset."""
    return model_path(get(DEFAULT))


def download_path(preset: Preset) -> Path:
    """Where the downloaded upstream file of ``preset`` is cached (``downloads/HOST/PATH``)."""
    if preset.url is None:
        raise PresetError(f"preset {preset.name!r} is packaged with tfderain: nothing to download")
    parts = urllib.parse.urlsplit(preset.url)
    return home() / "downloads" / parts.netloc / urllib.parse.unquote(parts.path).lstrip("/")


def model_path(preset: Preset) -> Path:
    """Where the converted ``.keras`` file of ``preset`` is cached."""
    if preset.packaged is not None:
        return Path(str(resources.files("tfderain") / preset.packaged))
    from tfderain.convert import CONVERTER_VERSION

    key = f"{preset.slug}-{preset.sha256[:16]}-c{CONVERTER_VERSION}.keras"
    return home() / "models" / key


def source_url(preset: Preset) -> str:
    """The URL (or local file) the download really reads: the mirror's copy where one is set."""
    mirror = os.environ.get("TFDERAIN_MIRROR", "").strip()
    if not mirror:
        return preset.url
    parts = urllib.parse.urlsplit(preset.url)
    tail = f"{parts.netloc}{parts.path}"
    if mirror.startswith(("http://", "https://")):
        return f"{mirror.rstrip('/')}/{tail}"
    if mirror.startswith("file://"):
        mirror = urllib.parse.unquote(urllib.parse.urlsplit(mirror).path)
    return str(Path(mirror).expanduser() / parts.netloc / urllib.parse.unquote(parts.path[1:]))


# --------------------------------------------------------------------------------- download


def _hash_matches(digest: str, expected: str) -> bool:
    return digest.startswith(expected.lower())


@contextlib.contextmanager
def _lock(name: str) -> Iterator[None]:
    """Exclusive lock of one preset's cache entries, across processes."""
    folder = home() / "locks"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / f"{name}.lock", "a+b")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise PresetError(
            f"{folder}: cannot write the preset cache ({exc.strerror or exc})"
        ) from None
    with handle:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _open_source(preset: Preset, url: str, dest: Path) -> tuple[BinaryIO, int | None]:
    """The byte stream of ``url`` (or a local mirror file) and its length, if announced."""
    if not url.startswith(("http://", "https://")):
        try:
            stream = open(url, "rb")  # noqa: SIM115 - closed by the caller
        except FileNotFoundError:
            raise PresetError(
                f"{url}: not in the mirror folder $TFDERAIN_MIRROR (expected the layout HOST/PATH)"
            ) from None
        except OSError as exc:
            raise PresetError(f"{url}: cannot read ({exc.strerror or exc})") from None
        return stream, os.fstat(stream.fileno()).st_size
    request = urllib.request.Request(url, headers={"User-Agent": "tfderain"})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT)  # noqa: S310
    except urllib.error.HTTPError as exc:
        raise PresetError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PresetError(
            f"cannot download {url} ({reason}); without network, put the file at {dest} "
            "or pass --weights FILE"
        ) from None
    length = response.headers.get("Content-Length")
    return response, int(length) if length and length.isdigit() else None


def _progress(total: int | None, desc: str):
    from tqdm import tqdm

    # Shown also when stderr is not a terminal (logs, CI); updated at most every 2 s there.
    return tqdm(
        total=total,
        desc=desc,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        mininterval=0.1 if sys.stderr.isatty() else 2.0,
        disable=False,
    )


def _write_chunk(handle: BinaryIO, chunk: bytes) -> None:
    handle.write(chunk)


def download(preset: Preset | str, progress: bool = True) -> Path:
    """The upstream file of ``preset``, downloaded once and checked against its sha256.

    A cached download is re-hashed; a bad one is replaced. Raises :class:`PresetError`.
    """
    preset = get(preset) if isinstance(preset, str) else preset
    dest = download_path(preset)
    with _lock(preset.slug):
        return _download_locked(preset, dest, progress)


def _download_locked(preset: Preset, dest: Path, progress: bool) -> Path:
    if dest.is_file():
        if _hash_matches(sha256_file(dest), preset.sha256):
            return dest
        dest.unlink()
    url = source_url(preset)
    stream, length = _open_source(preset, url, dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as exc:
        stream.close()
        raise PresetError(
            f"{dest.parent}: cannot write the cache ({exc.strerror or exc})"
        ) from None
    digest = hashlib.sha256()
    received = 0
    try:
        with stream, os.fdopen(fd, "wb") as handle:
            bar = _progress(length, preset.name) if progress else None
            try:
                while chunk := stream.read(_CHUNK):
                    _write_chunk(handle, chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
            finally:
                if bar is not None:
                    bar.close()
            handle.flush()
            os.fsync(handle.fileno())
        if length is not None and received != length:
            raise PresetError(
                f"{url}: transfer truncated ({received} of {length} bytes); run again to retry"
            )
        if not _hash_matches(digest.hexdigest(), preset.sha256):
            raise PresetError(
                f"{url}: sha256 {digest.hexdigest()} does not match the expected "
                f"{preset.sha256} (corrupt or changed file); nothing was cached"
            )
        os.replace(tmp, dest)
    except PresetError:
        Path(tmp).unlink(missing_ok=True)
        raise
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise PresetError(f"{dest}: disk full while downloading {url}") from None
        raise PresetError(f"{url}: download failed ({exc.strerror or exc})") from None
    except http.client.HTTPException as exc:
        Path(tmp).unlink(missing_ok=True)
        raise PresetError(f"{url}: transfer broken off ({type(exc).__name__}); run again") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 of a file, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------- resolve, load


def resolve(name: str, progress: bool = True) -> Path:
    """The converted ``.keras`` file of preset ``name``, downloading and converting on first use.

    Later calls only check that the cached file exists: no network, no hashing.
    """
    preset = get(name)
    target = model_path(preset)
    if preset.packaged is not None or target.is_file():
        return target
    with _lock(preset.slug):
        if target.is_file():  # another process converted it while we waited
            return target
        source = _download_locked(preset, download_path(preset), progress)
        if progress:
            print(f"converting {preset.name} to {target}", file=sys.stderr, flush=True)
        _convert(preset, source, target)
    return target


def convert_file(preset: Preset | str, source: str | os.PathLike):
    """The Keras model of ``preset`` converted from a copy of its upstream file at ``source``.

    ``source`` is a download (:func:`download`) or any other copy of the file, such as one
    :func:`local_copy` finds; its sha256 is checked against the preset's, so what is converted is
    the preset's file. The model's identity records the preset (see :func:`load`). Raises
    :class:`PresetError` for a packaged preset, a file that is not the preset's or weights that
    do not fit its architecture.
    """
    from tfderain.convert import CONVERTER_VERSION, ConversionError, convert_state_dict
    from tfderain.pth import load_state_dict

    preset = get(preset) if isinstance(preset, str) else preset
    if preset.sha256 is None:
        raise PresetError(f"preset {preset.name!r} is packaged with tfderain: nothing to convert")
    digest = sha256_file(source)
    if not _hash_matches(digest, preset.sha256):
        raise PresetError(
            f"{source}: sha256 {digest} is not preset {preset.name!r}'s ({preset.sha256})"
        )
    state = load_state_dict(source)
    prefix = preset.strip_prefix
    if prefix and all(key.startswith(prefix) for key in state):
        state = {key[len(prefix) :]: value for key, value in state.items()}
    try:
        model = convert_state_dict(preset.arch, state, **preset.config)
    except (ConversionError, ValueError) as exc:
        raise PresetError(f"preset {preset.name!r} ({source}): {exc}") from None
    return models.with_source(
        model,
        preset=preset.name,
        source_url=preset.url,
        source_sha256=digest,
        license=preset.license,
        converter_version=CONVERTER_VERSION,
    )


def _convert(preset: Preset, source: Path, target: Path) -> None:
    from tfderain.saving import save_model

    model = convert_file(preset, source)
    try:
        save_model(model, target)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise PresetError(f"{target}: disk full while saving the converted model") from None
        raise PresetError(f"{target}: cannot save the converted model ({exc})") from None


def load(name: str, progress: bool = True):
    """The Keras model of preset ``name`` (see :func:`resolve`).

    Its identity (:func:`tfderain.models.identity`) records where the weights came from: the
    preset name, the source URL and sha256, the license note and the converter version; files
    saved or exported from it carry them.
    """
    from tfderain.saving import load_model

    return load_model(resolve(name, progress=progress))


# ---------------------------------------------------------------------------- local copies

#: Where a folder of local copies of upstream files keeps each repository's files (the layout of
#: ``../shared/weights``, the development copies of the official checkpoints): GitHub
#: repository → (its subfolder, the repository path prefix the subfolder leaves out).
COPY_FOLDERS = {
    "csdwren/PReNet": ("PReNet", ""),
    "Achhhe/CODE-Net": ("CODE-Net", "CODE-Net/pretrained/"),
}


def local_copy(preset: Preset, folder: str | os.PathLike) -> Path | None:
    """The copy of ``preset``'s upstream file in ``folder`` (laid out as :data:`COPY_FOLDERS`
    says), or ``None`` when there is none. The copy is not hashed here; :func:`convert_file`
    checks it."""
    if preset.url is None:
        return None
    parts = urllib.parse.urlsplit(preset.url)
    if parts.netloc != "raw.githubusercontent.com":
        return None
    owner, repo, _commit, rest = parts.path.lstrip("/").split("/", 3)
    subfolder, drop = COPY_FOLDERS.get(f"{owner}/{repo}", (None, ""))
    if subfolder is None or not rest.startswith(drop):
        return None
    path = Path(folder) / subfolder / urllib.parse.unquote(rest[len(drop) :])
    return path if path.is_file() else None


# ------------------------------------------------------------------------------ maintenance


def cached(preset: Preset) -> list[Path]:
    """The cache files of ``preset`` that exist (its download and converted models)."""
    if preset.packaged is not None:
        return []
    files = [download_path(preset)]
    folder = home() / "models"
    if folder.is_dir():
        files += sorted(folder.glob(f"{preset.slug}-*.keras"))
    return [f for f in files if f.is_file()]


def verify(names_: list[str] | None = None) -> dict[str, str]:
    """Re-hash cached downloads: ``{name: "ok" | "not downloaded" | "corrupt (removed)"}``.

    A corrupt download and the models converted from it are removed, so the next use starts
    clean. Packaged presets report ``"packaged"``.
    """
    report = {}
    for name in names_ or names():
        preset = get(name)
        if preset.packaged is not None:
            report[preset.name] = "packaged"
            continue
        path = download_path(preset)
        if not path.is_file():
            report[preset.name] = "not downloaded"
        elif _hash_matches(sha256_file(path), preset.sha256):
            report[preset.name] = "ok"
        else:
            for file in cached(preset):
                file.unlink(missing_ok=True)
            report[preset.name] = "corrupt (removed)"
    return report


def clear(names_: list[str] | None = None) -> int:
    """Remove cached downloads and converted models (all, or of ``names_``); bytes freed."""
    freed = 0
    if names_ is None:
        for sub in ("downloads", "models", "locks"):
            folder = home() / sub
            if folder.is_dir():
                freed += sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
                shutil.rmtree(folder)
        return freed
    for name in names_:
        for file in cached(get(name)):
            freed += file.stat().st_size
            file.unlink(missing_ok=True)
    return freed


# ---------------------------------------------------------------------------------- scores


def scores() -> dict[str, Any]:
    """The measured scores of the presets (``presets_scores.json``), or ``{}``."""
    path = resources.files("tfderain") / "presets_scores.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def describe() -> list[dict[str, Any]]:
    """One row per preset for tables and ``--json``: the table's facts and the mean scores."""
    measured = scores().get("presets", {})
    rows = []
    for preset in PRESETS.values():
        row = {
            "name": preset.name,
            "aliases": sorted(a for a, target in ALIASES.items() if target == preset.name),
            "arch": preset.arch,
            "url": preset.url,
            "sha256": preset.sha256,
            "size": preset.size if preset.packaged is None else model_path(preset).stat().st_size,
            "config": dict(preset.config),
            "trained_on": preset.trained_on,
            "paper": preset.paper,
            "license": preset.license,
            "verified": preset.verified,
            "source": preset.source,
            "scores": {
                data: {p: {k: v[k] for k in ("mean_psnr", "mean_ssim")} for p, v in by.items()}
                for data, by in measured.get(preset.name, {}).items()
            },
        }
        rows.append(row)
    return rows


def _fmt_size(size: int | None) -> str:
    if size is None:
        return "?"
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.0f} kB"


def _fmt_scores(row: dict[str, Any], dataset: str) -> str:
    by = row["scores"].get(dataset)
    if not by:
        return "-"
    return "/".join(f"{by[p]['mean_psnr']:.2f}" if p in by else "-" for p in ("A", "B"))


def format_table(rows: list[dict[str, Any]]) -> str:
    """``describe()`` rows as a text table (mean PSNR in dB under protocols A/B)."""
    header = ("name", "arch", "Rain100H-20 A/B", "Rain100L-3 A/B", "size", "source", "license")
    lines = [header]
    for row in rows:
        name = row["name"] + "".join(f" ({a})" for a in row["aliases"])
        if not row["verified"]:
            name += " *"
        lines.append(
            (
                name,
                row["arch"],
                _fmt_scores(row, "Rain100H-20"),
                _fmt_scores(row, "Rain100L-3"),
                _fmt_size(row["size"]),
                row["source"],
                row["license"].split(":", 1)[0],
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    ]
    text.append("PSNR in dB, mean over the images; * hash published elsewhere, not verified here")
    return "\n".join(text)
