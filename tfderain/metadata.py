"""Photo metadata: what an image file holds besides its pixels, read and written back.

Reading (:func:`read_metadata`) opens the file's bytes with Pillow, which parses the headers
without decoding any pixel, and keeps:

* **EXIF** — as TIFF-structured bytes (starting ``II*\\0`` or ``MM\\0*``). When the pixels were
  turned upright on reading, the orientation tag is set to 1 and the link to the thumbnail
  (IFD1, a picture of the rainy original in its stored orientation) is removed; every other tag
  is kept byte for byte.
* the **ICC profile**, **XMP** packet and **DPI** (only where the file states a physical unit),
* PNG **text** chunks (``tEXt``, ``zTXt``, ``iTXt`` placed before the image data).

Pixels stay OpenCV's job. Writing (:func:`embed`) inserts the metadata into the bytes OpenCV
encoded, by each format's own means:

========  =================================================================================
JPEG      APP1 ``Exif``, APP1 XMP, APP2 ``ICC_PROFILE`` (split into chunks), JFIF density (DPI)
PNG       ``eXIf``, ``iCCP``, ``pHYs`` (DPI), ``iTXt XML:com.adobe.xmp``, text chunks; 8 and 16 bit
WebP      extended format: ``VP8X`` with ``ICCP``, ``EXIF`` and ``XMP`` chunks (WebP has no DPI)
TIFF      a new first IFD with ICCProfile, XMP and X/YResolution + ResolutionUnit tags
BMP       nothing
========  =================================================================================

What a format cannot hold — EXIF in TIFF, DPI in WebP, text outside PNG, everything in BMP, and
EXIF or XMP larger than one JPEG segment — is not written; :func:`dropped` names it, so that
callers can say so.
"""

from __future__ import annotations

import io as _bytes_io
import math
import struct
import warnings
import zlib
from dataclasses import dataclass, replace
from fractions import Fraction

from PIL import Image as PILImage

_EXIF_HEADER = b"Exif\x00\x00"
_TIFF_HEADERS = (b"II*\x00", b"MM\x00*")
_ORIENTATION_TAG = 0x0112
_XMP_JPEG_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
_XMP_PNG_KEY = "XML:com.adobe.xmp"
_ICC_JPEG_HEADER = b"ICC_PROFILE\x00"
_JPEG_SEGMENT_MAX = 0xFFFF - 2  # payload bytes of one JPEG marker segment
_ICC_JPEG_CHUNK = _JPEG_SEGMENT_MAX - len(_ICC_JPEG_HEADER) - 2
#: Names of the kinds of metadata, in the order they are reported.
KINDS = ("EXIF", "ICC profile", "XMP", "DPI", "PNG text")


@dataclass(frozen=True)
class Metadata:
    """Metadata of an image file (see the module docstring); all fields optional.

    Attributes:
        exif: TIFF-structured EXIF bytes, without the ``Exif\\0\\0`` prefix.
        icc_profile: the ICC colour profile.
        xmp: the XMP packet (UTF-8 XML).
        dpi: horizontal and vertical resolution in dots per inch.
        text: PNG text chunks as ``(keyword, text)`` pairs.
    """

    exif: bytes | None = None
    icc_profile: bytes | None = None
    xmp: bytes | None = None
    dpi: tuple[float, float] | None = None
    text: tuple[tuple[str, str], ...] = ()

    def kinds(self) -> list[str]:
        """The names (from :data:`KINDS`) of the metadata present."""
        present = (self.exif, self.icc_profile, self.xmp, self.dpi, self.text)
        return [name for name, value in zip(KINDS, present, strict=True) if value]

    def __bool__(self) -> bool:
        return bool(self.kinds())


# --------------------------------------------------------------------------------------- reading


