"""tfderain.io: decoding, validation, EXIF orientation, atomic writes and input expansion."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from tfderain import io


def _rgb_u8(h: int = 24, w: int = 40, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _encode(ext: str, pixels: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(ext, pixels)
    assert ok
    return buf.tobytes()


def _exif_app1(orientation: int, order: str) -> bytes:
    """An APP1 segment holding a TIFF header and IFD0 with only the orientation tag."""
    tiff = (b"II" if order == "<" else b"MM") + struct.pack(order + "HI", 42, 8)
    tiff += struct.pack(order + "H", 1)  # one IFD entry
    tiff += struct.pack(order + "HHIHH", 0x0112, 3, 1, orientation, 0)  # SHORT, left-justified
    tiff += struct.pack(order + "I", 0)  # no next IFD
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def _assert_one_line_error(exc: pytest.ExceptionInfo, path: Path, cause: str) -> None:
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert cause in message


# ----------------------------------------------------------------------------------------- reading


def test_rgb_png_reads_as_float_rgb_in_file_channel_order(tmp_path):
    bgr = _rgb_u8()
    (tmp_path / "a.png").write_bytes(_encode(".png", bgr))
    image = io.read_image(tmp_path / "a.png")
    assert image.rgb.dtype == np.float32 and image.rgb.shape == (24, 40, 3)
    np.testing.assert_allclose(image.rgb, bgr[:, :, ::-1] / 255.0, atol=1e-7)
    assert image.alpha is None and image.bit_depth == 8
    assert image.path == tmp_path / "a.png"


def test_grayscale_becomes_three_equal_channels(tmp_path):
    gray = _rgb_u8()[:, :, 0]
    (tmp_path / "g.png").write_bytes(_encode(".png", gray))
    image = io.read_image(tmp_path / "g.png")
    assert image.rgb.shape == (24, 40, 3)
    for c in range(3):
        np.testing.assert_allclose(image.rgb[:, :, c], gray / 255.0, atol=1e-7)


def test_rgba_keeps_alpha_separately(tmp_path):
    bgra = np.dstack([_rgb_u8(), np.linspace(0, 255, 40, dtype=np.uint8)[None].repeat(24, 0)])
    (tmp_path / "a.png").write_bytes(_encode(".png", bgra))
    image = io.read_image(tmp_path / "a.png")
    np.testing.assert_allclose(image.rgb, bgra[:, :, 2::-1] / 255.0, atol=1e-7)
    np.testing.assert_allclose(image.alpha, bgra[:, :, 3] / 255.0, atol=1e-7)


def test_16_bit_png_scales_by_65535_and_records_depth(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 65536, (8, 10, 3), dtype=np.uint16)
    (tmp_path / "d.png").write_bytes(_encode(".png", pixels))
    image = io.read_image(tmp_path / "d.png")
    assert image.bit_depth == 16
    np.testing.assert_allclose(image.rgb, pixels[:, :, ::-1] / 65535.0, atol=1e-7)


def test_float_samples_are_rejected(tmp_path):
    path = tmp_path / "f.tif"
    path.write_bytes(_encode(".tif", np.full((4, 4, 3), 0.5, np.float32)))
    with pytest.raises(io.ImageError) as exc:
        io.read_image(path)
    _assert_one_line_error(exc, path, "unsupported sample type")


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize(
    "orientation, expected",
    [
        (1, lambda a: a),
        (2, np.fliplr),
        (3, lambda a: np.rot90(a, 2)),
        (4, np.flipud),
        (5, lambda a: np.transpose(a, (1, 0, 2))),
        (6, lambda a: np.rot90(a, -1)),  # shown rotated 90° clockwise
        (7, lambda a: np.rot90(np.transpose(a, (1, 0, 2)), 2)),
        (8, lambda a: np.rot90(a, 1)),
    ],
)
def test_jpeg_exif_orientation_is_applied(tmp_path, orientation, expected, order):
    plain = _encode(".jpg", _rgb_u8(24, 40))
    (tmp_path / "plain.jpg").write_bytes(plain)
    (tmp_path / "exif.jpg").write_bytes(plain[:2] + _exif_app1(orientation, order) + plain[2:])
    stored = io.read_image(tmp_path / "plain.jpg").rgb
    shown = io.read_image(tmp_path / "exif.jpg").rgb
    np.testing.assert_array_equal(shown, expected(stored))


def test_malformed_exif_is_ignored(tmp_path):
    plain = _encode(".jpg", _rgb_u8())
    bad = _exif_app1(6, "<")[:-10]  # IFD entry cut short
    bad = bad[:2] + struct.pack(">H", len(bad) - 2) + bad[4:]
    (tmp_path / "x.jpg").write_bytes(plain[:2] + bad + plain[2:])
    assert io.read_image(tmp_path / "x.jpg").rgb.shape == (24, 40, 3)


@pytest.mark.parametrize(
    "name, content, cause",
    [
        ("cut.png", lambda: _encode(".png", _rgb_u8())[:-30], "truncated or corrupt image data"),
        ("noend.png", lambda: _encode(".png", _rgb_u8())[:-12], "truncated or corrupt image data"),
        ("cut.jpg", lambda: _encode(".jpg", _rgb_u8())[:400], "truncated or corrupt image data"),
        ("noeoi.jpg", lambda: _encode(".jpg", _rgb_u8())[:-2], "truncated or corrupt image data"),
        ("empty.png", lambda: b"", "empty file"),
        ("notes.png", lambda: b"this is not an image\n", "not an image or unsupported format"),
    ],
)
def test_bad_files_raise_one_line_error_naming_the_file(tmp_path, name, content, cause):
    path = tmp_path / name
    path.write_bytes(content())
    with pytest.raises(io.ImageError) as exc:
        io.read_image(path)
    _assert_one_line_error(exc, path, cause)
    assert isinstance(exc.value, ValueError)


def test_missing_file_and_directory_are_errors(tmp_path):
    with pytest.raises(io.ImageError) as exc:
        io.read_image(tmp_path / "nope.png")
    _assert_one_line_error(exc, tmp_path / "nope.png", "no such file")
    with pytest.raises(io.ImageError) as exc:
        io.read_image(tmp_path)
    _assert_one_line_error(exc, tmp_path, "is a directory")


def test_non_ascii_paths_and_new_folders_work(tmp_path):
    path = tmp_path / "neu" / "Regen-über-Köln 雨.png"
    io.write_image(path, np.full((4, 5, 3), 0.25, np.float32))
    assert io.read_image(path).rgb.shape == (4, 5, 3)


# ----------------------------------------------------------------------------------------- writing


def test_to_uint8_clips_and_rounds():
    x = np.array([-0.5, 0.0, 0.6 / 255, 0.4 / 255, 1.0, 1.5], np.float32)
    np.testing.assert_array_equal(io.to_uint8(x), [0, 0, 1, 0, 255, 255])


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif", ".webp"])
def test_lossless_round_trip(tmp_path, ext):
    rgb = _rgb_u8().astype(np.float32) / 255.0
    path = io.write_image(tmp_path / f"out{ext}", rgb)
    np.testing.assert_allclose(io.read_image(path).rgb, rgb, atol=1e-6)


def test_16_bit_and_alpha_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    rgb = rng.random((6, 7, 3)).astype(np.float32)
    alpha = rng.random((6, 7)).astype(np.float32)
    io.write_image(tmp_path / "o.png", rgb, alpha, bit_depth=16)
    image = io.read_image(tmp_path / "o.png")
    assert image.bit_depth == 16
    np.testing.assert_allclose(image.rgb, rgb, atol=0.6 / 65535)
    np.testing.assert_allclose(image.alpha, alpha, atol=0.6 / 65535)


def test_jpeg_output_drops_alpha_and_writes_8_bits(tmp_path):
    rgb = np.full((8, 8, 3), 0.5, np.float32)
    io.write_image(tmp_path / "o.JPG", rgb, np.ones((8, 8), np.float32), bit_depth=16)
    image = io.read_image(tmp_path / "o.JPG")
    assert image.alpha is None and image.bit_depth == 8


def test_unknown_extension_is_a_value_error_naming_it(tmp_path):
    with pytest.raises(ValueError, match=r"\.gifx"):
        io.write_image(tmp_path / "o.gifx", np.zeros((2, 2, 3), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_failed_encode_leaves_no_file_behind(tmp_path, monkeypatch):
    monkeypatch.setattr(io.cv2, "imencode", lambda *a, **k: (False, None))
    with pytest.raises(io.ImageError) as exc:
        io.write_image(tmp_path / "o.png", np.zeros((2, 2, 3), np.float32))
    _assert_one_line_error(exc, tmp_path / "o.png", "cannot encode")
    assert list(tmp_path.iterdir()) == []


def test_failed_rename_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "o.png"
    io.write_image(target, np.zeros((2, 2, 3), np.float32))
    before = target.read_bytes()

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(io.os, "replace", fail)
    with pytest.raises(io.ImageError) as exc:
        io.write_image(target, np.ones((2, 2, 3), np.float32))
    _assert_one_line_error(exc, target, "No space left on device")
    assert [p.name for p in tmp_path.iterdir()] == ["o.png"]
    assert target.read_bytes() == before


# ------------------------------------------------------------------------------------ find_images


def test_find_images_expands_folders_and_patterns_and_reports_problems(tmp_path):
    for name in ["b.png", "a.JPG", "c.txt"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.png").write_bytes(b"x")
    (tmp_path / "empty").mkdir()

    found, problems = io.find_images(
        [
            str(tmp_path),  # folder: images only, sorted, not recursive
            str(tmp_path / "sub" / "*.png"),  # pattern
            str(tmp_path / "b.png"),  # duplicate: listed once
            str(tmp_path / "missing.png"),
            str(tmp_path / "*.gif"),
            str(tmp_path / "empty"),
        ]
    )
    assert found == [tmp_path / "a.JPG", tmp_path / "b.png", tmp_path / "sub" / "d.png"]
    assert [p for p, _ in problems] == [
        str(tmp_path / "missing.png"),
        str(tmp_path / "*.gif"),
        str(tmp_path / "empty"),
    ]
    assert all(cause and "\n" not in cause for _, cause in problems)


def test_explicit_file_is_kept_whatever_its_extension(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    found, problems = io.find_images([str(tmp_path / "notes.txt")])
    assert found == [tmp_path / "notes.txt"] and problems == []
