"""Deraining video files frame by frame.

A video is read with ``cv2.VideoCapture`` (any container and codec OpenCV's FFmpeg reads) and
written with ``cv2.VideoWriter`` at the same frame size and frame rate. Each frame goes through
the same function as a still image (for :class:`tfderain.inference.Derainer`, its
``derain_array``: padding, tiling of large frames, strength). Frames are 8-bit.

Only the picture is written: **audio and subtitle tracks are not carried** (OpenCV writes video
streams only); :data:`AUDIO_NOTE` says so in the command's output.

The output is written to a temporary file beside the destination (same extension, so OpenCV
picks the container) and renamed over it only when every frame is written.

Codecs (``fourcc``): the default follows the output extension (:data:`DEFAULT_CODECS`). With
opencv-python-headless the writer offers, among others, ``mp4v`` (MPEG-4 Part 2) in
.mp4/.m4v/.mov/.mkv, ``MJPG`` in .avi/.mkv/.mov, ``VP80``/``VP90`` in .webm and the lossless
``FFV1`` (.avi/.mkv/.mp4), ``HFYU`` (.avi/.mkv) and ``png `` (.avi/.mkv/.mov); H.264 (``avc1``)
is not available there.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from tfderain import io

#: Extensions treated as videos.
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm")
#: Default writer codec (fourcc) per output extension.
DEFAULT_CODECS = {
    ".mp4": "mp4v",
    ".m4v": "mp4v",
    ".mov": "mp4v",
    ".mkv": "mp4v",
    ".avi": "MJPG",
    ".webm": "VP80",
}
#: One line for the output of a command that wrote a video.
AUDIO_NOTE = "audio is not carried (video frames only)"

Derain = Callable[[np.ndarray], np.ndarray]


def is_video_path(path: str | os.PathLike) -> bool:
    """Whether the file name ends in one of :data:`VIDEO_EXTENSIONS` (any case)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def default_codec(path: str | os.PathLike) -> str:
    """The writer codec used for ``path`` when none is given (``mp4v`` for unknown ones)."""
    return DEFAULT_CODECS.get(Path(path).suffix.lower(), "mp4v")


def check_codec(codec: str) -> str:
    """``codec`` if it is a fourcc (four printable ASCII characters), else a ``ValueError``."""
    if len(codec) != 4 or not all(32 <= ord(c) < 127 for c in codec):
        raise ValueError(f"a video codec is four characters (a fourcc such as mp4v), got {codec!r}")
    return codec


def derain_video(
    src: str | os.PathLike,
    dest: str | os.PathLike,
    derain: Derain,
    *,
    codec: str | None = None,
    progress: bool = True,
) -> int:
    """Derain every frame of the video ``src`` into ``dest``.

    Args:
        src: a video file OpenCV can read.
        dest: the output video; the container follows its extension.
        derain: maps one ``(H, W, 3)`` float32 RGB frame in [0, 1] to its derained version.
        codec: writer fourcc; default :func:`default_codec` of ``dest``.
        progress: show a progress bar (frames, rate and ETA) on stderr.

    Returns:
        The number of frames written.

    Raises:
        ImageError: ``src`` is missing or not a readable video (``"<src>: <cause>"``), or the
            writer cannot be opened for ``dest`` with ``codec`` (``"<dest>: <cause>"``).
        ValueError: ``codec`` is not a fourcc.
    """
    src, dest = Path(src), Path(dest)
    codec = check_codec(codec or default_codec(dest))
    if src.is_dir():
        raise io.ImageError(src, "is a directory")
    if not src.is_file():
        raise io.ImageError(src, "no such file")
    with io.quiet_opencv():
        capture = cv2.VideoCapture(str(src))
    try:
        if not capture.isOpened():
            raise io.ImageError(src, "not a video or unreadable (OpenCV cannot open it)")
        ok, frame = capture.read()
        if not ok or frame is None:
            raise io.ImageError(src, "not a video or corrupt (no frame could be decoded)")
        fps = capture.get(cv2.CAP_PROP_FPS)
        if not (math.isfinite(fps) and fps > 0):
            raise io.ImageError(src, f"the video states no usable frame rate ({fps})")
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        height, width = frame.shape[:2]
        with io.atomic_file(dest) as tmp:
            with io.quiet_opencv():
                writer = cv2.VideoWriter(
                    str(tmp), cv2.VideoWriter_fourcc(*codec), fps, (width, height)
                )
            if not writer.isOpened():
                raise io.ImageError(dest, f"cannot write {dest.suffix} video with codec {codec!r}")
            count = 0
            try:
                bar = tqdm(
                    total=total,
                    unit="frame",
                    desc=src.name,
                    disable=not progress,
                    file=sys.stderr,
                    leave=False,
                )
                with bar:
                    while ok:
                        writer.write(_derain_frame(derain, frame))
                        count += 1
                        bar.update()
                        ok, frame = capture.read()
            finally:
                writer.release()
            if not tmp.is_file() or tmp.stat().st_size == 0:
                raise io.ImageError(dest, f"the {codec!r} writer produced no file")
    finally:
        capture.release()
    return count


def _derain_frame(derain: Derain, frame: np.ndarray) -> np.ndarray:
    """One BGR uint8 frame (OpenCV's layout, also gray or BGRA) → derained BGR uint8."""
    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    rgb = frame[:, :, 2::-1].astype(np.float32)
    rgb /= 255.0
    out = io.to_uint8(derain(rgb))
    return np.ascontiguousarray(out[:, :, ::-1])


__all__ = [
    "AUDIO_NOTE",
    "DEFAULT_CODECS",
    "VIDEO_EXTENSIONS",
    "check_codec",
    "default_codec",
    "derain_video",
    "is_video_path",
]