def read_metadata(data: bytes, *, upright: bool = False) -> Metadata:
    """The metadata of an image file's bytes; empty when there is none or it cannot be parsed.

    Args:
        data: the whole file.
        upright: the pixels were turned upright by the EXIF orientation on reading: the EXIF
            copy then says orientation 1 and drops its thumbnail.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with PILImage.open(_bytes_io.BytesIO(data)) as im:
                info = dict(im.info)
                fmt = im.format
                tags = dict(getattr(im, "tag_v2", {}) or {}) if fmt == "TIFF" else {}
    except Exception:  # noqa: BLE001 - metadata never makes a readable image unreadable
        return Metadata()

    exif = _as_bytes(info.get("exif"))
    if exif is not None and exif.startswith(_EXIF_HEADER):
        exif = exif[len(_EXIF_HEADER) :]
    if exif is not None and not exif.startswith(_TIFF_HEADERS):
        exif = None
    if exif is not None and upright:
        exif = upright_exif(exif)

    xmp = _as_bytes(info.get("xmp") or tags.get(700))
    dpi = None
    # Pillow reports a default resolution where a JPEG or TIFF file states none: only a
    # resolution the file gives in a physical unit counts (EXIF's own tags stay in the EXIF).
    if fmt == "TIFF":
        if 282 in tags and 283 in tags and tags.get(296, 2) in (2, 3):
            scale = 2.54 if tags.get(296, 2) == 3 else 1.0
            dpi = (float(tags[282]) * scale, float(tags[283]) * scale)
    elif fmt == "JPEG":
        if info.get("jfif_unit") in (1, 2) and "jfif_density" in info:
            scale = 2.54 if info["jfif_unit"] == 2 else 1.0
            dpi = tuple(float(v) * scale for v in info["jfif_density"])
    elif "dpi" in info:
        dpi = tuple(float(v) for v in info["dpi"])
    if dpi is not None and not all(0 < v < 1e6 and math.isfinite(v) for v in dpi):
        dpi = None
    text = ()
    if fmt == "PNG":
        text = tuple(
            (key, value)
            for key, value in info.items()
            if isinstance(key, str) and isinstance(value, str) and key != _XMP_PNG_KEY
        )
    return Metadata(
        exif=exif or None,
        icc_profile=_as_bytes(info.get("icc_profile")) or None,
        xmp=xmp or None,
        dpi=dpi,
        text=text,
    )


def _as_bytes(value) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, tuple):  # Pillow gives some TIFF BYTE tags as tuples of ints
        return bytes(value)
    return bytes(value)


def upright_exif(tiff: bytes) -> bytes:
    """``tiff`` (TIFF-structured EXIF) with its orientation tag set to 1 and no link to IFD1.

    Everything else keeps its place, so offsets inside the block stay valid. Malformed data
    comes back unchanged.
    """
    if len(tiff) < 8 or tiff[:4] not in _TIFF_HEADERS:
        return tiff
    order = "<" if tiff[:2] == b"II" else ">"
    out = bytearray(tiff)
    (ifd,) = struct.unpack_from(order + "I", out, 4)
    if ifd + 2 > len(out):
        return tiff
    (count,) = struct.unpack_from(order + "H", out, ifd)
    if ifd + 2 + 12 * count + 4 > len(out):
        return tiff
    for k in range(count):
        entry = ifd + 2 + 12 * k
        tag, kind, n = struct.unpack_from(order + "HHI", out, entry)
        if tag == _ORIENTATION_TAG and n == 1 and kind in (3, 4):
            struct.pack_into(order + ("H" if kind == 3 else "I"), out, entry + 8, 1)
    struct.pack_into(order + "I", out, ifd + 2 + 12 * count, 0)  # no IFD1 (the old thumbnail)
    return bytes(out)


# --------------------------------------------------------------------------------------- writing


def kept(ext: str, metadata: Metadata) -> Metadata:
    """The part of ``metadata`` that :func:`embed` writes into a file of extension ``ext``."""
    ext = ext.lower()
    if ext in (".jpg", ".jpeg"):
        exif_fits = metadata.exif and len(_EXIF_HEADER) + len(metadata.exif) <= _JPEG_SEGMENT_MAX
        xmp_fits = metadata.xmp and len(_XMP_JPEG_HEADER) + len(metadata.xmp) <= _JPEG_SEGMENT_MAX
        icc_fits = metadata.icc_profile and len(metadata.icc_profile) <= 255 * _ICC_JPEG_CHUNK
        return replace(
            metadata,
            exif=metadata.exif if exif_fits else None,
            xmp=metadata.xmp if xmp_fits else None,
            icc_profile=metadata.icc_profile if icc_fits else None,
            dpi=metadata.dpi if metadata.dpi and max(metadata.dpi) < 65535.5 else None,
            text=(),
        )
    if ext == ".png":
        return metadata
    if ext == ".webp":
        return replace(metadata, dpi=None, text=())
    if ext in (".tif", ".tiff"):
        return replace(metadata, exif=None, text=())
    return Metadata()


def dropped(ext: str, metadata: Metadata) -> list[str]:
    """Names (from :data:`KINDS`) of the metadata a file of extension ``ext`` cannot keep."""
    keep = set(kept(ext, metadata).kinds())
    return [name for name in metadata.kinds() if name not in keep]


def embed(ext: str, encoded: bytes, metadata: Metadata | None, *, alpha: bool = False) -> bytes:
    """``encoded`` (a file OpenCV wrote in format ``ext``) with :func:`kept` metadata added.

    ``alpha`` says whether the picture has an alpha channel (WebP's extended header records it).
    """
    if not metadata:
        return encoded
    md = kept(ext, metadata)
    if not md:
        return encoded
    ext = ext.lower()
    if ext in (".jpg", ".jpeg"):
        return _embed_jpeg(encoded, md)
    if ext == ".png":
        return _embed_png(encoded, md)
    if ext == ".webp":
        return _embed_webp(encoded, md, alpha)
    if ext in (".tif", ".tiff"):
        return _embed_tiff(encoded, md)
    return encoded


# ------------------------------------------------------------------------------------------ JPEG


def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def _embed_jpeg(data: bytes, md: Metadata) -> bytes:
    head, pos = bytearray(data[:2]), 2  # SOI
    if data[2:4] == b"\xff\xe0" and data[6:11] == b"JFIF\x00":  # keep JFIF APP0 first
        (length,) = struct.unpack_from(">H", data, 4)
        app0 = bytearray(data[2 : 4 + length])
        if md.dpi:
            x, y = (max(1, round(v)) for v in md.dpi)
            app0[11] = 1  # dots per inch
            struct.pack_into(">HH", app0, 12, x, y)
        head += app0
        pos = 4 + length
    elif md.dpi:
        x, y = (max(1, round(v)) for v in md.dpi)
        head += _jpeg_segment(0xE0, b"JFIF\x00\x01\x01\x01" + struct.pack(">HH", x, y) + b"\0\0")
    if md.exif:
        head += _jpeg_segment(0xE1, _EXIF_HEADER + md.exif)
    if md.xmp:
        head += _jpeg_segment(0xE1, _XMP_JPEG_HEADER + md.xmp)
    if md.icc_profile:
        icc = md.icc_profile
        chunks = [icc[i : i + _ICC_JPEG_CHUNK] for i in range(0, len(icc), _ICC_JPEG_CHUNK)]
        for k, chunk in enumerate(chunks, 1):
            head += _jpeg_segment(0xE2, _ICC_JPEG_HEADER + bytes((k, len(chunks))) + chunk)
    return bytes(head) + data[pos:]


# ------------------------------------------------------------------------------------------- PNG


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk: length, type, data and the CRC-32 of type and data."""
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _png_text_chunk(key: str, value: str) -> bytes | None:
    try:
        keyword = key.encode("latin-1")
    except UnicodeEncodeError:
        return None
    if not 1 <= len(keyword) <= 79:
        return None
    try:
        return png_chunk(b"tEXt", keyword + b"\0" + value.encode("latin-1"))
    except UnicodeEncodeError:  # international text
        return png_chunk(b"iTXt", keyword + b"\0\0\0\0\0" + value.encode("utf-8"))


def _embed_png(data: bytes, md: Metadata) -> bytes:
    chunks = []
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        chunks.append((data[pos + 4 : pos + 8], data[pos : pos + 12 + length]))
        pos += 12 + length
    new = []
    if md.icc_profile:
        new.append(png_chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(md.icc_profile)))
    if md.dpi:
        x, y = (max(1, round(v / 0.0254)) for v in md.dpi)  # pixels per metre
        new.append(png_chunk(b"pHYs", struct.pack(">IIB", x, y, 1)))
    if md.exif:
        new.append(png_chunk(b"eXIf", md.exif))
    if md.xmp:
        new.append(png_chunk(b"iTXt", _XMP_PNG_KEY.encode() + b"\0\0\0\0\0" + md.xmp))
    for key, value in md.text:
        chunk = _png_text_chunk(key, value)
        if chunk is not None:
            new.append(chunk)
    # Chunks the new ones replace (sRGB contradicts an ICC profile).
    replaced = {b"iCCP", b"sRGB"} if md.icc_profile else set()
    replaced |= {b"pHYs"} if md.dpi else set()
    replaced |= {b"eXIf"} if md.exif else set()
    out = [data[:8], chunks[0][1], *new]  # IHDR first
    out += [raw for kind, raw in chunks[1:] if kind not in replaced]
    return b"".join(out)


