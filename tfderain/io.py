"""Reading, validating and writing image files.

This module is the only place where file pixels (uint8 / uint16) become float32 RGB in [0, 1] and
back. Everything it reads is checked first, and every problem with a file is an
:class:`ImageError` whose message is one line, ``"<path>: <cause>"``.

Reading (:func:`read_image`):
    * The file's bytes are read here and decoded with ``cv2.imdecode`` (so paths in any script
      work, and the bytes can be validated before decoding).
    * PNG files must contain every chunk up to ``IEND`` and JPEG files must reach their
      end-of-image marker; OpenCV may otherwise return a partially decoded picture.
    * Grayscale becomes three equal channels; an alpha channel is kept separately; 16-bit files
      are scaled by 1/65535 and remembered as ``bit_depth=16``.
    * The EXIF orientation of JPEG files (and of PNG ``eXIf`` chunks) is applied, so the pixels
      come out the way viewers show them. Decoding itself ignores EXIF; this module reads the
      orientation tag and rotates/flips with numpy.
    * Metadata (EXIF, ICC profile, XMP, DPI, PNG text) is kept in :attr:`Image.metadata`, read
      by :mod:`tfderain.metadata` without decoding pixels; after the pixels were turned upright
      its EXIF says orientation 1.

Writing (:func:`write_image`) encodes by file extension (JPEG at ``jpeg_quality``, 95 by
default), adds the metadata it is given where the format can hold it (:func:`dropped_metadata`
names the rest) and replaces the destination atomically: the bytes go to a temporary file in the
destination folder, which is then renamed over the target.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import struct
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from tfderain.metadata import Metadata, dropped, embed, read_metadata

#: File extensions treated as images when expanding folders and glob patterns.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOI = b"\xff\xd8"
_EXIF_HEADER = b"Exif\x00\x00"
_ORIENTATION_TAG = 0x0112
#: Signatures of the other formats OpenCV decodes: a failed decode of these is corruption.
_OTHER_SIGNATURES = (b"BM", b"II*\x00", b"MM\x00*", b"RIFF")

#: Output formats that can store an alpha channel / 16-bit samples.
_ALPHA_FORMATS = (".png", ".tif", ".tiff", ".webp")
_16BIT_FORMATS = (".png", ".tif", ".tiff")


class ImageError(ValueError):
    """A file cannot be read or written as an image; the message is ``"<path>: <cause>"``."""

    def __init__(self, path: str | os.PathLike, cause: str):
        self.path = str(path)
        self.cause = " ".join(str(cause).split())  # always one line
        super().__init__(f"{self.path}: {self.cause}")


@dataclass
class Image:
    """A decoded image.

    Attributes:
        rgb: ``(H, W, 3)`` float32 RGB in [0, 1].
        alpha: ``(H, W)`` float32 opacity in [0, 1], or ``None`` when the file has none.
        bit_depth: bits per sample of the file it came from (8 or 16); writing uses it again.
        path: the file it was read from, if any.
        metadata: EXIF, ICC profile, XMP, DPI and PNG text of that file, describing ``rgb`` (its
            EXIF orientation is 1 when the pixels were turned upright); empty for arrays.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    bit_depth: int = 8
    path: Path | None = None
    metadata: Metadata = field(default_factory=Metadata)


# --------------------------------------------------------------------------------------- reading


def read_image(path: str | os.PathLike) -> Image:
    """Read an image file as float32 RGB in [0, 1] (see the module docstring for the rules).

    Raises:
        ImageError: the file is missing, empty, a folder, not an image, truncated or corrupt, or
            has a sample type other than 8/16-bit unsigned integers.
    """
    path = Path(path)
    return decode_image(read_bytes(path), path)


def decode_image(data: bytes, path: str | os.PathLike) -> Image:
    """Decode the bytes of an image file read elsewhere (a remote store, an archive) by the rules
    of :func:`read_image`, metadata included; ``path`` names the file in errors and in
    :attr:`Image.path`.

    Raises:
        ImageError: the bytes are empty, not an image, truncated or corrupt, or have a sample
            type other than 8/16-bit unsigned integers.
    """
    if not data:
        raise ImageError(path, "empty file")
    path = Path(path)
    orientation = check_complete(path, data)

    with quiet_opencv():
        try:
            pixels = cv2.imdecode(
                np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION
            )
        except cv2.error:
            pixels = None
    if pixels is None or pixels.size == 0:
        if data.startswith((_PNG_SIGNATURE, _JPEG_SOI, *_OTHER_SIGNATURES)):
            raise ImageError(path, "truncated or corrupt image data")
        raise ImageError(path, "not an image or unsupported format")

    if pixels.dtype == np.uint8:
        bit_depth, top = 8, 255.0
    elif pixels.dtype == np.uint16:
        bit_depth, top = 16, 65535.0
    else:
        raise ImageError(path, f"unsupported sample type {pixels.dtype} (only 8/16-bit images)")

    pixels = _apply_orientation(pixels, orientation)
    rgb, alpha = _split_channels(path, pixels)
    rgb = rgb.astype(np.float32)
    rgb /= top  # division keeps the top level exactly 1.0
    if alpha is not None:
        alpha = alpha.astype(np.float32)
        alpha /= top
    metadata = read_metadata(data, upright=orientation != 1)
    return Image(rgb=rgb, alpha=alpha, bit_depth=bit_depth, path=path, metadata=metadata)


