"""tf.data pipelines for training: paired patches from disk, and an endless synthetic-rain stream.

Both pipelines yield batches of the same dict::

    {"rainy": float32 [B, P, P, 3], "clean": float32 [B, P, P, 3], "density": float32 [B]}

with images in [0, 1]. ``density`` is a rain density in [0, 1]: the one :func:`add_rain` used
for synthetic rain, the centre of the class range (1/6, 1/2, 5/6) for datasets labelled light /
medium / heavy (so :func:`~tfderain.data.synthetic.density_level` recovers the class), and
``-1`` when unknown. :func:`as_training_pairs` turns the dict into ``(inputs, targets)`` for
``model.fit``.

Randomness is reproducible: every random choice for element ``i`` of the stream is drawn from a
seed derived from ``(seed, i)`` (stateless TF ops on disk data, a ``numpy`` Generator for
synthetic rain), shuffling uses ``seed``, and parallel maps keep their order
(``options.deterministic = True``). Two pipelines built with the same arguments yield the same
batches.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from tfderain._keras import tf
from tfderain.data.layouts import LayoutError, Pair, find_pairs
from tfderain.data.synthetic import REFERENCE_SIZE, add_rain
from tfderain.io import ImageError, is_image_path, read_image

__all__ = [
    "LEVEL_DENSITY",
    "TARGETS",
    "UNKNOWN_DENSITY",
    "as_training_pairs",
    "paired_dataset",
    "synthetic_dataset",
]

log = logging.getLogger(__name__)

#: ``density`` of an element whose rain density is not known.
UNKNOWN_DENSITY = -1.0
#: ``density`` of pairs labelled light, medium, heavy: the centres of the ranges of each level.
LEVEL_DENSITY = (1 / 6, 1 / 2, 5 / 6)
#: Target names :func:`as_training_pairs` knows, the model output names of the same meaning.
TARGETS = ("derained", "stages", "density", "rain")

# First bytes of the formats tf.io.decode_image reads (GIF is not an image suffix we list).
_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM")


def _options() -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = True
    return options


def _check_seed(seed: int) -> int:
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _check_sizes(patch_size: int, batch_size: int) -> None:
    if patch_size < 1 or batch_size < 1:
        raise ValueError(
            f"patch_size and batch_size must be positive, got {patch_size}, {batch_size}"
        )


# --------------------------------------------------------------------------- paired data on disk


def _is_image_file(path: Path) -> str | None:
    """None if ``path`` starts like a PNG, JPEG or BMP file, else the reason it does not."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        return f"cannot read: {e.strerror or e}"
    if not head:
        return "empty file"
    if not head.startswith(_SIGNATURES):
        return "not a PNG, JPEG or BMP file"
    return None


def _readable_pairs(source: str | os.PathLike) -> list[Pair]:
    """The pairs of ``source`` whose two files look like images; the others are logged, skipped."""
    pairs = []
    for pair in find_pairs(source):
        problems = {p: why for p in (pair.rainy, pair.clean) if (why := _is_image_file(p))}
        for path, why in problems.items():
            log.warning("skipping pair %s: %s: %s", pair.name, path, why)
        if not problems:
            pairs.append(pair)
    if not pairs:
        raise LayoutError(f"{source}: no readable rainy/clean pairs")
    return pairs


def _decode(path: tf.Tensor) -> tf.Tensor:
    data = tf.io.read_file(path)
    return tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)


def _load_pair(element: dict) -> dict:
    """Decode both images of a pair into one uint8 ``[H, W, 6]`` tensor (rainy, then clean)."""
    rainy, clean = _decode(element["rainy"]), _decode(element["clean"])
    same = tf.debugging.Assert(
        tf.reduce_all(tf.shape(rainy) == tf.shape(clean)),
        ["rainy and clean images differ in size:", element["rainy"], tf.shape(rainy)]
        + [element["clean"], tf.shape(clean)],
    )
    with tf.control_dependencies([same]):
        both = tf.concat([rainy, clean], axis=-1)
    return {"images": both, "density": element["density"]}


