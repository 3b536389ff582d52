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

from tfderain._lazy import lazy_exports

_LAZY = {
    **dict.fromkeys(
        ("LAYOUTS", "LayoutError", "Pair", "Pairs", "detect_layout", "find_pairs"),
        "tfderain.data.layouts",
    ),
    **dict.fromkeys(
        ("BAD_PAIRS", "BadPairs", "as_training_pairs", "paired_dataset", "synthetic_dataset"),
        "tfderain.data.pipeline",
    ),
    **dict.fromkeys(
        ("LEVELS", "add_rain", "density_level", "rain_streaks"), "tfderain.data.synthetic"
    ),
    **dict.fromkeys(("PackError", "is_packed", "pack"), "tfderain.data.tfrecord"),
}

__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
