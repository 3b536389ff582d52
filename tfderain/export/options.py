"""Options of a TFLite export, with no TensorFlow import (the command line reads them for its
help): the quantization modes, the QAT fine-tune's targets, losses and sizes, calibration sizes.
"""

from __future__ import annotations

import dataclasses

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
