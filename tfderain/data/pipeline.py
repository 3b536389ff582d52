"""tf.data pipelines for training: paired patches from disk, and an endless synthetic-rain stream.

Both pipelines yield batches of the same dict::

    {"rainy": float32 [B, P, P, 3], "clean": float32 [B, P, P, 3], "density": float32 [B]}

with images in [0, 1]. ``density`` is a rain density in [0, 1]: the one :func:`add_rain` used
for synthetic rain, the centre of the class range (1/6, 1/2, 5/6) for datasets labelled light /
medium / heavy (so :func:`~tfderain.data.synthetic.density_level` recovers the class), and
``-1`` when unknown. :func:`as_training_pairs` turns the dict into ``(inputs, targets)`` for
``model.fit``.

**The global stream.** Both pipelines are views of one stream of elements ``e_0, e_1, ...``
where ``e_i`` is a pure function of ``(seed, i)`` and the data:

* paired data with ``N`` pairs: epoch ``i // N`` visits the pairs in the order
  ``np.random.default_rng([seed, epoch]).permutation(N)`` (or in order without ``shuffle``),
  and the crop, flips and rotation of ``e_i`` are drawn from stateless TF ops seeded with
  ``(seed, i)``;
* synthetic rain: everything of ``e_i`` comes from ``np.random.default_rng([seed, i])``.

Global batch ``j`` is ``e_{jB} ... e_{jB+B-1}`` (``B = batch_size``). ``start_batch=s`` starts at
global batch ``s`` without producing the skipped elements, so a run resumed at step ``s`` sees
the batches an uninterrupted run sees from step ``s`` on. ``num_shards=W, shard_index=w`` yields
batches of ``B / W`` elements, ``e_{jB + wB/W} ... e_{jB + (w+1)B/W - 1}``: the ``W`` shards
concatenated along axis 0 are exactly the global batches (one shard per worker of a
``MultiWorkerMirroredStrategy``). Parallel maps keep their order
(``options.deterministic = True``), so two pipelines built with the same arguments yield the
same batches.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tfderain._keras import tf
from tfderain.data import tfrecord
from tfderain.data.decode import decode_pair
from tfderain.data.layouts import LayoutError, Pair, find_pairs
from tfderain.data.synthetic import REFERENCE_SIZE, STYLES, add_rain
from tfderain.io import ImageError, is_image_path, read_bytes, read_image

__all__ = [
    "BAD_PAIRS",
    "LEVEL_DENSITY",
    "TARGETS",
    "UNKNOWN_DENSITY",
    "BadPairs",
    "as_training_pairs",
    "decode_pair",
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

# Decoded pairs kept per dataset with cache=False: the permutation of a few epochs.
_EPOCHS_KEPT = 4


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


def _check_sharding(batch_size: int, start_batch: int, num_shards: int, shard_index: int) -> int:
    """The per-shard batch size ``batch_size / num_shards``, after checking the arguments."""
    if not isinstance(start_batch, (int, np.integer)) or start_batch < 0:
        raise ValueError(f"start_batch must be a non-negative integer, got {start_batch!r}")
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ValueError(
            f"shard_index must be in 0..num_shards-1, got shard {shard_index} of {num_shards}"
        )
    if batch_size % num_shards:
        raise ValueError(
            f"batch_size {batch_size} is not divisible by num_shards {num_shards}: each shard "
            "yields batch_size / num_shards elements of every global batch"
        )
    return batch_size // num_shards


def _global_index(local: tf.Tensor, batch: int, start: int, shards: int, shard: int) -> tf.Tensor:
    """Global element index of a shard's ``local``-th element (see the module docstring)."""
    per_shard = batch // shards
    j = start + local // per_shard
    return j * batch + shard * per_shard + local % per_shard


