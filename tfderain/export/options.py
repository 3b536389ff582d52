"""Options of a TFLite export, with no TensorFlow import (the command line reads them for its
help): the quantization modes, the QAT fine-tune's targets, losses and sizes, calibration sizes,
and the command-line options of the fine-tune (:func:`add_fine_tune_arguments`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Sequence

from tfderain._args import non_negative_int

__all__ = [
    "DEFAULT_CALIBRATION_SAMPLES",
    "DEFAULT_QAT_BATCH_SIZE",
    "DEFAULT_QAT_PATCH_SIZE",
    "DEFAULT_QAT_STEPS",
    "DYNAMIC_CALIBRATION_SIZE",
    "INTEGER_QUANTIZATIONS",
    "QAT_LOSSES",
    "QAT_TARGETS",
    "QUANTIZATIONS",
    "QATSettings",
    "TFLiteOptions",
    "add_fine_tune_arguments",
]

#: The quantization modes of :func:`export_tflite`.
QUANTIZATIONS = ("none", "fp16", "dynamic", "int8", "qat")
#: Modes whose activations are int8.
INTEGER_QUANTIZATIONS = ("int8", "qat")
#: Default fine-tuning steps of ``qat``.
DEFAULT_QAT_STEPS = 200
#: Targets of the QAT fine-tune (:func:`tfderain.export.qat.finetune`).
QAT_TARGETS = ("teacher", "clean")
#: Losses of the QAT fine-tune (:func:`tfderain.export.qat.finetune`).
QAT_LOSSES = ("l1", "l2", "negative_ssim")
#: Default number of representative images calibrating ``int8``.
DEFAULT_CALIBRATION_SAMPLES = 32
#: Side of the int8 calibration images of a dynamic-size model.
DYNAMIC_CALIBRATION_SIZE = 256
#: Default side of the QAT fine-tuning patches (a smaller fixed tile is fine-tuned whole).
DEFAULT_QAT_PATCH_SIZE = 128
#: Default patches per QAT fine-tuning step.
DEFAULT_QAT_BATCH_SIZE = 4


@dataclasses.dataclass(frozen=True)
class QATSettings:
    """The size of a QAT fine-tune: ``steps`` batches of ``batch_size`` patches of
    ``patch_size``×``patch_size`` pixels."""

    steps: int = DEFAULT_QAT_STEPS
    batch_size: int = DEFAULT_QAT_BATCH_SIZE
    patch_size: int = DEFAULT_QAT_PATCH_SIZE

    def __str__(self) -> str:
        patches = f"{self.batch_size} patch{'es' if self.batch_size != 1 else ''}"
        return f"{self.steps} steps of {patches} of {self.patch_size}×{self.patch_size}"


@dataclasses.dataclass(frozen=True)
class TFLiteOptions:
    """Everything a TFLite export can be asked for, passed as one value through the exporter
    (:func:`tfderain.export.export_tflite`), the command line and the export report.

    Attributes:
        quant: ``none``, ``fp16``, ``dynamic``, ``int8`` or ``qat`` (:data:`QUANTIZATIONS`).
        tile: ``(height, width)`` of a fixed-size model (multiples of the model's ``multiple``),
            or ``None`` for a dynamic-size one (``[1, -1, -1, 3]``, resized by the app).
        representative: ``int8`` calibration images: a folder, or ``None``/``"synthetic"``.
        qat_data: ``qat`` fine-tuning pairs: a paired dataset folder, or ``None``/``"synthetic"``.
        qat_steps: ``qat`` fine-tuning steps (batches of ``qat_batch_size`` patches).
        qat_batch_size: patches per fine-tuning step. Memory grows with it: the backward pass
            keeps every activation of the patches, which for a model of many full-resolution
            iterations (mCODE-Net: 25) exceeds 21 GB at 4 patches of 128×128.
        qat_patch_size: side of the fine-tuning patches (rounded down to the model's multiple;
            a smaller fixed ``tile`` is fine-tuned whole). Memory and time per step grow with
            its square: 1 patch of 256×256 costs about what 4 of 128×128 do.
            The ``qat_*`` sizes left ``None`` come from the model's recipe in the registry,
            else the defaults of :class:`QATSettings`.
        qat_loss: one of :data:`QAT_LOSSES`.
        qat_target: ``"teacher"`` (the float model's output, so the int8 model learns to
            reproduce it) or ``"clean"`` (the pairs' clean images).
        qat_keep_float: ``qat`` layer name patterns left in float32 (mixed precision; see
            :func:`tfderain.export.qat.annotate`), e.g. ``("conv", "stage*_out")``.
        uint8_io: uint8 input and outputs (``int8``/``qat`` only); else float32.
        samples: number of calibration images for ``int8``.
        seed: seed of the calibration crops and fine-tuning stream.
    """

    quant: str = "none"
    tile: tuple[int, int] | int | None = (256, 256)
    representative: str | os.PathLike | None = None
    qat_data: str | os.PathLike | None = None
    qat_steps: int | None = None
    qat_batch_size: int | None = None
    qat_patch_size: int | None = None
    qat_loss: str = "l1"
    qat_target: str = "teacher"
    qat_keep_float: Sequence[str] = ()
    uint8_io: bool = False
    samples: int = DEFAULT_CALIBRATION_SAMPLES
    seed: int = 0


def add_fine_tune_arguments(parser: argparse.ArgumentParser) -> None:
    """The command-line options of the QAT fine-tune and of the seed, shared by
    ``tfderain export tflite`` and ``export/report.py``: ``--qat-steps``, ``--qat-batch-size``
    and ``--qat-patch-size`` (``None`` when not given: the model's recipe, else the defaults of
    :class:`QATSettings`), ``--qat-loss`` and ``--seed``."""
    recipe = "default: the model's QAT recipe, else"
    parser.add_argument(
        "--qat-steps", type=int, help=f"QAT fine-tuning steps ({recipe} {DEFAULT_QAT_STEPS})"
    )
    parser.add_argument(
        "--qat-batch-size",
        type=int,
        help=f"QAT patches per step ({recipe} {DEFAULT_QAT_BATCH_SIZE}; "
        "fewer if the fine-tune runs out of RAM)",
    )
    parser.add_argument(
        "--qat-patch-size",
        type=int,
        help=f"side of the QAT patches ({recipe} {DEFAULT_QAT_PATCH_SIZE}; "
        "memory grows with its square)",
    )
    parser.add_argument(
        "--qat-loss",
        choices=QAT_LOSSES,
        default="l1",
        help="QAT fine-tuning loss against the target (default l1)",
    )
    parser.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="seed of the int8 calibration crops and the QAT fine-tuning stream (default 0)",
    )