def _pad_to(images: tf.Tensor, size: int) -> tf.Tensor:
    """Mirror-pad (symmetric, repeated as needed) until height and width are at least ``size``."""

    def too_small(x):
        shape = tf.shape(x)
        return tf.logical_or(shape[0] < size, shape[1] < size)

    def pad(x):
        shape = tf.shape(x)
        ph = tf.clip_by_value(size - shape[0], 0, shape[0])
        pw = tf.clip_by_value(size - shape[1], 0, shape[1])
        return tf.pad(x, [[ph // 2, ph - ph // 2], [pw // 2, pw - pw // 2], [0, 0]], "SYMMETRIC")

    (images,) = tf.while_loop(
        too_small, pad, [images], shape_invariants=[tf.TensorShape([None, None, images.shape[-1]])]
    )
    return images


def _crop_and_augment(index: tf.Tensor, element: dict, patch: int, seed: int, augment: bool):
    """One aligned random patch of a decoded pair, flipped and rotated with the same choices."""
    seeds = tf.random.split(tf.stack([tf.constant(seed, tf.int64), index]), 4)
    images = _pad_to(element["images"], patch)
    images = tf.image.stateless_random_crop(images, [patch, patch, 6], seed=seeds[0])
    if augment:
        images = tf.image.stateless_random_flip_left_right(images, seed=seeds[1])
        images = tf.image.stateless_random_flip_up_down(images, seed=seeds[2])
        k = tf.random.stateless_uniform([], seed=seeds[3], minval=0, maxval=4, dtype=tf.int32)
        images = tf.image.rot90(images, k)
        images.set_shape([patch, patch, 6])
    images = tf.image.convert_image_dtype(images, tf.float32)
    return {"rainy": images[..., :3], "clean": images[..., 3:], "density": element["density"]}


def paired_dataset(
    source: str | os.PathLike,
    *,
    patch_size: int = 100,
    batch_size: int = 18,
    seed: int = 0,
    augment: bool = True,
    repeat: bool = True,
    shuffle: bool = True,
    cache: bool = False,
    num_parallel_calls: int = tf.data.AUTOTUNE,
) -> tf.data.Dataset:
    """Random aligned patches of the rainy/clean pairs in a dataset folder.

    Each element is a ``patch_size`` square cut from the same window of both images, then (with
    ``augment``) flipped left-right and up-down and rotated by ``k * 90`` degrees, ``k`` in 0..3,
    identically for both. Images smaller than the patch are mirror-padded (symmetric) rather than
    upscaled, so the rain streaks keep their size and sharpness.

    Bad files do not stop an epoch: a pair whose file is empty or does not start like a PNG,
    JPEG or BMP image is skipped with a warning before the pipeline starts, and a pair that fails
    to decode (e.g. a truncated file) or whose two images differ in size is dropped by
    ``ignore_errors`` with a logged warning.

    Args:
        source: a folder in one of the layouts of :mod:`tfderain.data.layouts`.
        patch_size: side of the square patches.
        batch_size: patches per batch; with ``repeat`` every batch is full, otherwise the last
            one may be smaller.
        seed: the stream (shuffle order, crops, flips) is a function of ``seed``.
        augment: random flips and 90-degree rotations.
        repeat: loop over the pairs forever (reshuffled each pass).
        shuffle: shuffle the pairs.
        cache: keep the decoded images in memory after the first pass (about ``6 H W`` bytes
            per pair), instead of reading and decoding each file every time.
        num_parallel_calls: parallelism of the decoding and cropping maps.

    Returns:
        a dataset of ``{"rainy", "clean", "density"}`` batches (see the module docstring).
    """
    _check_sizes(patch_size, batch_size)
    seed = _check_seed(seed)
    pairs = _readable_pairs(source)
    density = [UNKNOWN_DENSITY if p.density is None else LEVEL_DENSITY[p.density] for p in pairs]
    ds = tf.data.Dataset.from_tensor_slices(
        {
            "rainy": [str(p.rainy) for p in pairs],
            "clean": [str(p.clean) for p in pairs],
            "density": tf.constant(density, tf.float32),
        }
    )

    def decode(ds: tf.data.Dataset) -> tf.data.Dataset:
        ds = ds.map(_load_pair, num_parallel_calls=num_parallel_calls, deterministic=True)
        return ds.ignore_errors(log_warning=True)

    if cache:
        ds = decode(ds).cache()
    if shuffle:
        ds = ds.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    if not cache:
        ds = decode(ds)
    ds = ds.enumerate().map(
        lambda i, element: _crop_and_augment(i, element, patch_size, seed, augment),
        num_parallel_calls=num_parallel_calls,
        deterministic=True,
    )
    ds = ds.batch(batch_size, drop_remainder=repeat)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(_options())


# ------------------------------------------------------------------------------ synthetic rain


class _ShutdownGuard:
    """Lets the synthetic pipeline go idle before the interpreter shuts down.

    tf.data calls the synthesis from its own threads and keeps prefetching until the iterator is
    destroyed, which may only happen during interpreter shutdown. A call still running or
    starting then can never take the GIL back: an OpenCV call aborts the process ("terminate
    called without an active exception"), and the iterator's destructor waits forever for the
    lost call. So at exit this guard turns further calls into no-ops (the buffers fill at once)
    and waits until no call has run for a moment.
    """

    def __init__(self, quiet: float = 0.2, timeout: float = 10.0) -> None:
        self._cond = threading.Condition()
        self._running = 0
        self._last_call = -math.inf
        self._closed = False
        self._quiet = quiet
        self._timeout = timeout
        atexit.register(self.close)

    def enter(self) -> bool:
        """Start a call; False when the interpreter is exiting and the call should do nothing."""
        with self._cond:
            self._last_call = time.monotonic()
            if self._closed:
                return False
            self._running += 1
            return True

    def leave(self) -> None:
        with self._cond:
            self._running -= 1
            self._last_call = time.monotonic()
            self._cond.notify_all()

    def close(self) -> None:
        deadline = time.monotonic() + self._timeout
        with self._cond:
            self._closed = True
            while time.monotonic() < deadline:
                if self._running == 0 and time.monotonic() - self._last_call >= self._quiet:
                    return
                self._cond.wait(timeout=self._quiet)


_GUARD = _ShutdownGuard()


def _clean_images(source: Sequence[np.ndarray] | str | os.PathLike) -> list[np.ndarray]:
    """Clean images as ``(H, W, 3)`` uint8 or float [0, 1] arrays."""
    if isinstance(source, (str, os.PathLike)):
        folder = Path(source)
        try:
            paths = list(dict.fromkeys(p.clean for p in find_pairs(folder)))
        except LayoutError:
            if not folder.is_dir():
                raise
            paths = sorted(p for p in folder.iterdir() if p.is_file() and is_image_path(p))
        images = []
        for path in paths:
            try:
                images.append(read_image(path).rgb)
            except ImageError as e:
                log.warning("skipping %s", e)
        if not images:
            raise ValueError(f"{folder}: no readable clean images")
        return images
    images = [np.asarray(image) for image in source]
    if not images:
        raise ValueError("clean_images is empty")
    for i, image in enumerate(images):
        if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
            raise ValueError(f"clean_images[{i}]: expected an (H, W, 3) image, got {image.shape}")
        if image.dtype != np.uint8 and not np.issubdtype(image.dtype, np.floating):
            raise ValueError(f"clean_images[{i}]: expected uint8 or float, got {image.dtype}")
    return images


def _synthetic_example(
    images: list[np.ndarray],
    seed: int,
    index: int,
    patch: int,
    density_range: tuple[float, float],
    scale_range: tuple[float, float],
    augment: bool,
) -> tuple[np.ndarray, np.ndarray, np.float32]:
    """Element ``index`` of the synthetic stream, from a Generator seeded with (seed, index)."""
    rng = np.random.default_rng([seed, int(index)])
    image = images[rng.integers(len(images))]
    height, width = image.shape[:2]
    if height < patch or width < patch:
        ph, pw = max(0, patch - height), max(0, patch - width)
        pads = ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0))
        image = np.pad(image, pads, mode="symmetric")
    # A window of patch/scale pixels, shrunk to the patch: a crop of the image downsampled by scale.
    window = min(math.ceil(patch / rng.uniform(*scale_range)), *image.shape[:2])
    y = rng.integers(image.shape[0] - window + 1)
    x = rng.integers(image.shape[1] - window + 1)
    crop = image[y : y + window, x : x + window]
    if window != patch:
        crop = cv2.resize(crop, (patch, patch), interpolation=cv2.INTER_AREA)
    if augment:
        crop = np.rot90(crop, rng.integers(4))
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        if rng.random() < 0.5:
            crop = crop[::-1]
    crop = np.ascontiguousarray(crop, dtype=np.float32)
    if image.dtype == np.uint8:
        crop /= 255.0
    # Streaks are sized for the whole (downsampled) image, as if it had been rained on entirely.
    streak_scale = max(height, width) * patch / window / REFERENCE_SIZE
    density = rng.uniform(*density_range)
    rainy, clean, density = add_rain(crop, rng, density=density, streak_scale=streak_scale)
    return rainy, clean, np.float32(density)


def synthetic_dataset(
    clean_images: Sequence[np.ndarray] | str | os.PathLike,
    *,
    patch_size: int = 100,
    batch_size: int = 18,
    seed: int = 0,
    density_range: tuple[float, float] = (0.0, 1.0),
    scale_range: tuple[float, float] = (0.5, 1.0),
    augment: bool = True,
    num_parallel_calls: int = tf.data.AUTOTUNE,
) -> tf.data.Dataset:
    """An endless stream of patches with synthetic rain (:func:`~.synthetic.add_rain`).

    Element ``i`` draws everything from ``np.random.default_rng([seed, i])``: a clean image, a
    scale in ``scale_range`` (the image is downsampled by it before the crop), a random
    ``patch_size`` crop, a rotation by ``k * 90`` degrees and flips (with ``augment``), and rain of
    a density uniform in ``density_range``. Rain is added after the rotation, so streaks stay near
    vertical; their size follows the downsampled image, not the patch.

    Args:
        clean_images: ``(H, W, 3)`` arrays (uint8, or float in [0, 1]), or a folder: a paired
            dataset (its clean images are used) or a plain folder of images, read with
            :func:`tfderain.io.read_image` (unreadable files are skipped with a warning).
        patch_size: side of the square patches; smaller images are mirror-padded.
        batch_size: patches per batch.
        seed: the stream is a function of ``seed``.
        density_range: rain density range, within [0, 1].
        scale_range: downsampling factor range, within (0, 1].
        augment: random 90-degree rotations and flips.
        num_parallel_calls: parallelism of the map producing examples.

    Returns:
        an infinite dataset of ``{"rainy", "clean", "density"}`` batches.
    """
    _check_sizes(patch_size, batch_size)
    seed = _check_seed(seed)
    lo, hi = density_range
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"density_range must lie within [0, 1], got {density_range}")
    lo, hi = scale_range
    if not 0.0 < lo <= hi <= 1.0:
        raise ValueError(f"scale_range must lie within (0, 1], got {scale_range}")
    images = _clean_images(clean_images)

    def example(index):
        if not _GUARD.enter():  # the interpreter is exiting: nobody will read this element
            blank = np.zeros((patch_size, patch_size, 3), np.float32)
            return blank, blank, np.float32(UNKNOWN_DENSITY)
        try:
            return _synthetic_example(
                images, seed, index, patch_size, density_range, scale_range, augment
            )
        finally:
            _GUARD.leave()

    def element(index: tf.Tensor) -> dict:
        rainy, clean, density = tf.numpy_function(
            example, [index], (tf.float32, tf.float32, tf.float32), stateful=False
        )
        rainy.set_shape([patch_size, patch_size, 3])
        clean.set_shape([patch_size, patch_size, 3])
        density.set_shape([])
        return {"rainy": rainy, "clean": clean, "density": density}

    ds = tf.data.Dataset.counter()
    ds = ds.map(element, num_parallel_calls=num_parallel_calls, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=True)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(_options())