class _ShutdownGuard:
    """Lets numpy_function pipelines go idle before the interpreter shuts down.

    tf.data calls the Python element functions (synthetic rain, decoding of pairs) from its own
    threads and keeps prefetching until the iterator is destroyed, which may only happen during
    interpreter shutdown. A call still running or starting then can never take the GIL back: an
    OpenCV call aborts the process ("terminate called without an active exception"), and the
    iterator's destructor waits forever for the lost call. So at exit this guard turns further
    calls into no-ops (the buffers fill at once) and waits until no call has run for a moment.
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


# --------------------------------------------------------------------------- decoding a pair


class BadPairs:
    """Pairs that could not be used, each logged once (``logging.warning``) when first seen.

    ``items`` lists ``(pair name, "<file>: <cause>")`` in the order found. Every dataset of
    :func:`paired_dataset` has its own report (``ds.bad_pairs``); :data:`BAD_PAIRS` collects
    the reports of all datasets of the process.
    """

    def __init__(self, parent: BadPairs | None = None) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, str] = {}
        self._parent = parent

    def add(self, name: str, cause: str) -> bool:
        """Record a bad pair; True (and a log line) the first time this pair is reported."""
        with self._lock:
            if name in self._seen:
                return False
            self._seen[name] = cause
        if self._parent is None:
            log.warning("skipping pair %s: %s", name, cause)
        else:
            self._parent.add(name, cause)
        return True

    @property
    def items(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._seen.items())

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, name: object) -> bool:
        return name in self._seen

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()


#: Every bad pair any paired dataset of this process met.
BAD_PAIRS = BadPairs()


class _FilePairs:
    """Pairs found in dataset folders, read from their files."""

    def __init__(self, pairs: list[Pair], source: str) -> None:
        self.pairs = pairs
        self.source = source
        self.names = [p.name for p in pairs]
        self.levels = [p.density for p in pairs]

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, k: int) -> np.ndarray:
        p = self.pairs[k]
        clean = None if p.split else read_bytes(p.clean)
        return decode_pair(read_bytes(p.rainy), clean, p.split, str(p.rainy), str(p.clean))


class _PackedPairs:
    """Pairs of a folder written by :func:`tfderain.data.tfrecord.pack`."""

    def __init__(self, folder: Path) -> None:
        self.pack = tfrecord.PackedPairs(folder)
        self.source = str(folder)
        self.names = self.pack.names
        self.levels = self.pack.levels

    def __len__(self) -> int:
        return len(self.pack)

    def load(self, k: int) -> np.ndarray:
        r = self.pack.record(k)
        where = f"{self.source}/{r.name}"
        clean = None if r.split else r.clean
        return decode_pair(r.rainy, clean, r.split, f"{where} (rainy)", f"{where} (clean)")


def _open_source(
    source: str | os.PathLike | Sequence[str | os.PathLike], layout: str | None, order: str | None
) -> _FilePairs | _PackedPairs:
    if isinstance(source, (str, os.PathLike)):
        if tfrecord.is_packed(source):
            return _PackedPairs(Path(source))
        name = str(source)
    else:
        name = ", ".join(map(str, source))
    return _FilePairs(list(find_pairs(source, layout=layout, order=order)), name)


class _Stream:
    """Element ``i`` of the global stream of decoded pairs (runs inside ``tf.numpy_function``).

    Pair of element ``i``: position ``i % N`` of epoch ``i // N``'s permutation. A bad pair is
    reported once and, with ``replace``, element ``i`` takes the next usable pair of the
    permutation (wrapping around), so every index yields an example.
    """

    def __init__(self, pairs, seed: int, shuffle: bool, cache: bool, replace: bool) -> None:
        self.pairs = pairs
        self.seed = seed
        self.shuffle = shuffle
        self.replace = replace
        self.report = BadPairs(parent=BAD_PAIRS)
        self._bad: set[int] = set()
        self._cache: dict[int, np.ndarray] | None = {} if cache else None
        self._orders: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.density = np.array(
            [UNKNOWN_DENSITY if d is None else LEVEL_DENSITY[d] for d in pairs.levels], np.float32
        )

    def order(self, epoch: int) -> np.ndarray:
        n = len(self.pairs)
        if not self.shuffle:
            return np.arange(n)
        with self._lock:
            if epoch in self._orders:
                self._orders.move_to_end(epoch)
                return self._orders[epoch]
        order = np.random.default_rng([self.seed, epoch]).permutation(n)
        with self._lock:
            self._orders[epoch] = order
            while len(self._orders) > _EPOCHS_KEPT:
                self._orders.popitem(last=False)
        return order

    def _load(self, k: int) -> np.ndarray | None:
        if k in self._bad:
            return None
        if self._cache is not None and k in self._cache:
            return self._cache[k]
        try:
            images = self.pairs.load(k)
        except (ImageError, OSError, ValueError) as e:
            self._bad.add(k)
            self.report.add(self.pairs.names[k], str(e))
            return None
        if self._cache is not None:
            self._cache[k] = images
        return images

    def __call__(self, index) -> tuple[np.ndarray, np.float32, bool]:
        empty = np.zeros((1, 1, 6), np.uint8), np.float32(UNKNOWN_DENSITY), False
        if not _GUARD.enter():  # the interpreter is exiting: nobody will read this element
            return empty
        try:
            n = len(self.pairs)
            epoch, pos = divmod(int(index), n)
            order = self.order(epoch)
            for step in range(n if self.replace else 1):
                k = int(order[(pos + step) % n])
                images = self._load(k)
                if images is not None:
                    return images, self.density[k], True
            if self.replace:
                raise ValueError(f"{self.pairs.source}: none of the {n} pairs is readable")
            return empty
        finally:
            _GUARD.leave()


# --------------------------------------------------------------------------- paired data on disk


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
    source: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    patch_size: int = 100,
    batch_size: int = 18,
    seed: int = 0,
    augment: bool = True,
    repeat: bool = True,
    shuffle: bool = True,
    cache: bool = False,
    start_batch: int = 0,
    num_shards: int = 1,
    shard_index: int = 0,
    num_parallel_calls: int = tf.data.AUTOTUNE,
    layout: str | None = None,
    order: str | None = None,
) -> tf.data.Dataset:
    """Random aligned patches of the rainy/clean pairs of a dataset.

    Each element is a ``patch_size`` square cut from the same window of both images, then (with
    ``augment``) flipped left-right and up-down and rotated by ``k * 90`` degrees, ``k`` in 0..3,
    identically for both. Images smaller than the patch are mirror-padded (symmetric) rather than
    upscaled, so the rain streaks keep their size and sharpness. The stream, resumption and
    sharding follow the module docstring.

    Files are read and decoded with OpenCV inside ``tf.numpy_function`` (PNG and JPEG files
    must be complete). Bad files never stop an epoch: a pair whose file is missing, empty, not
    a PNG/JPEG/BMP image, truncated or corrupt, or whose two images (halves) differ in size is
    logged once and listed in ``ds.bad_pairs`` (a :class:`BadPairs`) and :data:`BAD_PAIRS`.
    With ``repeat`` its elements take the next usable pair of the epoch's order instead, so
    every element index yields an example and batches stay aligned with indices; without
    ``repeat`` (one pass, e.g. for evaluation) bad pairs are left out.

    Args:
        source: a dataset folder in a layout of :mod:`tfderain.data.layouts`, a list of such
            folders or a manifest listing them (a mix), or a folder written by
            :func:`tfderain.data.tfrecord.pack` (it holds ``manifest.json``); pair ``k`` of a
            pack is pair ``k`` of its source, so both give the same batches.
        patch_size: side of the square patches.
        batch_size: patches per global batch; with ``repeat`` every batch is full, otherwise
            the last one may be smaller.
        seed: the stream (epoch orders, crops, flips) is a function of ``seed``.
        augment: random flips and 90-degree rotations.
        repeat: loop over the pairs forever (a new order each epoch); otherwise one pass over
            epoch 0's order.
        shuffle: visit the pairs in a random order per epoch (else in order).
        cache: keep every decoded pair in memory (about ``6 H W`` bytes per pair) instead of
            reading and decoding each file every time.
        start_batch: the first global batch to yield (resumption).
        num_shards, shard_index: yield shard ``shard_index`` of ``num_shards`` of each global
            batch, ``batch_size / num_shards`` elements (``batch_size`` must be divisible).
        num_parallel_calls: parallelism of the decoding and cropping maps.
        layout, order: passed to :func:`~tfderain.data.layouts.find_pairs` for folders.

    Returns:
        a dataset of ``{"rainy", "clean", "density"}`` batches (see the module docstring),
        with the attribute ``bad_pairs``.

    Raises:
        ValueError: bad arguments; :class:`~tfderain.data.layouts.LayoutError` when the
            source holds no pairs.
    """
    _check_sizes(patch_size, batch_size)
    seed = _check_seed(seed)
    per_shard = _check_sharding(batch_size, start_batch, num_shards, shard_index)
    pairs = _open_source(source, layout, order)
    stream = _Stream(pairs, seed, shuffle, cache, replace=repeat)

    if repeat:
        ds = tf.data.Dataset.counter().map(
            lambda m: _global_index(m, batch_size, start_batch, num_shards, shard_index)
        )
    else:
        n = len(pairs)
        batches = np.arange(start_batch, max(start_batch, -(-n // batch_size)))
        offsets = shard_index * per_shard + np.arange(per_shard)
        indices = (batches[:, None] * batch_size + offsets[None, :]).ravel()
        ds = tf.data.Dataset.from_tensor_slices(indices[indices < n].astype(np.int64))

    def load(index: tf.Tensor) -> tuple[tf.Tensor, dict]:
        images, density, ok = tf.numpy_function(
            stream, [index], (tf.uint8, tf.float32, tf.bool), stateful=False
        )
        images.set_shape([None, None, 6])
        density.set_shape([])
        ok.set_shape([])
        return index, {"images": images, "density": density, "ok": ok}

    ds = ds.map(load, num_parallel_calls=num_parallel_calls, deterministic=True)
    if not repeat:
        ds = ds.filter(lambda index, element: element["ok"])
    ds = ds.map(
        lambda i, element: _crop_and_augment(i, element, patch_size, seed, augment),
        num_parallel_calls=num_parallel_calls,
        deterministic=True,
    )
    ds = ds.batch(per_shard, drop_remainder=repeat)
    ds = ds.prefetch(tf.data.AUTOTUNE).with_options(_options())
    ds.bad_pairs = stream.report
    return ds


# ------------------------------------------------------------------------------ synthetic rain


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


@dataclass(frozen=True)
class _Draws:
    """What each element of the synthetic stream draws from (see :func:`synthetic_dataset`)."""

    patch: int
    density_range: tuple[float, float] | None
    scale_range: tuple[float, float]
    size_range: tuple[int, int | None] | None
    styles: tuple[str, ...]
    augment: bool
    keep_veil: bool


def _synthetic_example(
    images: list[np.ndarray], seed: int, index: int, draws: _Draws
) -> tuple[np.ndarray, np.ndarray, np.float32]:
    """Element ``index`` of the synthetic stream, from a Generator seeded with (seed, index)."""
    patch = draws.patch
    rng = np.random.default_rng([seed, int(index)])
    image = images[rng.integers(len(images))]
    height, width = image.shape[:2]
    if height < patch or width < patch:
        ph, pw = max(0, patch - height), max(0, patch - width)
        pads = ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0))
        image = np.pad(image, pads, mode="symmetric")
    # A window of patch/scale pixels, shrunk to the patch: a crop of the image downsampled by scale.
    scale = (
        rng.uniform(*draws.scale_range)
        if draws.size_range is None
        else _size_scale(max(height, width), draws.size_range, rng)
    )
    window = min(math.ceil(patch / scale), *image.shape[:2])
    y = rng.integers(image.shape[0] - window + 1)
    x = rng.integers(image.shape[1] - window + 1)
    crop = image[y : y + window, x : x + window]
    if window != patch:
        crop = cv2.resize(crop, (patch, patch), interpolation=cv2.INTER_AREA)
    if draws.augment:
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
    style = (
        draws.styles[int(rng.integers(len(draws.styles)))]
        if len(draws.styles) > 1
        else draws.styles[0]
    )
    density = None if draws.density_range is None else rng.uniform(*draws.density_range)
    rainy, clean, density = add_rain(
        crop,
        rng,
        density=density,
        streak_scale=streak_scale,
        style=style,
        keep_veil=draws.keep_veil,
    )
    return rainy, clean, np.float32(density)


def _check_size_range(size_range) -> tuple[int, int | None]:
    try:
        lo, hi = size_range
    except (TypeError, ValueError):
        raise ValueError(f"size_range must be (lo, hi) pixels, got {size_range!r}") from None
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (lo, hi) if v is not None)
    if not ints or lo is None or lo < 1 or (hi is not None and hi < lo):
        raise ValueError(
            f"size_range must be (lo, hi) pixels with 1 <= lo <= hi (hi may be None), "
            f"got {size_range!r}"
        )
    return int(lo), hi


def _size_scale(long_side: int, size_range: tuple[int, int | None], rng) -> float:
    """A downsampling factor giving a long side log-uniform in ``size_range`` (``None``: the
    photo's own), never above 1: a photo at most ``size_range[0]`` long stays as it is."""
    lo, hi = size_range
    hi = long_side if hi is None else min(hi, long_side)
    if hi <= lo:
        return min(1.0, hi / long_side)
    return math.exp(rng.uniform(math.log(lo), math.log(hi))) / long_side


def synthetic_dataset(
    clean_images: Sequence[np.ndarray] | str | os.PathLike,
    *,
    patch_size: int = 100,
    batch_size: int = 18,
    seed: int = 0,
    density_range: tuple[float, float] | None = None,
    scale_range: tuple[float, float] = (0.5, 1.0),
    size_range: tuple[int, int | None] | None = None,
    styles: Sequence[str] = ("mixed",),
    augment: bool = True,
    keep_veil: bool = False,
    start_batch: int = 0,
    num_shards: int = 1,
    shard_index: int = 0,
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
        density_range: rain density range, within [0, 1]; None: the style's own range
            (:mod:`~tfderain.data.synthetic`; [0, 1] for ``"mixed"``).
        scale_range: downsampling factor range, within (0, 1].
        size_range: ``(lo, hi)`` pixels, replacing ``scale_range``: each photo is downsampled so
            that its long side is log-uniform in ``[lo, hi]`` (``hi`` None: the photo's own long
            side; never upsampled), so the patches cover the photo at every size from a small
            web image to full resolution, with streaks sized for that size.
        styles: rendering styles of :func:`~.synthetic.add_rain` (:data:`~.synthetic.STYLES`),
            one drawn uniformly per patch.
        augment: random 90-degree rotations and flips.
        keep_veil: the clean target keeps the rain accumulation (veil) of the rainy patch, so
            a model learns to remove streaks without changing the scene's brightness
            (:func:`~.synthetic.add_rain`); the rainy patches are the same either way.
        start_batch: the first global batch to yield (resumption); skipped elements are not
            synthesized.
        num_shards, shard_index: yield shard ``shard_index`` of ``num_shards`` of each global
            batch (see the module docstring); ``batch_size`` must be divisible.
        num_parallel_calls: parallelism of the map producing examples.

    Returns:
        an infinite dataset of ``{"rainy", "clean", "density"}`` batches.
    """
    _check_sizes(patch_size, batch_size)
    seed = _check_seed(seed)
    per_shard = _check_sharding(batch_size, start_batch, num_shards, shard_index)
    if density_range is not None:
        lo, hi = density_range
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"density_range must lie within [0, 1], got {density_range}")
    styles = tuple(styles)
    unknown = [s for s in styles if s not in STYLES]
    if not styles or unknown:
        raise ValueError(f"styles must be some of {', '.join(STYLES)}, got {list(styles)}")
    lo, hi = scale_range
    if not 0.0 < lo <= hi <= 1.0:
        raise ValueError(f"scale_range must lie within (0, 1], got {scale_range}")
    if size_range is not None:
        size_range = _check_size_range(size_range)
    if not isinstance(keep_veil, (bool, np.bool_)):
        raise ValueError(f"keep_veil must be True or False, got {keep_veil!r}")
    images = _clean_images(clean_images)
    draws = _Draws(
        patch_size, density_range, scale_range, size_range, styles, augment, bool(keep_veil)
    )

    def example(index):
        if not _GUARD.enter():  # the interpreter is exiting: nobody will read this element
            blank = np.zeros((patch_size, patch_size, 3), np.float32)
            return blank, blank, np.float32(UNKNOWN_DENSITY)
        try:
            return _synthetic_example(images, seed, index, draws)
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

    ds = tf.data.Dataset.counter().map(
        lambda m: _global_index(m, batch_size, start_batch, num_shards, shard_index)
    )
    ds = ds.map(element, num_parallel_calls=num_parallel_calls, deterministic=True)
    ds = ds.batch(per_shard, drop_remainder=True)
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
