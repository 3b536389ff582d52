"""Learning-rate schedules of the official training scripts, as functions of the step count.

Every schedule here is a ``keras.optimizers.schedules.LearningRateSchedule`` of
``optimizer.iterations`` only, so a run restored from a backup continues its schedule exactly.
The PyTorch schedulers they reproduce are stepped either once per epoch (PReNet, MPRNet) or once per
iteration (BasicSR, hence Restormer); ``steps_per_epoch`` converts.

* :class:`MultiStepDecay` -- ``torch.optim.lr_scheduler.MultiStepLR`` (PReNet, DID-MDN, ...).
* :class:`WarmupCosineDecay` -- MPRNet's ``GradualWarmupScheduler`` followed by
  ``CosineAnnealingLR`` (https://github.com/swz30/MPRNet, ``Deraining/train.py``).
* :class:`CyclicCosineDecay` -- BasicSR's ``CosineAnnealingRestartCyclicLR`` as used by Restormer
  (https://github.com/swz30/Restormer, ``basicsr/models/lr_scheduler.py``).

:func:`from_config` builds one from the ``schedule`` section of a training config.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

from tfderain._keras import keras, tf

__all__ = [
    "SCHEDULES",
    "CyclicCosineDecay",
    "MultiStepDecay",
    "WarmupCosineDecay",
    "from_config",
]


def _epoch(step: tf.Tensor, steps_per_epoch: int) -> tf.Tensor:
    return tf.math.floordiv(tf.cast(step, tf.int64), steps_per_epoch)


@keras.utils.register_keras_serializable(package="tfderain")
class MultiStepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """PyTorch's ``MultiStepLR`` on epochs, as a function of the optimizer's step count.

    During epoch ``e`` (0-based, ``e = step // steps_per_epoch``) the rate is
    ``initial_learning_rate * gamma ** (number of milestones <= e)``, as the official scripts get
    by calling ``scheduler.step(epoch)`` at the start of each epoch.
    """

    def __init__(
        self,
        initial_learning_rate: float,
        milestones: Sequence[int],
        gamma: float,
        steps_per_epoch: int,
    ) -> None:
        super().__init__()
        self.initial_learning_rate = float(initial_learning_rate)
        self.milestones = [int(m) for m in milestones]
        self.gamma = float(gamma)
        self.steps_per_epoch = int(steps_per_epoch)

    def __call__(self, step: tf.Tensor) -> tf.Tensor:
        epoch = _epoch(step, self.steps_per_epoch)
        milestones = tf.constant(self.milestones, tf.int64, shape=(len(self.milestones),))
        passed = tf.reduce_sum(tf.cast(epoch >= milestones, tf.float32))
        return self.initial_learning_rate * tf.pow(tf.constant(self.gamma, tf.float32), passed)

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "milestones": self.milestones,
            "gamma": self.gamma,
            "steps_per_epoch": self.steps_per_epoch,
        }


@keras.utils.register_keras_serializable(package="tfderain")
class WarmupCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then cosine annealing to ``min_learning_rate``, stepped per epoch or step.

    With ``u`` the 0-based unit (epoch ``step // steps_per_epoch``, or the step when
    ``steps_per_epoch`` is 1):

    * ``u < warmup``: ``lr = initial * (u + 1) / warmup`` -- ``GradualWarmupScheduler`` with
      ``multiplier=1``, which MPRNet steps once before its first epoch, so epoch 0 already uses
      ``initial / warmup``;
    * otherwise ``lr = min + (initial - min) * (1 + cos(pi * t / period)) / 2`` with
      ``t = u - warmup + 1`` capped at ``period`` -- ``CosineAnnealingLR(T_max=period,
      eta_min=min)`` continuing from the warm-up, one scheduler step per unit.

    MPRNet (deraining): ``initial 2e-4``, ``warmup 3`` epochs, ``period = 250 - 3`` epochs,
    ``min 1e-6``.
    """

    def __init__(
        self,
        initial_learning_rate: float,
        period: int,
        warmup: int = 0,
        min_learning_rate: float = 0.0,
        steps_per_epoch: int = 1,
    ) -> None:
        super().__init__()
        if period < 1 or warmup < 0 or steps_per_epoch < 1:
            raise ValueError(
                f"period and steps_per_epoch must be positive and warmup >= 0, got period "
                f"{period}, warmup {warmup}, steps_per_epoch {steps_per_epoch}"
            )
        self.initial_learning_rate = float(initial_learning_rate)
        self.period = int(period)
        self.warmup = int(warmup)
        self.min_learning_rate = float(min_learning_rate)
        self.steps_per_epoch = int(steps_per_epoch)

    def __call__(self, step: tf.Tensor) -> tf.Tensor:
        unit = tf.cast(_epoch(step, self.steps_per_epoch), tf.float32)
        initial, low = self.initial_learning_rate, self.min_learning_rate
        warm = initial * (unit + 1.0) / max(self.warmup, 1)
        t = tf.minimum(unit - self.warmup + 1.0, float(self.period))
        cosine = low + (initial - low) * 0.5 * (1.0 + tf.cos(math.pi * t / self.period))
        return tf.where(unit < self.warmup, warm, cosine)

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "period": self.period,
            "warmup": self.warmup,
            "min_learning_rate": self.min_learning_rate,
            "steps_per_epoch": self.steps_per_epoch,
        }