def read_bytes(path: str | os.PathLike) -> bytes:
    """The bytes of a file; an :class:`ImageError` for a folder, a missing or an empty file."""
    path = Path(path)
    if path.is_dir():
        raise ImageError(path, "is a directory")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(path, "no such file") from None
    except OSError as exc:
        raise ImageError(path, exc.strerror or exc) from None
    if not data:
        raise ImageError(path, "empty file")
    return data


def _split_channels(path: Path, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """OpenCV's gray / gray+alpha / BGR / BGRA layouts → (RGB, alpha or None)."""
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    channels = pixels.shape[2]
    if channels == 1:
        return np.repeat(pixels, 3, axis=2), None
    if channels == 2:
        return np.repeat(pixels[:, :, :1], 3, axis=2), pixels[:, :, 1]
    if channels == 3:
        return pixels[:, :, ::-1], None
    if channels == 4:
        return pixels[:, :, 2::-1], pixels[:, :, 3]
    raise ImageError(path, f"unsupported number of channels ({channels})")


def check_complete(path: str | os.PathLike, data: bytes) -> int:
    """Check that PNG/JPEG bytes are complete (see the module docstring) before decoding.

    Returns the EXIF orientation they carry (1 where none, and for other formats).

    Raises:
        ImageError: a PNG or JPEG file is truncated or malformed.
    """
    if data.startswith(_PNG_SIGNATURE):
        return _check_png(Path(path), data)
    if data.startswith(_JPEG_SOI):
        return _check_jpeg(Path(path), data)
    return 1


def _check_png(path: Path, data: bytes) -> int:
    """Walk the PNG chunks up to IEND; return the EXIF orientation of an ``eXIf`` chunk (or 1)."""
    pos = len(_PNG_SIGNATURE)
    orientation = 1
    while True:
        if pos + 8 > len(data):
            raise ImageError(path, "truncated or corrupt image data")
        (length,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length  # length, type, data, CRC
        if end > len(data):
            raise ImageError(path, "truncated or corrupt image data")
        if kind == b"eXIf":
            orientation = exif_orientation(data[pos + 8 : pos + 8 + length])
        if kind == b"IEND":
            return orientation
        pos = end


def _check_jpeg(path: Path, data: bytes) -> int:
    """Walk the JPEG header segments, require an end-of-image marker after the scan data, and
    return the EXIF orientation of the first APP1 ``Exif`` segment (or 1)."""
    pos = 2
    orientation = None
    while True:
        if pos >= len(data) or data[pos] != 0xFF:
            raise ImageError(path, "truncated or corrupt image data")
        while pos < len(data) and data[pos] == 0xFF:  # a marker, after any 0xFF fill bytes
            pos += 1
        if pos >= len(data):
            raise ImageError(path, "truncated or corrupt image data")
        marker = data[pos]
        pos += 1
        if marker == 0xD9:  # EOI before any scan: no picture
            raise ImageError(path, "truncated or corrupt image data")
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length field
            continue
        if pos + 2 > len(data):
            raise ImageError(path, "truncated or corrupt image data")
        (length,) = struct.unpack_from(">H", data, pos)
        segment = data[pos + 2 : pos + length]
        if length < 2 or len(segment) != length - 2:
            raise ImageError(path, "truncated or corrupt image data")
        if marker == 0xE1 and orientation is None and segment.startswith(_EXIF_HEADER):
            orientation = exif_orientation(segment[len(_EXIF_HEADER) :])
        pos += length
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            break
    # In entropy-coded data a literal 0xFF is always followed by 0x00, so 0xFFD9 is the real EOI
    # (progressive files have further scans before it). Data appended after EOI is allowed.
    if data.find(b"\xff\xd9", pos) < 0:
        raise ImageError(path, "truncated or corrupt image data")
    return orientation or 1


def exif_orientation(tiff: bytes) -> int:
    """The orientation tag (0x0112) of IFD0 in a TIFF-structured EXIF block, or 1.

    ``tiff`` starts at the TIFF header (``II*\\0`` or ``MM\\0*``). Malformed or missing data is
    not an error: the image is then shown as stored (orientation 1).
    """
    if len(tiff) < 8 or tiff[:4] not in (b"II*\x00", b"MM\x00*"):
        return 1
    order = "<" if tiff[:2] == b"II" else ">"
    (ifd,) = struct.unpack_from(order + "I", tiff, 4)
    if ifd + 2 > len(tiff):
        return 1
    (count,) = struct.unpack_from(order + "H", tiff, ifd)
    for k in range(count):
        entry = ifd + 2 + 12 * k
        if entry + 12 > len(tiff):
            return 1
        tag, kind, n = struct.unpack_from(order + "HHI", tiff, entry)
        if tag != _ORIENTATION_TAG:
            continue
        if n < 1 or kind not in (3, 4):  # SHORT, or LONG as some writers emit
            return 1
        (value,) = struct.unpack_from(order + ("H" if kind == 3 else "I"), tiff, entry + 8)
        return value if 1 <= value <= 8 else 1
    return 1


def _apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Turn stored pixels into displayed pixels for EXIF orientation 1–8 (rows, columns first)."""
    if orientation == 2:  # mirrored left-right
        return pixels[:, ::-1]
    if orientation == 3:  # rotated 180°
        return pixels[::-1, ::-1]
    if orientation == 4:  # mirrored top-bottom
        return pixels[::-1]
    if orientation == 5:  # transposed (mirror across the main diagonal)
        return pixels.swapaxes(0, 1)
    if orientation == 6:  # shown rotated 90° clockwise
        return np.rot90(pixels, k=-1)
    if orientation == 7:  # transversed (mirror across the anti-diagonal)
        return pixels[::-1, ::-1].swapaxes(0, 1)
    if orientation == 8:  # shown rotated 90° counter-clockwise
        return np.rot90(pixels, k=1)
    return pixels


# --------------------------------------------------------------------------------------- writing


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Float in [0, 1] → uint8, clipping first and rounding to the nearest level."""
    return np.rint(np.clip(np.asarray(x, np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def to_uint16(x: np.ndarray) -> np.ndarray:
    """Float in [0, 1] → uint16, clipping first and rounding to the nearest level."""
    return np.rint(np.clip(np.asarray(x, np.float32), 0.0, 1.0) * 65535.0).astype(np.uint16)


# ---------------------------------------------------------------------------------- numpy images


@dataclass(frozen=True)
class ArrayForm:
    """How an image was given as a numpy array, to give a result back in the same form."""

    shape: tuple[int, ...]
    dtype: np.dtype


def from_array(image: np.ndarray) -> tuple[Image, ArrayForm]:
    """An :class:`Image` (float32 RGB in [0, 1], alpha apart) from a numpy image, and its form.

    Accepted: uint8, uint16 or float (taken as [0, 1]) arrays shaped ``(H, W)`` or ``(H, W, 1)``
    (gray: repeated into three channels), ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA.

    Raises:
        ValueError: another dtype or shape.
    """
    image = np.asarray(image)
    if image.dtype == np.uint8:
        values, depth = image.astype(np.float32) / 255.0, 8
    elif image.dtype == np.uint16:
        values, depth = image.astype(np.float32) / 65535.0, 16
    elif np.issubdtype(image.dtype, np.floating):
        values, depth = image.astype(np.float32), 8
    else:
        raise ValueError(f"unsupported image dtype {image.dtype} (use uint8, uint16 or float)")
    shape = image.shape
    if min(shape[:2], default=0) < 1 or not (
        image.ndim == 2 or (image.ndim == 3 and shape[2] in (1, 3, 4))
    ):
        raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {shape}")
    alpha = None
    if image.ndim == 2 or shape[2] == 1:
        rgb = np.repeat(values.reshape(shape[:2])[:, :, None], 3, axis=2)
    elif shape[2] == 4:
        rgb, alpha = values[:, :, :3], values[:, :, 3]
    else:
        rgb = values
    return Image(rgb=rgb, alpha=alpha, bit_depth=depth), ArrayForm(shape, image.dtype)


def to_array(image: Image, form: ArrayForm) -> np.ndarray:
    """``image`` in the form :func:`from_array` read (gray as the mean of the three channels,
    alpha put back, the same dtype; floats clipped to [0, 1])."""
    rgb = np.clip(image.rgb, 0.0, 1.0)
    if len(form.shape) == 2 or form.shape[2] == 1:
        values = rgb.mean(axis=2).reshape(form.shape)
    elif form.shape[2] == 4:
        values = np.concatenate([rgb, image.alpha[:, :, None]], axis=2)
    else:
        values = rgb
    if form.dtype == np.uint8:
        return to_uint8(values)
    if form.dtype == np.uint16:
        return to_uint16(values)
    return values.astype(form.dtype)


def write_image(
    path: str | os.PathLike,
    rgb: np.ndarray,
    alpha: np.ndarray | None = None,
    bit_depth: int = 8,
    *,
    jpeg_quality: int = 95,
    metadata: Metadata | None = None,
) -> Path:
    """Write float RGB in [0, 1] (and optional alpha) to ``path``, atomically.

    The format follows the extension (one of :data:`IMAGE_EXTENSIONS`, any case). Formats that
    cannot hold them drop the alpha channel (JPEG, BMP) or write 8 bits instead of 16 (JPEG, BMP,
    WebP). Missing parent folders are created.

    Args:
        jpeg_quality: JPEG quality from 1 to 100 (other formats ignore it).
        metadata: written into the file where the format can hold it (see
            :mod:`tfderain.metadata`); :func:`dropped_metadata` names what it cannot.

    Raises:
        ValueError: the extension is not a supported image format, the arrays have the wrong
            shape, or ``jpeg_quality`` is not an integer from 1 to 100.
        ImageError: encoding or writing the file failed (message ``"<path>: <cause>"``).
    """
    path = Path(path)
    data = encode_image(path, rgb, alpha, bit_depth, jpeg_quality=jpeg_quality, metadata=metadata)
    _write_atomically(path, data)
    return path


def encode_image(
    path: str | os.PathLike,
    rgb: np.ndarray,
    alpha: np.ndarray | None = None,
    bit_depth: int = 8,
    *,
    jpeg_quality: int = 95,
    metadata: Metadata | None = None,
) -> bytes:
    """The file bytes :func:`write_image` writes for ``path`` (format from its extension,
    metadata embedded), for writers of other storage; ``path`` is only named, never touched.

    Raises:
        ValueError, ImageError: as :func:`write_image` (encoding only).
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in IMAGE_EXTENSIONS:
        raise ValueError(
            f"{path}: unsupported output extension {path.suffix or '(none)'!r}; "
            f"use one of {', '.join(IMAGE_EXTENSIONS)}"
        )
    if bit_depth not in (8, 16):
        raise ValueError(f"{path}: bit_depth must be 8 or 16, got {bit_depth}")
    if isinstance(jpeg_quality, bool) or jpeg_quality not in range(1, 101):
        raise ValueError(
            f"{path}: jpeg_quality must be an integer from 1 to 100, got {jpeg_quality!r}"
        )
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"{path}: expected an (H, W, 3) RGB array, got shape {rgb.shape}")
    if alpha is not None and np.shape(alpha) != rgb.shape[:2]:
        raise ValueError(f"{path}: alpha shape {np.shape(alpha)} does not match {rgb.shape[:2]}")

    quantize = to_uint16 if bit_depth == 16 and ext in _16BIT_FORMATS else to_uint8
    planes = [rgb[:, :, 2], rgb[:, :, 1], rgb[:, :, 0]]  # OpenCV stores BGR(A)
    if alpha is not None and ext in _ALPHA_FORMATS:
        planes.append(np.asarray(alpha))
    pixels = quantize(np.stack(planes, axis=2))
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if ext in (".jpg", ".jpeg") else []

    with quiet_opencv():
        try:
            ok, encoded = cv2.imencode(ext, pixels, params)
        except cv2.error as exc:
            raise ImageError(path, f"cannot encode as {ext}: {exc}") from None
    if not ok:
        raise ImageError(path, f"cannot encode as {ext}")
    return embed(ext, encoded.tobytes(), metadata, alpha=len(planes) == 4)


def dropped_metadata(path: str | os.PathLike, metadata: Metadata | None) -> list[str]:
    """Kinds of ``metadata`` (``"EXIF"``, ``"ICC profile"``, ``"XMP"``, ``"DPI"``,
    ``"PNG text"``) that :func:`write_image` cannot write into a file like ``path`` (by its
    extension): EXIF in TIFF, DPI in WebP, text outside PNG, everything in BMP, EXIF or XMP
    larger than a JPEG segment (64 KB)."""
    return dropped(Path(path).suffix, metadata) if metadata else []


def error_cause(exc: BaseException, path: str | os.PathLike | None = None) -> str:
    """One line saying why ``path`` failed: an :class:`ImageError` about ``path`` itself gives
    its cause without repeating the path; TensorFlow's errors give their class and message
    (without the traceback of the graph); anything else its text, folded onto one line."""
    if isinstance(exc, ImageError) and path is not None and exc.path == str(path):
        return exc.cause
    message = getattr(exc, "message", None)  # tf.errors.OpError keeps its own text here
    if isinstance(message, str) and message:
        text = f"{type(exc).__name__}: {message}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def new_file_mode() -> int:
    """Permissions of a newly created file under the current umask (``tempfile`` uses 0600)."""
    return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """The one way tfderain writes a file: ``with atomic_file(path) as tmp:`` write ``tmp``.

    ``tmp`` is a new path beside ``path`` that keeps its extension (libraries that pick the
    format by extension, such as Keras, see the right one). When the block ends normally, ``tmp``
    gets the permissions of any new file under the umask and is renamed over ``path``; when it
    raises, ``tmp`` is removed and an existing ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}"
    try:
        yield tmp
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_bytes_atomically(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through :func:`atomic_file` (flushed to disk before the
    rename). Raises ``OSError``."""
    path = Path(path)
    with atomic_file(path) as tmp:
        # O_EXCL: the temporary name is new, never someone else's file.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return path


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """The one way tfderain writes a folder: ``with atomic_directory(path) as tmp:`` fill ``tmp``.

    ``tmp`` is a new empty folder beside ``path``. When the block ends normally it gets the
    permissions of any new folder under the umask and replaces ``path``: an existing ``path`` is
    first moved aside, put back if the rename fails, and removed after it succeeds. When the
    block raises, ``tmp`` is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        _swap_directory(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap_directory(new: Path, target: Path) -> None:
    """Rename ``new`` to ``target``; an existing ``target`` is moved aside first, then removed."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.replace(target, old / target.name)
    try:
        os.replace(new, target)
    except BaseException:
        if old is not None:
            os.replace(old / target.name, target)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _write_atomically(path: Path, data: bytes) -> None:
    """:func:`write_bytes_atomically`, failures as an :class:`ImageError` naming ``path``."""
    try:
        write_bytes_atomically(path, data)
    except OSError as exc:
        raise ImageError(path, f"cannot write: {exc.strerror or exc}") from None


# ---------------------------------------------------------------------------------- finding files


def is_image_path(path: str | os.PathLike) -> bool:
    """Whether the file name ends in one of :data:`IMAGE_EXTENSIONS` (any case)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def find_images(inputs: Sequence[str | os.PathLike]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Expand files, folders and glob patterns into a list of image files.

    * A file is taken as given, whatever its extension (reading it will tell if it is no image).
    * A folder contributes its image files (by extension, not recursive), sorted by name.
    * A glob pattern (``*``, ``?``, ``[``) contributes the image files it matches, sorted.

    Returns:
        ``(paths, problems)``: the files found, in order and without duplicates, and one
        ``(input, cause)`` for every input that is missing or yields no image.
    """
    found: list[Path] = []
    problems: list[tuple[str, str]] = []
    seen: set[Path] = set()

    def add(paths: list[Path]) -> None:
        for p in paths:
            key = p.resolve()
            if key not in seen:
                seen.add(key)
                found.append(p)

    for item in inputs:
        text = os.fspath(item)
        path = Path(text)
        if path.is_dir():
            images = sorted(p for p in path.iterdir() if p.is_file() and is_image_path(p))
            if not images:
                problems.append((text, "folder contains no images"))
            add(images)
        elif path.exists():
            add([path])
        elif any(c in text for c in "*?["):
            matches = sorted(Path(m) for m in glob.glob(text))
            images = [p for p in matches if p.is_file() and is_image_path(p)]
            if not images:
                problems.append((text, "pattern matches no images"))
            add(images)
        else:
            problems.append((text, "no such file or directory"))
    return found, problems


# ------------------------------------------------------------------------------------- internals


@contextlib.contextmanager
def quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own warnings while it decodes/encodes; problems are raised here instead."""
    log = getattr(getattr(cv2, "utils", None), "logging", None)
    if log is None:
        yield
        return
    previous = log.getLogLevel()
    log.setLogLevel(log.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        log.setLogLevel(previous)


__all__ = [
    "IMAGE_EXTENSIONS",
    "Image",
    "ImageError",
    "Metadata",
    "decode_image",
    "dropped_metadata",
    "encode_image",
    "exif_orientation",
    "find_images",
    "is_image_path",
    "read_image",
    "to_uint16",
    "to_uint8",
    "write_image",
]
