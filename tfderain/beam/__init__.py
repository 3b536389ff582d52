"""Batch deraining and scoring on Apache Beam (``pip install "tfderain[beam]"``).

* :class:`DerainImages`: image files, folders and glob patterns on any Beam filesystem in,
  derained files and a JSONL manifest out; bad images become manifest rows and counters.
* :class:`EvaluatePairs`: a paired test set in, the per-image PSNR/SSIM of ``tfderain evaluate``
  and their means out.
* :class:`DerainModelHandler`, :class:`ScoreModelHandler`: RunInference model handlers running
  a tfderain model (loaded once per worker process) through :class:`tfderain.inference.Derainer`.
* :func:`model_ref`: the command line's ``--model``/``--weights`` resolved into what the workers
  load.

``python -m tfderain.beam derain|evaluate …`` runs them from the command line; ``docs/beam.md``
shows how to run on Dataflow, Flink and Spark.
"""

from __future__ import annotations

from tfderain._lazy import lazy_exports

#: Public names and the module that defines each one (imported on first use, so that
#: ``python -m tfderain.beam --help`` does not load TensorFlow or Beam).
_LAZY = {
    "DerainImages": "tfderain.beam.transforms",
    "DerainModelHandler": "tfderain.beam.model",
    "EvaluatePairs": "tfderain.beam.transforms",
    "ModelRef": "tfderain.beam.model",
    "ScoreModelHandler": "tfderain.beam.model",
    "model_ref": "tfderain.beam.model",
    "pair_jobs": "tfderain.beam.transforms",
}

__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
