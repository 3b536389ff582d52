"""Deraining images of any size, and batches of files.

Models take float32 RGB in [0, 1] with a height and width that are multiples of their registry
``multiple``. :func:`derain_array` handles everything else:

* **Padding.** The image is reflect-padded at the bottom and right up to the model's multiple and
  the result is cropped back.
* **Tiling.** Images larger than ``max_pixels`` are cut into overlapping ``tile × tile`` tiles
  (rounded down to the multiple). All tiles have the same size and lie inside the image — the
  last tile of a row or column is placed flush with the image edge, and the tiles in between are
  spread evenly — so a single traced graph serves every tile, image borders see exactly what the
  whole-image run sees, and tile corners sit on the model's multiple grid. Neighbouring tiles
  overlap by at least ``2 × halo`` pixels.
* **Blending.** Each tile's prediction is weighted by a separable window that is zero for the
  ``halo / 2`` pixels next to an inner tile edge (where context is missing), rises as a raised
  cosine over the next ``halo`` pixels and is one elsewhere, including along the image border.
  The weighted predictions are summed into one output array and divided by the summed weights,
  which are at least one inside every overlap, so seams do not show.
* **Bounded memory.** Tiles are cut, run ``batch_size`` at a time and accumulated immediately; at
  no time are more than ``batch_size`` tiles held. Memory is the image, the output accumulator
  and one batch of network activations.

Batches of files (:func:`derain_files`) go through :mod:`tfderain.io`, so every file problem is one
line naming the file, bad files are skipped, and outputs are written atomically with the input's
metadata (EXIF, ICC profile, XMP, DPI, PNG text) where the output format can hold it. Video files
(:data:`tfderain.video.VIDEO_EXTENSIONS`) are derained frame by frame by :mod:`tfderain.video`.
"""

from __future__ import annotations

import os
import sys
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from tfderain import io, models, video
from tfderain._keras import keras, tf
from tfderain.processing import reflect_pad
from tfderain.tiling import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_HALO,
    DEFAULT_MAX_PIXELS,
    DEFAULT_TILE,
    blend_window,
    tile_starts,
)

Predict = Callable[[np.ndarray], Any]


# ------------------------------------------------------------------------------------ one array