@keras.utils.register_keras_serializable(package="tfderain")
class CyclicCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """BasicSR's ``CosineAnnealingRestartCyclicLR``, stepped once per iteration.

    The iterations are split into consecutive ``periods``; within period ``k`` (starting after
    ``R_k`` iterations) the rate at iteration ``i`` is ``eta_min_k + restart_weight_k *
    (initial - eta_min_k) * (1 + cos(pi * (i - R_k) / period_k)) / 2``.
    BasicSR calls ``scheduler.step()`` before each optimisation step with a 1-based iteration
    count, so step ``s`` of this schedule uses ``i = s + 1`` and period ``k`` is the first with
    ``i <= R_k + period_k``. Past the last period the rate stays at the end of the last one.

    Restormer (deraining): ``initial 3e-4``, ``periods [92000, 208000]``, ``eta_mins [3e-4,
    1e-6]``, ``restart_weights [1, 1]``: constant 3e-4, then a cosine down to 1e-6.
    """

    def __init__(
        self,
        initial_learning_rate: float,
        periods: Sequence[int],
        eta_mins: Sequence[float],
        restart_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        restart_weights = [1.0] * len(periods) if restart_weights is None else restart_weights
        if not periods or not len(periods) == len(eta_mins) == len(restart_weights):
            raise ValueError("periods, eta_mins and restart_weights must have the same length")
        if min(periods) < 1:
            raise ValueError(f"periods must be positive, got {list(periods)}")
        self.initial_learning_rate = float(initial_learning_rate)
        self.periods = [int(p) for p in periods]
        self.eta_mins = [float(e) for e in eta_mins]
        self.restart_weights = [float(w) for w in restart_weights]

    def __call__(self, step: tf.Tensor) -> tf.Tensor:
        ends = tf.constant(list(itertools.accumulate(self.periods)), tf.float32)
        total = float(sum(self.periods))
        i = tf.minimum(tf.cast(step, tf.float32) + 1.0, total)
        k = tf.minimum(tf.reduce_sum(tf.cast(i > ends, tf.int32)), len(self.periods) - 1)
        start = tf.gather(tf.concat([[0.0], ends[:-1]], 0), k)
        period = tf.gather(tf.constant(self.periods, tf.float32), k)
        low = tf.gather(tf.constant(self.eta_mins, tf.float32), k)
        weight = tf.gather(tf.constant(self.restart_weights, tf.float32), k)
        cosine = 0.5 * (1.0 + tf.cos(math.pi * (i - start) / period))
        return low + weight * (self.initial_learning_rate - low) * cosine

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "periods": self.periods,
            "eta_mins": self.eta_mins,
            "restart_weights": self.restart_weights,
        }


#: ``schedule.name`` → the keys its config section takes (besides ``name`` and ``unit``).
SCHEDULES = {
    "multistep": ("milestones", "gamma"),
    "cosine": ("period", "warmup", "min_learning_rate"),
    "cyclic_cosine": ("periods", "eta_mins", "restart_weights"),
}


def from_config(
    section: Mapping[str, Any], initial_learning_rate: float, steps_per_epoch: int
) -> keras.optimizers.schedules.LearningRateSchedule:
    """The schedule a training config's ``schedule`` section describes.

    ``name`` is one of :data:`SCHEDULES` (default ``multistep``). ``unit`` (``epoch`` or ``step``)
    says what ``milestones``, ``period`` and ``warmup`` count; ``cyclic_cosine`` always counts
    iterations, as BasicSR does.
    """
    section = dict(section)
    name = section.pop("name", "multistep")
    unit = section.pop("unit", "epoch")
    if name not in SCHEDULES:
        raise ValueError(f"schedule.name must be one of {', '.join(SCHEDULES)}, got {name!r}")
    if unit not in ("epoch", "step"):
        raise ValueError(f"schedule.unit must be 'epoch' or 'step', got {unit!r}")
    unknown = sorted(set(section) - set(SCHEDULES[name]))
    if unknown:
        known = ", ".join(("name", "unit", *SCHEDULES[name]))
        raise ValueError(f"schedule {name!r} has no key(s) {', '.join(unknown)}; known: {known}")
    per_unit = steps_per_epoch if unit == "epoch" else 1
    try:
        if name == "multistep":
            return MultiStepDecay(
                initial_learning_rate, section["milestones"], section["gamma"], per_unit
            )
        if name == "cosine":
            return WarmupCosineDecay(initial_learning_rate, steps_per_epoch=per_unit, **section)
        return CyclicCosineDecay(initial_learning_rate, **section)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"schedule {name!r}: missing or bad key ({exc})") from None
