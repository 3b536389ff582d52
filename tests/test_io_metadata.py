"""Photo metadata through deraining (tfderain.metadata via io and derain_files), JPEG quality."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageCms, ImageOps, PngImagePlugin

from tfderain import cli, io, models
from tfderain.inference import Derainer, derain_files

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'


@pytest.fixture(scope="module")
def model():
    return models.build("prn_r", stages=2, channels=4)


@pytest.fixture(scope="module")
def derainer(model):
    return Derainer(model)


@pytest.fixture(scope="module")
def identity(model):
    """strength 0: the output is the input, so pixel checks need no knowledge of the model."""
    return Derainer(model, strength=0.0)


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _exif(orientation: int) -> bytes:
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "RainCam"  # Make
    exif[0x0110] = "Model 7"  # Model
    return exif.tobytes()


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, data) of every chunk, checking each CRC independently."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack_from(">I", data, pos + 8 + length)
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        chunks.append((kind, body))
        pos += 12 + length
    return chunks


def _png16_with_icc(path: Path, profile: bytes) -> None:
    """A 16-bit RGB PNG by OpenCV with an iCCP chunk spliced in after IHDR (built here)."""
    pixels = (np.random.default_rng(3).integers(0, 65536, (12, 16, 3))).astype(np.uint16)
    ok, buf = cv2.imencode(".png", pixels)
    assert ok
    data = buf.tobytes()
    body = b"sRGB\0\0" + zlib.compress(profile)
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body
    chunk += struct.pack(">I", zlib.crc32(b"iCCP" + body) & 0xFFFFFFFF)
    path.write_bytes(data[:33] + chunk + data[33:])  # signature (8) + IHDR (25)


# ------------------------------------------------------------------------------------------ EXIF


def test_exif_survives_a_jpeg_derain_with_orientation_1_and_upright_pixels(tmp_path, identity):
    # Stored 32 wide x 24 high, top half bright; orientation 6 shows it turned 90° clockwise,
    # so the displayed picture is 24 wide x 32 high with the bright half on the right.
    stored = np.full((24, 32, 3), 30, np.uint8)
    stored[:12] = 220
    src = tmp_path / "rain.jpg"
    PILImage.fromarray(stored).save(src, quality=95, exif=_exif(6))

    report = derain_files([str(src)], str(tmp_path / "out.jpg"), identity)
    assert report.ok and report.notes == []

    with PILImage.open(tmp_path / "out.jpg") as out:
        exif = out.getexif()
        assert exif[0x0112] == 1
        assert exif[0x010F] == "RainCam" and exif[0x0110] == "Model 7"
        assert out.size == (24, 32)  # (width, height): the pixels themselves are upright
        pixels = np.asarray(out.convert("RGB"), np.float32)
    assert pixels[:, :10].mean() < 60 and pixels[:, 14:].mean() > 190
    with PILImage.open(src) as original:
        shown = np.asarray(ImageOps.exif_transpose(original).convert("RGB"), np.float32)
    assert np.abs(pixels - shown).mean() < 3  # what a viewer showed before, after a re-encode


def test_derained_pixels_keep_the_exif_of_their_file(tmp_path, derainer):
    src = tmp_path / "rain.jpg"
    PILImage.fromarray(_noise(16, 24)).save(src, exif=_exif(1))
    report = derain_files([str(src)], str(tmp_path / "out.png"), derainer)
    assert report.ok
    with PILImage.open(tmp_path / "out.png") as out:
        assert out.getexif()[0x010F] == "RainCam"
    kinds = [kind for kind, _ in _png_chunks((tmp_path / "out.png").read_bytes())]
    assert kinds[0] == b"IHDR" and kinds.count(b"eXIf") == 1
    assert kinds.index(b"eXIf") < kinds.index(b"IDAT")


# ------------------------------------------------------------------------------------------- ICC


@pytest.mark.parametrize(
    ("ext", "bit_depth"),
    [(".jpg", 8), (".png", 8), (".png", 16), (".webp", 8), (".tif", 8), (".tif", 16)],
)
def test_icc_profile_survives_in_every_format_that_holds_one(tmp_path, derainer, ext, bit_depth):
    src = tmp_path / "rain.png"
    if bit_depth == 16:
        _png16_with_icc(src, SRGB)
    else:
        PILImage.fromarray(_noise(12, 16)).save(src, icc_profile=SRGB)

    out = tmp_path / f"out{ext}"
    report = derain_files([str(src)], str(out), derainer)
    assert report.ok and report.notes == [], report

    with PILImage.open(out) as written:
        assert written.info.get("icc_profile") == SRGB
        assert written.size == (16, 12)
    decoded = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert decoded.shape[:2] == (12, 16)
    assert decoded.dtype == (np.uint16 if bit_depth == 16 and ext != ".jpg" else np.uint8)
    if ext == ".png":
        _png_chunks(out.read_bytes())  # every CRC right


def test_webp_with_alpha_keeps_alpha_and_profile(tmp_path):
    rgb = _noise(10, 14) / 255.0
    alpha = np.linspace(0, 1, 140, dtype=np.float32).reshape(10, 14)
    meta = io.Metadata(icc_profile=SRGB, exif=_exif(1)[6:])  # without "Exif\0\0"
    io.write_image(tmp_path / "a.webp", rgb, alpha, metadata=meta)
    back = io.read_image(tmp_path / "a.webp")
    np.testing.assert_allclose(back.alpha, alpha, atol=0.5 / 255 + 1e-6)  # WebP here: lossless
    with PILImage.open(tmp_path / "a.webp") as written:
        assert written.mode == "RGBA"
        assert written.info["icc_profile"] == SRGB
        assert written.getexif()[0x010F] == "RainCam"


def test_formats_that_cannot_hold_metadata_are_reported_per_file(tmp_path, derainer):
    src = tmp_path / "rain.jpg"
    PILImage.fromarray(_noise(12, 16)).save(src, exif=_exif(1), icc_profile=SRGB)
    report = derain_files([str(src)], str(tmp_path / "out.bmp"), derainer)
    assert report.written == [tmp_path / "out.bmp"]
    assert report.notes == [
        (str(tmp_path / "out.bmp"), "EXIF, ICC profile not kept (.bmp cannot hold it)")
    ]
    report = derain_files([str(src)], str(tmp_path / "out.tif"), derainer)
    assert report.notes == [(str(tmp_path / "out.tif"), "EXIF not kept (.tif cannot hold it)")]


# ---------------------------------------------------------------------------- XMP, DPI, PNG text


def test_xmp_dpi_and_png_text_survive_png_to_png(tmp_path, derainer):
    info = PngImagePlugin.PngInfo()
    info.add_text("Title", "Rain on the bridge")
    info.add_itxt("Description", "Regen über der Brücke")  # not Latin-1 → iTXt
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    src = tmp_path / "rain.png"
    PILImage.fromarray(_noise(12, 16)).save(src, pnginfo=info, dpi=(300, 300))

    report = derain_files([str(src)], str(tmp_path / "out.png"), derainer)
    assert report.ok and report.notes == []
    with PILImage.open(tmp_path / "out.png") as out:
        assert out.info["Title"] == "Rain on the bridge"
        assert out.info["Description"] == "Regen über der Brücke"
        assert out.info["xmp"] == XMP
        assert out.info["dpi"] == pytest.approx((300, 300), abs=0.01)


def test_dpi_and_xmp_reach_jpeg_and_tiff(tmp_path, derainer):
    src = tmp_path / "rain.jpg"
    PILImage.fromarray(_noise(12, 16)).save(src, dpi=(240, 180), xmp=XMP)
    for ext in (".jpg", ".tif"):
        assert derain_files([str(src)], str(tmp_path / f"out{ext}"), derainer).ok
    with PILImage.open(tmp_path / "out.jpg") as out:
        assert out.info["dpi"] == (240, 180)
        assert out.info["xmp"] == XMP
    with PILImage.open(tmp_path / "out.tif") as out:
        assert out.info["dpi"] == pytest.approx((240, 180))
        assert bytes(out.tag_v2[700]) == XMP


def test_files_without_metadata_get_none(tmp_path):
    ok, buf = cv2.imencode(".png", _noise(6, 8))
    (tmp_path / "plain.png").write_bytes(buf.tobytes())
    image = io.read_image(tmp_path / "plain.png")
    assert not image.metadata and image.metadata.kinds() == []
    io.write_image(tmp_path / "out.png", image.rgb, metadata=image.metadata)
    kinds = [kind for kind, _ in _png_chunks((tmp_path / "out.png").read_bytes())]
    assert set(kinds) == {b"IHDR", b"IDAT", b"IEND"}


# ------------------------------------------------------------------------------------ JPEG quality


def test_jpeg_quality_is_opencvs_quality_and_changes_the_size(tmp_path):
    pixels = _noise(32, 48)
    sizes = {}
    for quality in (30, 95):
        path = io.write_image(tmp_path / f"q{quality}.jpg", pixels / 255.0, jpeg_quality=quality)
        ok, expected = cv2.imencode(".jpg", pixels[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert ok and path.read_bytes() == expected.tobytes()
        sizes[quality] = path.stat().st_size
    assert sizes[30] < 0.7 * sizes[95]  # noise: quality decides how much of it is kept


def test_derain_files_passes_the_jpeg_quality(tmp_path, derainer):
    src = tmp_path / "rain.png"
    cv2.imwrite(str(src), _noise(32, 48))
    for quality in (20, 95):
        assert derain_files(
            [str(src)], str(tmp_path / f"q{quality}.jpg"), derainer, jpeg_quality=quality
        ).ok
    assert (tmp_path / "q20.jpg").stat().st_size < (tmp_path / "q95.jpg").stat().st_size
    with pytest.raises(ValueError, match="jpeg_quality"):
        derain_files([str(src)], str(tmp_path / "x.jpg"), derainer, jpeg_quality=0)


@pytest.mark.parametrize("value", ["0", "101", "-5", "9.5", "high"])
def test_cli_rejects_a_bad_jpeg_quality_when_parsing(value, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args(["derain", "a.jpg", "-o", "b.jpg", "--jpeg-quality", value])
    assert exc.value.code == 2
    assert "--jpeg-quality" in capsys.readouterr().err


def test_cli_jpeg_quality_default_and_value():
    parse = cli.build_parser().parse_args
    assert parse(["derain", "a.jpg", "-o", "b.jpg"]).jpeg_quality == 95
    assert parse(["derain", "a.jpg", "-o", "b.jpg", "--jpeg-quality", "1"]).jpeg_quality == 1
    assert parse(["derain", "a.jpg", "-o", "b.jpg", "--jpeg-quality", "100"]).jpeg_quality == 100
