"""Training data: known dataset folder layouts, tf.data pipelines and synthetic rain.

* :mod:`~tfderain.data.layouts`: find the rainy/clean pairs of a dataset folder.
* :mod:`~tfderain.data.pipeline`: patches from those pairs, or from clean images with synthetic
  rain, as ``tf.data`` batches of ``{"rainy", "clean", "density"}``; ``as_training_pairs`` for
  ``model.fit``.
* :mod:`~tfderain.data.tfrecord`: pack a dataset into TFRecord shards (read back by
  ``paired_dataset`` with the same stream).
* :mod:`~tfderain.data.synthetic`: the rain synthesizer.
"""

from __future__ import annotations

from tfderain.data.layouts import LAYOUTS, LayoutError, Pair, Pairs, detect_layout, find_pairs
from tfderain.data.pipeline import (
    BAD_PAIRS,
    BadPairs,
    as_training_pairs,
    paired_dataset,
    synthetic_dataset,
)
from tfderain.data.synthetic import LEVELS, add_rain, density_level, rain_streaks
from tfderain.data.tfrecord import PackError, is_packed, pack

__all__ = [
    "BAD_PAIRS",
    "LAYOUTS",
    "LEVELS",
    "BadPairs",
    "LayoutError",
    "Pair",
    "PackError",
    "Pairs",
    "add_rain",
    "as_training_pairs",
    "density_level",
    "detect_layout",
    "find_pairs",
    "is_packed",
    "pack",
    "paired_dataset",
    "rain_streaks",
    "synthetic_dataset",
]