# -------------------------------------------------------------------------------- model.fit


def as_training_pairs(
    ds: tf.data.Dataset, outputs: Sequence[str] = ("derained",), stages: int | None = None
) -> tf.data.Dataset:
    """Map ``{"rainy", "clean", "density"}`` batches to ``(rainy, targets)`` for ``model.fit``.

    ``targets`` is a dict keyed like the model's outputs:

    * ``"derained"``: the clean batch ``[B, P, P, 3]``;
    * ``"stages"``: the clean batch repeated ``stages`` times along a new axis 1,
      ``[B, stages, P, P, 3]``, for models that return every stage's restoration;
    * ``"density"``: the density batch ``[B]`` (``-1`` where unknown);
    * ``"rain"``: the rainy and the clean batch concatenated on the channel axis,
      ``[B, P, P, 6]``. What a ``"rain"`` output means differs between models (a reconstructed
      rainy image, a rain layer, a rain mask), so its loss derives its target from both images
      (:func:`tfderain.losses.rainy_image`, :func:`~tfderain.losses.rain_layer`,
      :func:`~tfderain.losses.rain_mask`).

    Raises:
        ValueError: an unknown output name, or ``"stages"`` without a positive ``stages``.
    """
    outputs = tuple(outputs)
    unknown = [name for name in outputs if name not in TARGETS]
    if unknown or not outputs:
        raise ValueError(f"outputs must be names among {TARGETS}, got {outputs}")
    if "stages" in outputs and (stages is None or stages < 1):
        raise ValueError(f"the 'stages' target needs a positive number of stages, got {stages}")

    def to_pair(element: dict) -> tuple[tf.Tensor, dict]:
        clean = element["clean"]
        targets = {}
        for name in outputs:
            if name == "derained":
                targets[name] = clean
            elif name == "stages":
                targets[name] = tf.tile(clean[:, None], [1, stages, 1, 1, 1])
            elif name == "rain":
                targets[name] = tf.concat([element["rainy"], clean], axis=-1)
            else:
                targets[name] = element["density"]
        return element["rainy"], targets

    return ds.map(to_pair, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