# ------------------------------------------------------------------------------------------ WebP


def _riff_chunk(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) % 2 else b"")


def _embed_webp(data: bytes, md: Metadata, alpha: bool) -> bytes:
    chunks = []
    pos = 12
    while pos + 8 <= len(data):
        kind = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        chunks.append((kind, data[pos + 8 : pos + 8 + size]))
        pos += 8 + size + size % 2
    width = height = None
    flags = 0x10 if alpha else 0
    for kind, payload in chunks:
        if kind == b"VP8X":
            flags |= payload[0] & 0x12  # keep the alpha and animation flags
            width = 1 + int.from_bytes(payload[4:7], "little")
            height = 1 + int.from_bytes(payload[7:10], "little")
        elif kind == b"VP8L" and width is None:
            (bits,) = struct.unpack_from("<I", payload, 1)
            width, height = 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
            flags |= 0x10 if bits >> 28 & 1 else 0
        elif kind == b"VP8 " and width is None:
            width = struct.unpack_from("<H", payload, 6)[0] & 0x3FFF
            height = struct.unpack_from("<H", payload, 8)[0] & 0x3FFF
        elif kind == b"ALPH":
            flags |= 0x10
    if width is None:
        return data
    flags |= (0x20 if md.icc_profile else 0) | (0x08 if md.exif else 0) | (0x04 if md.xmp else 0)
    vp8x = bytes((flags, 0, 0, 0)) + (width - 1).to_bytes(3, "little")
    vp8x += (height - 1).to_bytes(3, "little")
    body = [_riff_chunk(b"VP8X", vp8x)]
    if md.icc_profile:
        body.append(_riff_chunk(b"ICCP", md.icc_profile))
    skip = {b"VP8X", b"ICCP", b"EXIF", b"XMP "}
    body += [_riff_chunk(kind, payload) for kind, payload in chunks if kind not in skip]
    if md.exif:
        body.append(_riff_chunk(b"EXIF", md.exif))
    if md.xmp:
        body.append(_riff_chunk(b"XMP ", md.xmp))
    content = b"WEBP" + b"".join(body)
    return b"RIFF" + struct.pack("<I", len(content)) + content


