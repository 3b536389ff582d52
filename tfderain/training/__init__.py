"""Training from a YAML recipe: ``tfderain train --config prenet``.

:func:`train` runs ``model.fit`` on a config (see :data:`DEFAULTS` for every key and
``tfderain/configs/*.yaml`` for the paper recipes); ``tfderain train`` (and ``training/train.py``,
the same command) reads its options with :mod:`tfderain.train_cli`.

A run lives in one folder (``output_dir``); starting the same command again continues it:

``config.yaml``                  the resolved config of the latest start
``log.csv``                      one row per epoch (loss, PSNR of ``derained``, learning rate,
                                 ``val_psnr``/``val_ssim`` with a validation set)
``state.json``                   epochs done, best loss, and the epoch each start resumed at
``validation.json``              every validation result and the best one
``checkpoints/last.weights.h5``  weights after the latest epoch
``checkpoints/best.weights.h5``  weights of the epoch with the lowest training loss
``checkpoints/best_val.weights.h5``  weights of the best validation PSNR
``backup/``                      ``keras.callbacks.BackupAndRestore`` state (weights, optimizer,
                                 epoch and step counters); deleted when the run completes
``tb/``                          TensorBoard events: ``train/`` has ``epoch_*`` and ``batch_*``
                                 scalars (losses, PSNR, learning rate) and ``samples`` images
                                 (rainy | derained | clean side by side); ``validation/`` has
                                 ``val_psnr`` and ``val_ssim``
``model.keras``                  the final model, always float32 (``tfderain.saving.save_model``)

A run killed at any moment (even by SIGKILL) resumes from its last backup
(``logging.backup_every`` steps or each epoch): weights, optimizer moments, the step counter and
so the learning-rate schedule (:mod:`tfderain.schedules`) are restored, and the input pipeline
restarts at the batch after the backup (batch ``s`` of a run is a pure function of the config and
``s``: :func:`tfderain.data.pipeline.paired_dataset`). With ``deterministic: true`` the resumed
run ends with exactly the weights of an uninterrupted one. A completed run is not trained again.

Mixed precision (``precision: mixed_float16 | mixed_bfloat16``) computes in 16 bits with float32
variables; Keras wraps the optimizer in a ``LossScaleOptimizer`` for float16; model outputs,
losses and the saved model are float32. ``jit: true`` XLA-compiles the training step. Devices:
:mod:`tfderain.distribute` (``--strategy mirrored | multiworker``; ``data.batch_size`` is the
global batch).

The paper recipe (PReNet: Ren et al., "Progressive Image Deraining Networks: A Better and Simpler
Baseline", CVPR 2019; official ``train_PReNet.py``, ``train_PReNet_r.py``, ``train_PRN.py`` and
``train_PRN_r.py`` of https://github.com/csdwren/PReNet): Adam with PyTorch's defaults (betas 0.9,
0.999, eps 1e-8), learning rate 1e-3, ``MultiStepLR`` milestones [30, 50, 80] epochs with
gamma 0.2, 100 epochs, batch 18, 100x100 patches, loss ``-SSIM`` of the final output only.
"""

from __future__ import annotations

from tfderain.schedules import MultiStepDecay
from tfderain.training.config import DEFAULTS, PRECISIONS, apply_overrides, load_config
from tfderain.training.trainer import TrainResult, read_log, read_state, resume_step, train
from tfderain.training.wiring import dataset

__all__ = [
    "DEFAULTS",
    "PRECISIONS",
    "MultiStepDecay",
    "TrainResult",
    "apply_overrides",
    "dataset",
    "load_config",
    "read_log",
    "read_state",
    "resume_step",
    "train",
]