def derain_array(
    model: keras.Model,
    rgb: np.ndarray,
    *,
    multiple: int = 1,
    halo: int = DEFAULT_HALO,
    tile: int = DEFAULT_TILE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> np.ndarray:
    """Derain one ``(H, W, 3)`` float RGB image in [0, 1] of any size.

    Args:
        model: maps float32 NHWC RGB to a dict with ``"derained"`` (or directly to the image);
            called with ``training=False``.
        rgb: the rainy image, ``(H, W, 3)``, values in [0, 1].
        multiple: the model's height and width must be multiples of this (registry ``multiple``).
        halo: pixels of context an output pixel needs (registry ``halo``); tiles overlap by
            ``2 × halo``.
        tile: tile side in pixels when tiling; rounded down to ``multiple``.
        max_pixels: images with ``H × W`` up to this run whole, larger ones in tiles.
        batch_size: number of tiles per network call.

    Returns:
        The derained image, ``(H, W, 3)`` float32, clipped to [0, 1].
    """
    rgb = np.asarray(rgb, dtype=np.float32)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {rgb.shape}")
    for name, value, low in (
        ("multiple", multiple, 1),
        ("halo", halo, 0),
        ("tile", tile, 1),
        ("batch_size", batch_size, 1),
    ):
        if int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")

    height, width = rgb.shape[:2]
    predict = _compiled(model)
    padded = reflect_pad(rgb[None], multiple)[0].numpy()
    if height * width <= max_pixels:
        out = predict(padded[None])[0]
    else:
        out = _derain_tiled(predict, padded, multiple, halo, tile, batch_size)
    return np.clip(out[:height, :width], 0.0, 1.0)


def _derain_tiled(
    predict: Predict, image: np.ndarray, multiple: int, halo: int, tile: int, batch_size: int
) -> np.ndarray:
    """Overlapping tiles of ``image`` (already a multiple in size), blended into one output."""
    height, width = image.shape[:2]
    overlap = 2 * halo
    tile = max(multiple, tile // multiple * multiple)
    tile_h, tile_w = min(tile, height), min(tile, width)
    ys = tile_starts(height, tile_h, overlap, multiple)
    xs = tile_starts(width, tile_w, overlap, multiple)
    win_y = {y: blend_window(tile_h, halo, y > 0, y + tile_h < height) for y in ys}
    win_x = {x: blend_window(tile_w, halo, x > 0, x + tile_w < width) for x in xs}

    out = np.zeros((height, width, 3), np.float32)
    positions = [(y, x) for y in ys for x in xs]
    for k in range(0, len(positions), batch_size):
        chunk = positions[k : k + batch_size]
        batch = np.stack([image[y : y + tile_h, x : x + tile_w] for y, x in chunk])
        pred = np.asarray(predict(batch))
        for (y, x), p in zip(chunk, pred, strict=True):
            weight = np.outer(win_y[y], win_x[x])[:, :, None]
            out[y : y + tile_h, x : x + tile_w] += p * weight

    # The tiles form a grid and the windows are separable, so the summed weight is separable too.
    sum_y = np.zeros(height, np.float32)
    sum_x = np.zeros(width, np.float32)
    for y in ys:
        sum_y[y : y + tile_h] += win_y[y]
    for x in xs:
        sum_x[x : x + tile_w] += win_x[x]
    out /= sum_y[:, None, None]
    out /= sum_x[None, :, None]
    return out


_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _compiled(model: keras.Model) -> Predict:
    """A ``tf.function`` running ``model`` on NHWC float32 batches of any size, returning the
    derained image as a numpy array. Traced once per model (dynamic batch, height and width)."""
    fn = _COMPILED.get(model)
    if fn is None:
        ref = weakref.ref(model)  # the cache must not keep the model alive

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
        def fn(batch):
            out = ref()(batch, training=False)
            if isinstance(out, dict):
                if "derained" not in out:
                    raise ValueError(f"model output has no 'derained' entry: {sorted(out)}")
                out = out["derained"]
            return tf.cast(out, tf.float32)

        _COMPILED[model] = fn
    return lambda batch: fn(tf.convert_to_tensor(batch, tf.float32)).numpy()


# -------------------------------------------------------------------------------- model + spec


class Derainer:
    """A model together with what inference needs to know about it.

    Args:
        model: the Keras model.
        spec: its registry entry (:class:`tfderain.models.ModelSpec`), giving ``multiple`` and
            ``halo``. When omitted, the entry of a model built by the registry is looked up;
            other models get ``multiple=1`` and ``halo=32``.
        tile, max_pixels, batch_size: tiling options of :func:`derain_array`.
        multiple, halo: override the spec's values.
        strength: how much rain to remove, from 0 to 1: each result is
            ``strength × derained + (1 − strength) × input``, in float before any 8/16-bit
            conversion (1, the default, is the model's output).
    """

    def __init__(
        self,
        model: keras.Model,
        spec: Any = None,
        *,
        tile: int = DEFAULT_TILE,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        batch_size: int = DEFAULT_BATCH_SIZE,
        multiple: int | None = None,
        halo: int | None = None,
        strength: float = 1.0,
    ):
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be from 0 to 1, got {strength!r}")
        if spec is None:
            spec = models.spec_of(model)
        self.model = model
        self.spec = spec
        self.multiple = int(spec.multiple if multiple is None else multiple)
        self.halo = int(spec.halo if halo is None else halo)
        self.tile = tile
        self.max_pixels = max_pixels
        self.batch_size = batch_size
        self.strength = float(strength)

    def derain_array(self, rgb: np.ndarray) -> np.ndarray:
        """:func:`derain_array` with this model's settings, blended by ``strength``."""
        out = derain_array(
            self.model,
            rgb,
            multiple=self.multiple,
            halo=self.halo,
            tile=self.tile,
            max_pixels=self.max_pixels,
            batch_size=self.batch_size,
        )
        if self.strength == 1.0:
            return out
        return self.strength * out + (1.0 - self.strength) * np.asarray(rgb, np.float32)

    def derain_image(self, image: io.Image) -> io.Image:
        """The derained image, with the same alpha channel, bit depth and metadata."""
        return io.Image(
            rgb=self.derain_array(image.rgb),
            alpha=image.alpha,
            bit_depth=image.bit_depth,
            metadata=image.metadata,
        )

    def derain_numpy(self, image: np.ndarray) -> np.ndarray:
        """Derain an image array of the forms :func:`derain_numpy` accepts."""
        decoded, form = io.from_array(image)
        return io.to_array(self.derain_image(decoded), form)


def derain_numpy(
    model: keras.Model, image: np.ndarray, spec: Any = None, **options: Any
) -> np.ndarray:
    """Derain a numpy image in its own format; the result has the same shape and dtype.

    ``image`` may be uint8, uint16 or float in [0, 1]; grayscale ``(H, W)`` / ``(H, W, 1)``, RGB
    or RGBA (alpha passes through unchanged). Floats come back clipped to [0, 1]. ``options``
    are the keyword arguments of :class:`Derainer`.
    """
    return Derainer(model, spec, **options).derain_numpy(image)


# -------------------------------------------------------------------------------------- files


@dataclass
class BatchReport:
    """Outcome of :func:`derain_files`.

    Attributes:
        written: output files written, in input order.
        failed: ``(input, cause)`` for every input that was skipped; ``cause`` is one line.
        notes: ``(output, note)`` for outputs written without part of their input: metadata
            the format cannot hold, the audio of a video; ``note`` is one line.
        videos: how many of ``written`` are videos.
    """

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    videos: int = 0

    @property
    def ok(self) -> bool:
        """Whether every input was derained and written."""
        return not self.failed


def derain_files(
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    derainer: Derainer,
    *,
    suffix: str = "",
    overwrite: bool = False,
    progress: bool = True,
    jpeg_quality: int = 95,
    video_codec: str | None = None,
) -> BatchReport:
    """Derain image files (files, folders and glob patterns) and videos, and write the results.

    Images keep their metadata where the output format can hold it (``report.notes`` names what
    was dropped); JPEG outputs are written at ``jpeg_quality``. Video files (named one by one:
    folders and patterns expand to images only) are derained frame by frame into a video of the
    same size and frame rate with ``video_codec`` (default: by the output's extension, see
    :mod:`tfderain.video`), without audio.

    Where results go:
        * ``output`` is a folder when it already is one, when it ends with a path separator, or
          when the inputs are not exactly one existing file. It is created when a result is
          written, and each result keeps its input's file name, plus ``suffix`` before the extension
          (``rain.png`` → ``OUT/rain<suffix>.png``).
        * Otherwise (one input file, file-like ``output``) the result is written to exactly
          ``output``, in the format of its extension (a video extension for a video input).

    Safety:
        * An input file is never overwritten (cause ``"would overwrite the input"``), neither are
          other inputs of the same call, nor a result written earlier in the same call.
        * Existing files are replaced only with ``overwrite=True``.
        * Unreadable inputs (missing, empty, truncated, not an image …) are reported and
          skipped; the others are still processed. Each result is written atomically.

    Raises:
        ValueError: ``output`` cannot be used at all (a file where a folder is needed, or an
            unsupported extension for a single output file), ``jpeg_quality`` is not from 1 to
            100 or ``video_codec`` is not a fourcc.
    """
    if isinstance(jpeg_quality, bool) or jpeg_quality not in range(1, 101):
        raise ValueError(f"jpeg_quality must be an integer from 1 to 100, got {jpeg_quality!r}")
    if video_codec is not None:
        video.check_codec(video_codec)
    text = os.fspath(output)
    out = Path(text)
    files, problems = io.find_images(inputs)
    report = BatchReport(failed=list(problems))
    single_file = len(inputs) == 1 and Path(os.fspath(inputs[0])).is_file()
    seps = tuple(s for s in (os.sep, os.altsep) if s)
    to_folder = out.is_dir() or not single_file or text.endswith(seps)
    if to_folder and out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a directory")
    if not to_folder and video.is_video_path(inputs[0]) and not video.is_video_path(out):
        raise ValueError(
            f"{out}: unsupported output extension {out.suffix or '(none)'!r} for a video; "
            f"use one of {', '.join(video.VIDEO_EXTENSIONS)}"
        )
    if not to_folder and not video.is_video_path(inputs[0]) and not io.is_image_path(out):
        raise ValueError(
            f"{out}: unsupported output extension {out.suffix or '(none)'!r}; "
            f"use one of {', '.join(io.IMAGE_EXTENSIONS)}"
        )

    inputs_by_id = {_file_id(p): p for p in files}
    planned: dict[Path, Path] = {}  # resolved destination → input
    bar = tqdm(files, unit="image", disable=not progress or len(files) < 2, file=sys.stderr)
    for src in bar:
        dest = out / f"{src.stem}{suffix}{src.suffix}" if to_folder else out
        cause = _destination_problem(src, dest, inputs_by_id, planned, overwrite)
        if cause is not None:
            report.failed.append((str(src), cause))
            continue
        planned[dest.resolve()] = src
        is_video = video.is_video_path(src)
        try:
            if is_video:
                video.derain_video(
                    src, dest, derainer.derain_array, codec=video_codec, progress=progress
                )
                note = video.AUDIO_NOTE
            else:
                note = _write_derained(derainer, src, dest, jpeg_quality)
        except (ValueError, OSError, tf.errors.OpError) as exc:
            report.failed.append((str(src), io.error_cause(exc, src)))
            continue
        report.written.append(dest)
        report.videos += is_video
        if note:
            report.notes.append((str(dest), note))
    return report


def _write_derained(derainer: Derainer, src: Path, dest: Path, jpeg_quality: int) -> str | None:
    """Derain the image file ``src`` into ``dest``; a note on metadata left out, if any."""
    result = derainer.derain_image(io.read_image(src))
    io.write_image(
        dest,
        result.rgb,
        result.alpha,
        result.bit_depth,
        jpeg_quality=jpeg_quality,
        metadata=result.metadata,
    )
    dropped = io.dropped_metadata(dest, result.metadata)
    if not dropped:
        return None
    return f"{', '.join(dropped)} not kept ({dest.suffix.lower()} cannot hold it)"


def _file_id(path: Path) -> tuple[int, int] | Path:
    """Identity of a file: device and inode where available (hard links, case-insensitive file
    systems), else the resolved path."""
    try:
        st = path.stat()
    except OSError:
        return path.resolve()
    return (st.st_dev, st.st_ino) if st.st_ino else path.resolve()


def _destination_problem(
    src: Path,
    dest: Path,
    inputs_by_id: dict[Any, Path],
    planned: dict[Path, Path],
    overwrite: bool,
) -> str | None:
    """Why ``dest`` must not be written for ``src``, or ``None`` when it may."""
    resolved = dest.resolve()
    if resolved in planned:
        return f"{dest} is also the output of {planned[resolved]}"
    if dest.exists():
        clash = inputs_by_id.get(_file_id(dest))
        if clash is not None and _file_id(clash) == _file_id(src):
            return f"{dest} would overwrite the input"
        if clash is not None:
            return f"{dest} would overwrite the input {clash}"
        if not overwrite:
            return f"{dest} exists (use --overwrite)"
    return None


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_HALO",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_TILE",
    "BatchReport",
    "Derainer",
    "blend_window",
    "derain_array",
    "derain_files",
    "derain_numpy",
    "tile_starts",
]