# ------------------------------------------------------------------------------------------ TIFF

_TIFF_BYTE, _TIFF_SHORT, _TIFF_RATIONAL, _TIFF_UNDEFINED = 1, 3, 5, 7


def _embed_tiff(data: bytes, md: Metadata) -> bytes:
    """Write a new first IFD at the end of the file: the old entries (whose values stay where
    they are) plus the metadata tags; the old IFD is left unreferenced."""
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack_from(order + "I", data, 4)
    (count,) = struct.unpack_from(order + "H", data, ifd)
    entries = {}
    for k in range(count):
        raw = data[ifd + 2 + 12 * k : ifd + 14 + 12 * k]
        entries[struct.unpack_from(order + "H", raw)[0]] = raw
    (next_ifd,) = struct.unpack_from(order + "I", data, ifd + 2 + 12 * count)
    out = bytearray(data)

    def append(blob: bytes) -> int:
        if len(out) % 2:
            out.append(0)
        offset = len(out)
        out.extend(blob)
        return offset

    def add(tag: int, kind: int, n: int, value: bytes) -> None:
        if len(value) <= 4:
            field = value.ljust(4, b"\0")
        else:
            field = struct.pack(order + "I", append(value))
        entries[tag] = struct.pack(order + "HHI", tag, kind, n) + field

    if md.dpi:
        for tag, value in zip((282, 283), md.dpi, strict=True):
            ratio = Fraction(value).limit_denominator(10000)
            add(
                tag,
                _TIFF_RATIONAL,
                1,
                struct.pack(order + "II", ratio.numerator, ratio.denominator),
            )
        add(296, _TIFF_SHORT, 1, struct.pack(order + "H", 2))  # inches
    if md.xmp:
        add(700, _TIFF_BYTE, len(md.xmp), md.xmp)
    if md.icc_profile:
        add(34675, _TIFF_UNDEFINED, len(md.icc_profile), md.icc_profile)
    table = struct.pack(order + "H", len(entries)) + b"".join(entries[t] for t in sorted(entries))
    new_ifd = append(table + struct.pack(order + "I", next_ifd))
    struct.pack_into(order + "I", out, 4, new_ifd)
    return bytes(out)


__all__ = ["KINDS", "Metadata", "dropped", "embed", "kept", "png_chunk", "read_metadata"]
