"""The images an export learns its ranges from: int8 calibration images and QAT fine-tuning pairs.

* ``int8`` post-training quantization calibrates every activation range on a representative
  dataset (:func:`representative_images`): crops of a folder's images, or synthetic rain on
  scikit-image's photos. :func:`with_black_and_white` pins the input range to [0, 1].
* ``qat`` fine-tunes on batches of pairs (:func:`qat_pairs`), whose first batches also calibrate
  the learned ranges (:func:`tfderain.export.qat.calibrate`): a paired dataset folder, or the
  same synthetic rain, each batch's first rainy patch holding a black and a white pixel.

What the calibrated ranges then become in a file is :mod:`tfderain.export.calibration`'s job.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tfderain._keras import tf
from tfderain.export.errors import ExportError
from tfderain.export.options import DEFAULT_QAT_BATCH_SIZE


def _photos() -> list[np.ndarray]:
    from tfderain.data.photos import skimage_photos

    return skimage_photos()


def _synthetic(size: int, batch_size: int, seed: int) -> tf.data.Dataset:
    """Synthetic rain on the photos, each batch's first rainy patch holding one black and one
    white pixel (as :func:`with_black_and_white` does for int8 calibration): the QAT input range
    is then calibrated to [0, 1] whatever the rain's veil does to the photos' contrast."""
    from tfderain.data.pipeline import synthetic_dataset

    def black_and_white(batch: dict) -> dict:
        corners = tf.constant([[0, 0, 0], [0, size - 1, size - 1]])
        values = tf.constant([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
        rainy = tf.tensor_scatter_nd_update(batch["rainy"], corners, values)
        return {**batch, "rainy": rainy}

    stream = synthetic_dataset(_photos(), patch_size=size, batch_size=batch_size, seed=seed)
    return stream.map(black_and_white)


def _folder_crops(
    folder: Path, size: tuple[int, int], samples: int, seed: int
) -> Iterator[np.ndarray]:
    """Random ``size`` crops of the images in ``folder`` (bad files skipped and reported).

    A paired dataset folder (:mod:`tfderain.data.layouts`) contributes its rainy images, any
    other folder the images directly inside it.
    """
    from tfderain.data.layouts import LayoutError, find_pairs
    from tfderain.io import ImageError, find_images, read_image

    try:
        files, failed = [p.rainy for p in find_pairs(folder)], []
    except LayoutError:
        files, failed = find_images([folder])
    images = []
    for path in files:
        try:
            images.append(read_image(path).rgb)
        except ImageError as exc:
            failed.append((str(path), str(exc)))
    for path, cause in failed:
        print(f"tfderain: skipped representative image {path}: {cause}", flush=True)
    if not images:
        raise ExportError(f"{folder}: no readable images for the representative dataset")
    rng = np.random.default_rng(seed)
    height, width = size
    for i in range(samples):
        image = images[i % len(images)]
        ph, pw = max(0, height - image.shape[0]), max(0, width - image.shape[1])
        if ph or pw:
            image = np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="symmetric")
        y = rng.integers(image.shape[0] - height + 1)
        x = rng.integers(image.shape[1] - width + 1)
        yield np.ascontiguousarray(image[y : y + height, x : x + width], dtype=np.float32)


def representative_images(
    source: str | os.PathLike | None, size: tuple[int, int], samples: int, seed: int = 0
) -> list[np.ndarray]:
    """``samples`` float32 ``(H, W, 3)`` images calibrating int8: crops of a folder's images, or
    synthetic rain on scikit-image's photos (``source`` ``None`` or ``"synthetic"``)."""
    if source is None or str(source) == "synthetic":
        if size[0] != size[1]:
            raise ExportError(f"synthetic calibration needs a square tile, got {size}")
        ds = _synthetic(size[0], 1, seed).take(samples)
        return [batch["rainy"].numpy()[0] for batch in ds]
    folder = Path(source)
    if not folder.is_dir():
        raise ExportError(f"{folder}: representative dataset folder does not exist")
    return list(_folder_crops(folder, size, samples, seed))


def with_black_and_white(images: list[np.ndarray]) -> list[np.ndarray]:
    """``images`` whose first has one black and one white pixel (a copy; the rest unchanged).

    The calibrated input range is then exactly [0, 1], the range of every image: a white pixel
    is not clipped because no calibration image happened to reach 1, and the input of an int8
    file gets scale 1/255 and zero point 0 (uint8 apps feed raw RGB bytes) unless the converter
    ties it to a wider tensor's scale (:mod:`tfderain.export.tflite`).
    """
    if not images:
        return images
    first = np.array(images[0], np.float32, copy=True)
    first[0, 0], first[-1, -1] = 0.0, 1.0
    return [first, *images[1:]]


def qat_pairs(
    source: str | os.PathLike | None,
    size: int,
    seed: int = 0,
    batch_size: int = DEFAULT_QAT_BATCH_SIZE,
) -> tf.data.Dataset:
    """Fine-tuning batches of ``batch_size`` pairs for QAT: a paired dataset folder, or
    synthetic rain."""
    if source is None or str(source) == "synthetic":
        return _synthetic(size, batch_size, seed)
    from tfderain.data.pipeline import paired_dataset

    folder = Path(source)
    if not folder.is_dir():
        raise ExportError(f"{folder}: QAT data folder does not exist")
    return paired_dataset(folder, patch_size=size, batch_size=batch_size, seed=seed)
