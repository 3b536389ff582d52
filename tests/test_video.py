"""tfderain.video: videos derained frame by frame, through derain_files and the command line."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from tfderain import cli, io, models, video
from tfderain.inference import Derainer, derain_files
from tfderain.saving import save_model

FPS = 10.0
SIZE = (32, 24)  # width, height


@pytest.fixture(scope="module")
def model():
    return models.build("prn_r", stages=2, channels=4)


@pytest.fixture(scope="module")
def derainer(model):
    # max_pixels below one frame (768 pixels): every frame is derained in 16-pixel tiles.
    return Derainer(model, halo=4, tile=16, max_pixels=256)


def _make_video(path: Path, frames: int = 5, codec: str = "FFV1") -> list[np.ndarray]:
    """A small video of smooth moving stripes (BGR frames), written losslessly."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), FPS, SIZE)
    assert writer.isOpened()
    ys, xs = np.mgrid[0 : SIZE[1], 0 : SIZE[0]]
    out = []
    for t in range(frames):
        frame = np.stack(
            [(xs * 7 + t * 20) % 256, (ys * 9 + 60) % 256, ((xs + ys) * 5 + t * 30) % 256], axis=2
        ).astype(np.uint8)
        writer.write(frame)
        out.append(frame)
    writer.release()
    return out


def _read_video(path: Path) -> tuple[list[np.ndarray], float]:
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened()
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames, fps


def test_video_keeps_frame_count_size_and_rate_and_matches_the_image_path(tmp_path, derainer):
    _make_video(tmp_path / "clip.avi")
    decoded, _ = _read_video(tmp_path / "clip.avi")
    assert len(decoded) == 5

    report = derain_files(
        [str(tmp_path / "clip.avi")], str(tmp_path / "out.mkv"), derainer, video_codec="FFV1"
    )
    assert report.ok and report.written == [tmp_path / "out.mkv"] and report.videos == 1
    assert report.notes == [(str(tmp_path / "out.mkv"), video.AUDIO_NOTE)]

    frames, fps = _read_video(tmp_path / "out.mkv")
    assert len(frames) == 5
    assert fps == pytest.approx(FPS)
    assert all(f.shape == (SIZE[1], SIZE[0], 3) for f in frames)

    # The same frames as image files through the image path: FFV1 is lossless both ways, so
    # the only allowed difference is one 8-bit level (rounding); 0 is expected.
    stills = tmp_path / "stills"
    stills.mkdir()
    for k, frame in enumerate(decoded):
        cv2.imwrite(str(stills / f"{k}.png"), frame)
    assert derain_files([str(stills)], str(tmp_path / "derained_stills") + "/", derainer).ok
    changed = False
    for k, frame in enumerate(frames):
        still = cv2.imread(str(tmp_path / "derained_stills" / f"{k}.png"))
        assert np.abs(frame.astype(int) - still.astype(int)).max() <= 1
        changed |= bool(np.any(frame != decoded[k]))
    assert changed  # the model really ran on the frames


def test_default_codec_follows_the_extension_and_is_readable(tmp_path, derainer):
    _make_video(tmp_path / "clip.avi", frames=3)
    assert video.default_codec("x.mp4") == "mp4v" and video.default_codec("x.AVI") == "MJPG"
    for name in ("out.mp4", "out.avi"):
        assert derain_files([str(tmp_path / "clip.avi")], str(tmp_path / name), derainer).ok
        frames, fps = _read_video(tmp_path / name)
        assert len(frames) == 3 and fps == pytest.approx(FPS)
        assert frames[0].shape == (SIZE[1], SIZE[0], 3)
    assert not list(tmp_path.glob(".*.tmp*"))  # temporary files renamed away


def test_bad_video_is_one_line_and_the_rest_still_run(tmp_path, derainer):
    (tmp_path / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is no video at all")
    _make_video(tmp_path / "good.avi", frames=2)
    out = tmp_path / "out"
    report = derain_files(
        [str(tmp_path / "bad.mp4"), str(tmp_path / "good.avi")], str(out), derainer
    )
    assert report.written == [out / "good.avi"]
    [(path, cause)] = report.failed
    assert path == str(tmp_path / "bad.mp4")
    assert "\n" not in cause and "video" in cause
    assert not (out / "bad.mp4").exists()


def test_unreadable_video_names_the_file(tmp_path, derainer):
    (tmp_path / "bad.avi").write_bytes(b"RIFF garbage")
    with pytest.raises(io.ImageError) as exc:
        video.derain_video(tmp_path / "bad.avi", tmp_path / "o.avi", derainer.derain_array)
    message = str(exc.value)
    assert message.startswith(f"{tmp_path / 'bad.avi'}: ") and "\n" not in message
    assert not (tmp_path / "o.avi").exists()


def test_a_video_needs_a_video_output_and_a_fourcc(tmp_path, derainer):
    _make_video(tmp_path / "clip.avi", frames=1)
    with pytest.raises(ValueError, match="for a video"):
        derain_files([str(tmp_path / "clip.avi")], str(tmp_path / "out.png"), derainer)
    with pytest.raises(ValueError, match="fourcc"):
        derain_files(
            [str(tmp_path / "clip.avi")], str(tmp_path / "o.mp4"), derainer, video_codec="h264x"
        )


def test_cli_derains_a_video_and_says_audio_is_not_carried(tmp_path, model, capsys):
    weights = save_model(model, tmp_path / "tiny.keras")
    _make_video(tmp_path / "clip.avi", frames=2)
    out = tmp_path / "out.mp4"
    args = ["derain", str(tmp_path / "clip.avi"), "-o", str(out), "-w", str(weights), "-q"]
    assert cli.main([*args, "--video-codec", "mp4v"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"tfderain: note: {out}: audio is not carried (video frames only)",
        "derained 0 image(s), 1 video(s), 0 failed",
    ]
    assert len(_read_video(out)[0]) == 2


def test_cli_rejects_a_bad_codec_when_parsing(capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["derain", "a.mp4", "-o", "b.mp4", "--video-codec", "mp4"])
    assert "--video-codec" in capsys.readouterr().err
