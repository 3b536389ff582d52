"""Training from a YAML recipe: ``tfderain train --config training/configs/prenet.yaml``.

:func:`train` runs ``model.fit`` on a config (see :data:`DEFAULTS` for every key and
``training/configs/*.yaml`` for the paper recipes); ``training/train.py`` and ``tfderain train``
are thin command lines around :func:`main`.

A run lives in one folder (``output_dir``); starting the same command again continues it:

``config.yaml``                  the resolved config of the latest start
``log.csv``                      one row per epoch (loss, PSNR of ``derained``, learning rate)
``state.json``                   epochs done, best loss, and the epoch each start resumed at
``checkpoints/last.weights.h5``  weights after the latest epoch
``checkpoints/best.weights.h5``  weights of the epoch with the lowest training loss
``backup/``                      ``keras.callbacks.BackupAndRestore`` state (weights, optimizer,
                                 epoch and step counters); deleted when the run completes
``tb/``                          TensorBoard events: ``epoch_*`` and ``batch_*`` scalars, and
                                 ``samples`` images (rainy | derained | clean side by side)
``model.keras``                  the final model, always float32 (``tfderain.saving.save_model``)

A run killed at any moment (even by SIGKILL) resumes from its last backup: weights, optimizer
moments and ``optimizer.iterations`` are restored, and since the learning rate is a
:class:`MultiStepDecay` schedule of the iteration count, the schedule resumes too. The input
pipeline restarts from its seed (its position is not saved). A completed run is not trained again.

The paper recipe (PReNet: Ren et al., "Progressive Image Deraining Networks: A Better and Simpler
Baseline", CVPR 2019; official ``train_PReNet.py``, ``train_PReNet_r.py``, ``train_PRN.py`` and
``train_PRN_r.py`` of https://github.com/csdwren/PReNet): Adam with PyTorch's defaults (betas 0.9,
0.999, eps 1e-8), learning rate 1e-3, ``MultiStepLR`` milestones [30, 50, 80] epochs with
gamma 0.2, 100 epochs, batch 18, 100x100 patches, loss ``-SSIM`` of the final output only.

TensorBoard summaries are written with TensorFlow's core ``tf.summary.write`` and the plugin
metadata TensorBoard expects, so training does not need the ``tensorboard`` package (only viewing
the logs does).
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tfderain import losses, models
from tfderain._keras import keras, tf

__all__ = [
    "DEFAULTS",
    "SKIMAGE_PHOTOS",
    "MultiStepDecay",
    "TrainResult",
    "add_arguments",
    "apply_overrides",
    "load_config",
    "main",
    "read_log",
    "read_state",
    "run_from_args",
    "train",
]

#: Every config key with its default. ``model.config``, ``loss`` and ``loss_weights`` are free-form
#: (checked against the model and the loss registry); all other keys must be listed here.
DEFAULTS: dict[str, Any] = {
    "model": {
        "name": "prenet",  # registry name (tfderain models)
        "config": {},  # builder kwargs; empty = the paper config
    },
    "data": {
        # "synthetic" (rain rendered on clean photos), or a folder of rainy/clean pairs
        "source": "synthetic",
        # synthetic only: "skimage" (scikit-image's bundled CC0/public-domain photos) or a folder
        "clean": "skimage",
        "patch_size": 100,
        "batch_size": 18,
        "augment": True,  # random flips and 90-degree rotations
        "shuffle": True,  # folder sources only
        "cache": False,  # folder sources only: keep decoded images in memory
    },
    # One loss name for "derained", or {output: name | {name: ..., **kwargs}}; other outputs get
    # no loss unless listed.
    "loss": "negative_ssim",
    "loss_weights": {},  # {output: weight}; missing outputs with a loss weigh 1
    "optimizer": {
        "name": "adam",
        "learning_rate": 1.0e-3,
        "beta_1": 0.9,
        "beta_2": 0.999,
        "epsilon": 1.0e-8,
        "clipnorm": None,  # clip each variable's gradient to this norm (Keras clipnorm)
        # clip all gradients together to this global norm, as torch.nn.utils.clip_grad_norm_
        "global_clipnorm": None,
    },
    "schedule": {"milestones": [30, 50, 80], "gamma": 0.2},  # epochs; lr *= gamma at each
    "epochs": 100,
    "steps_per_epoch": 1045,
    "seed": 0,
    "output_dir": None,  # default runs/<model name>
    "precision": "float32",  # float32 | mixed_float16 | mixed_bfloat16
    "jit": False,
    "deterministic": False,
    "logging": {
        "scalars_every": "epoch",  # "epoch" or N steps (batch_* scalars every N steps)
        "images_every": "epoch",  # "epoch" or N steps
        "num_images": 4,
        "backup_every": "epoch",  # "epoch" or N steps
        "verbose": "auto",  # Keras fit verbosity; auto = progress bar on a terminal
    },
}

_FREE_FORM = {("model", "config"), ("loss",), ("loss_weights",)}
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")

#: scikit-image sample photos used as clean images for ``data.clean: skimage``: natural RGB
#: photographs whose ``skimage.data`` docstrings state they carry no copyright restrictions.
SKIMAGE_PHOTOS: dict[str, str] = {
    "astronaut": "NASA; no known copyright restrictions, public domain",
    "chelsea": "Stefan van der Walt; CC0",
    "coffee": "Rachel Michetti; CC0",
    "rocket": "SpaceX; released into the public domain",
}


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------


def _merge(base: dict[str, Any], update: Mapping[str, Any], path: tuple[str, ...] = ()) -> None:
    """Deep-merge ``update`` into ``base``; unknown keys are an error outside free-form parts."""
    free = any(path[: len(f)] == f for f in _FREE_FORM)
    for key, value in update.items():
        where = (*path, str(key))
        if key not in base and not (free or where in _FREE_FORM):
            known = ", ".join(sorted(base))
            raise ValueError(f"unknown config key {'.'.join(where)!r}; known here: {known}")
        if isinstance(base.get(key), dict) and isinstance(value, Mapping):
            _merge(base[key], value, where)
        elif isinstance(base.get(key), dict) and not (free or where in _FREE_FORM):
            raise ValueError(f"config key {'.'.join(where)!r} must be a mapping")
        else:
            base[key] = copy.deepcopy(value)


def apply_overrides(config: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a copy of ``config``."""
    config = copy.deepcopy(config)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects key=value, got {item!r}")
        parts = key.strip().split(".")
        update: dict[str, Any] = {}
        node = update
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(raw)
        _merge(config, update)
    return config


def load_config(
    path: str | os.PathLike | None = None, overrides: Sequence[str] = ()
) -> dict[str, Any]:
    """:data:`DEFAULTS`, updated by the YAML file at ``path`` and then by ``overrides``."""
    config = copy.deepcopy(DEFAULTS)
    if path is not None:
        text = Path(path).read_text()
        loaded = yaml.safe_load(text) or {}
        if not isinstance(loaded, Mapping):
            raise ValueError(f"{path}: a training config must be a YAML mapping")
        _merge(config, loaded)
    return apply_overrides(config, overrides)


def _every(value: Any, key: str) -> str | int:
    if value == "epoch":
        return "epoch"
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise ValueError(f"{key} must be 'epoch' or a positive number of steps, got {value!r}")


def _validate(config: dict[str, Any]) -> None:
    if config["precision"] not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
    for key in ("epochs", "steps_per_epoch"):
        if not isinstance(config[key], int) or config[key] < 1:
            raise ValueError(f"{key} must be a positive integer, got {config[key]!r}")
    if config["optimizer"]["name"].lower() != "adam":
        raise ValueError("only optimizer.name: adam is supported")
    for key in ("scalars_every", "images_every", "backup_every"):
        _every(config["logging"][key], f"logging.{key}")


# --------------------------------------------------------------------------------------------
# Learning rate, metric, data
# --------------------------------------------------------------------------------------------


@keras.utils.register_keras_serializable(package="tfderain")
class MultiStepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """PyTorch's ``MultiStepLR`` on epochs, as a function of the optimizer's step count.

    During epoch ``e`` (0-based, ``e = step // steps_per_epoch``) the rate is
    ``initial_learning_rate * gamma ** (number of milestones <= e)``, as the official scripts get
    by calling ``scheduler.step(epoch)`` at the start of each epoch. Being a function of
    ``optimizer.iterations`` only, it resumes exactly when a backup is restored.
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
        epoch = tf.math.floordiv(tf.cast(step, tf.int64), self.steps_per_epoch)
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


def psnr(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """Per-image PSNR in dB of the output clamped to [0, 1], as the official training log."""
    y_true = tf.cast(y_true, tf.float32)
    y_pred = tf.clip_by_value(tf.cast(y_pred, tf.float32), 0.0, 1.0)
    return tf.image.psnr(y_pred, y_true, max_val=1.0)


def skimage_photos() -> list[np.ndarray]:
    """The :data:`SKIMAGE_PHOTOS` as float32 RGB arrays in [0, 1] (needs scikit-image)."""
    try:
        from skimage import data as skdata
    except ImportError as exc:
        message = "data.clean: skimage needs scikit-image (pip install scikit-image)"
        raise ImportError(message) from exc
    return [getattr(skdata, name)()[..., :3].astype(np.float32) / 255.0 for name in SKIMAGE_PHOTOS]


def _dataset(data: Mapping[str, Any], seed: int) -> tf.data.Dataset:
    from tfderain.data import pipeline

    if data["source"] == "synthetic":
        clean = skimage_photos() if data["clean"] == "skimage" else str(data["clean"])
        return pipeline.synthetic_dataset(
            clean,
            patch_size=data["patch_size"],
            batch_size=data["batch_size"],
            seed=seed,
            augment=data["augment"],
        )
    return pipeline.paired_dataset(
        str(data["source"]),
        patch_size=data["patch_size"],
        batch_size=data["batch_size"],
        seed=seed,
        augment=data["augment"],
        repeat=True,
        shuffle=data["shuffle"],
        cache=data["cache"],
    )


def _loss_table(config: Mapping[str, Any], outputs: Sequence[str]) -> dict[str, keras.losses.Loss]:
    spec = config["loss"]
    if isinstance(spec, str) or (isinstance(spec, Mapping) and "name" in spec):
        spec = {"derained": spec}
    if not isinstance(spec, Mapping) or not spec:
        raise ValueError("loss must be a loss name or a mapping {output: loss}")
    table = {}
    for output, item in spec.items():
        if output not in outputs:
            raise ValueError(f"loss on unknown output {output!r}; outputs: {', '.join(outputs)}")
        if isinstance(item, str):
            table[output] = losses.get(item)
        else:
            kwargs = dict(item)
            table[output] = losses.get(kwargs.pop("name"), **kwargs)
    unknown = sorted(set(config["loss_weights"]) - set(table))
    if unknown:
        raise ValueError(f"loss_weights for output(s) without a loss: {', '.join(unknown)}")
    return table


# --------------------------------------------------------------------------------------------
# Callbacks
# --------------------------------------------------------------------------------------------


def _scalar_metadata() -> Any:
    from tensorflow.core.framework import summary_pb2

    meta = summary_pb2.SummaryMetadata()
    meta.plugin_data.plugin_name = "scalars"
    return meta


def _image_metadata(description: str) -> Any:
    from tensorflow.core.framework import summary_pb2

    meta = summary_pb2.SummaryMetadata(summary_description=description)
    meta.plugin_data.plugin_name = "images"
    return meta


class LearningRateLogger(keras.callbacks.Callback):
    """Adds ``learning_rate`` to the epoch logs: the rate the epoch's last step used."""

    def __init__(self, schedule: keras.optimizers.schedules.LearningRateSchedule) -> None:
        super().__init__()
        self.schedule = schedule

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            step = max(int(self.model.optimizer.iterations) - 1, 0)
            logs["learning_rate"] = float(self.schedule(step))


class SummaryLogger(keras.callbacks.Callback):
    """TensorBoard scalars (``epoch_*``, ``batch_*``) and sample panels (``samples``).

    Each sample image is ``rainy | derained | clean`` side by side; ``derained`` is clamped to
    [0, 1] for display. Scalars every epoch and, if ``scalars_every`` is a number, every that many
    steps; samples at the end of each epoch or every ``images_every`` steps.
    """

    def __init__(
        self,
        log_dir: Path,
        samples: tuple[np.ndarray, np.ndarray],
        schedule: keras.optimizers.schedules.LearningRateSchedule,
        scalars_every: str | int = "epoch",
        images_every: str | int = "epoch",
    ) -> None:
        super().__init__()
        self.log_dir = Path(log_dir)
        self.rainy, self.clean = samples
        self.schedule = schedule
        self.scalars_every = scalars_every
        self.images_every = images_every
        self._writer: Any = None

    def _implements_train_batch_hooks(self) -> bool:
        return self.scalars_every != "epoch" or self.images_every != "epoch"

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._writer = tf.summary.create_file_writer(str(self.log_dir / "train"))

    def _scalars(self, prefix: str, logs: Mapping[str, Any], step: int) -> None:
        with self._writer.as_default():
            for name, value in logs.items():
                value = tf.cast(tf.reshape(value, ()), tf.float32)
                tf.summary.write(f"{prefix}{name}", value, step=step, metadata=_scalar_metadata())

    def _images(self, step: int) -> None:
        derained = self.model(self.rainy, training=False)["derained"]
        derained = tf.clip_by_value(tf.cast(derained, tf.float32), 0.0, 1.0)
        panels = tf.concat([self.rainy, derained, self.clean], axis=2)
        panels = tf.image.convert_image_dtype(panels, tf.uint8, saturate=True)
        height, width = int(panels.shape[1]), int(panels.shape[2])
        encoded = [tf.image.encode_png(p) for p in tf.unstack(panels)]
        tensor = tf.stack([tf.as_string(width), tf.as_string(height), *encoded])
        meta = _image_metadata("rainy | derained | clean")
        with self._writer.as_default():
            tf.summary.write("samples", tensor, step=step, metadata=meta)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        step = int(self.model.optimizer.iterations)
        if self.scalars_every != "epoch" and step % self.scalars_every == 0 and logs:
            scalars = dict(logs)
            scalars["learning_rate"] = float(self.schedule(step - 1))
            self._scalars("batch_", scalars, step)
        if self.images_every != "epoch" and step % self.images_every == 0:
            self._images(step)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._scalars("epoch_", logs or {}, epoch)
        if self.images_every == "epoch":
            self._images(int(self.model.optimizer.iterations))
        self._writer.flush()

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._writer is not None:
            self._writer.close()


class RunState(keras.callbacks.Callback):
    """Keeps ``state.json``: epochs done, best loss, and the epoch each start began at."""

    def __init__(self, path: Path, monitor: str = "loss") -> None:
        super().__init__()
        self.path = Path(path)
        self.monitor = monitor
        self.state = read_state(self.path)
        self._session_started = False

    def _write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=1))
        os.replace(tmp, self.path)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if not self._session_started:
            self._session_started = True
            self.state["sessions"].append({"initial_epoch": epoch, "started": time.time()})
            self.state["complete"] = False
            if epoch > 0:
                print(f"Resuming from the backup: epoch {epoch + 1}", flush=True)
            self._write()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.state["epochs_done"] = epoch + 1
        value = (logs or {}).get(self.monitor)
        if value is not None and math.isfinite(float(value)):
            best = self.state.get("best")
            if best is None or float(value) < best:
                self.state["best"] = float(value)
        self._write()


def read_state(path: str | os.PathLike) -> dict[str, Any]:
    """The ``state.json`` of a run folder (or a fresh state)."""
    path = Path(path)
    if path.is_file():
        return json.loads(path.read_text())
    return {"epochs_done": 0, "best": None, "complete": False, "sessions": []}


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


@dataclass
class TrainResult:
    """What :func:`train` did."""

    run_dir: Path
    model_path: Path
    history: dict[str, list[float]] = field(default_factory=dict)
    initial_epoch: int = 0
    already_complete: bool = False


def _verbosity(setting: Any) -> int:
    if setting == "auto":
        return 1 if sys.stdout.isatty() else 2
    return int(setting)


def _first_batch(pairs: tf.data.Dataset, count: int) -> tuple[np.ndarray, np.ndarray]:
    rainy, targets = next(iter(pairs.take(1)))
    return rainy[:count].numpy(), targets["derained"][:count].numpy()


def _named_outputs(model: keras.Model) -> keras.Model:
    """``model`` (sharing its layers) with each output's last layer named like its dict key.

    Keras names per-output losses and metrics after the output's last layer (``stage6_out``);
    an identity layer named ``derained`` makes the logs read ``derained_loss``, ``derained_psnr``.
    """
    taken = {layer.name for layer in model.layers}
    outputs = {}
    for key, tensor in model.output.items():
        if tensor._keras_history.layer.name == key or key in taken:  # noqa: SLF001
            outputs[key] = tensor
        else:
            outputs[key] = keras.layers.Activation("linear", dtype="float32", name=key)(tensor)
    return keras.Model(model.input, outputs, name=model.name)


def _float32_copy(model: keras.Model) -> keras.Model:
    """The same model built under the float32 policy, with the trained weights."""
    arch = model._tfderain_arch  # noqa: SLF001
    config = model._tfderain_config  # noqa: SLF001
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        clean = models.build(arch, **config)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    clean.set_weights([np.asarray(w, np.float32) for w in model.get_weights()])
    return clean


def train(config: Mapping[str, Any], dataset: tf.data.Dataset | None = None) -> TrainResult:
    """Train the model described by ``config`` (a :func:`load_config` result).

    Args:
        config: the full config; see :data:`DEFAULTS`.
        dataset: optional replacement for the configured data: a ``tf.data.Dataset`` of dicts
            ``{"rainy", "clean", "density"}`` as :mod:`tfderain.data.pipeline` yields (e.g. a
            fixed batch repeated). It must be endless or long enough for all epochs.

    Returns:
        a :class:`TrainResult`; the final float32 model is at ``result.model_path``.
    """
    from tfderain import saving
    from tfderain.data import pipeline

    config = copy.deepcopy(dict(config))
    _validate(config)
    name = config["model"]["name"]
    run_dir = Path(config["output_dir"] or Path("runs") / name)
    run_dir.mkdir(parents=True, exist_ok=True)
    model_path = run_dir / "model.keras"
    state_path = run_dir / "state.json"
    state = read_state(state_path)
    if state.get("complete") and model_path.is_file():
        print(f"{run_dir}: run already complete ({state['epochs_done']} epochs); nothing to do")
        return TrainResult(run_dir, model_path, {}, state["epochs_done"], already_complete=True)
    _write_config(run_dir / "config.yaml", config)

    keras.utils.set_random_seed(int(config["seed"]))
    if config["deterministic"]:
        tf.config.experimental.enable_op_determinism()

    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(config["precision"])
    try:
        model = models.build(name, **config["model"]["config"])
        outputs = models.spec(name).outputs
        loss_table = _loss_table(config, outputs)
        weights = {k: float(config["loss_weights"].get(k, 1.0)) for k in loss_table}
        stages = None
        if "stages" in loss_table:
            stages = int(model.output["stages"].shape[1])

        source = dataset if dataset is not None else _dataset(config["data"], config["seed"])
        # "derained" always gets its target: the PSNR metric and the sample images read it, also
        # when the loss is on other outputs only (MPRNet's loss is on "stages").
        targets = tuple(dict.fromkeys(["derained", *loss_table]))
        pairs = pipeline.as_training_pairs(source, outputs=targets, stages=stages)

        opt = config["optimizer"]
        schedule = MultiStepDecay(
            opt["learning_rate"],
            config["schedule"]["milestones"],
            config["schedule"]["gamma"],
            config["steps_per_epoch"],
        )
        optimizer = keras.optimizers.Adam(
            learning_rate=schedule,
            beta_1=opt["beta_1"],
            beta_2=opt["beta_2"],
            epsilon=opt["epsilon"],
            clipnorm=opt["clipnorm"],
            global_clipnorm=opt["global_clipnorm"],
        )
        fit_model = _named_outputs(model)
        fit_model.compile(
            optimizer=optimizer,
            loss=loss_table,
            loss_weights=weights,
            metrics={"derained": [psnr]},
            jit_compile=bool(config["jit"]),
        )

        log = config["logging"]
        samples = _first_batch(pairs, int(log["num_images"]))
        ckpt_dir = run_dir / "checkpoints"
        ckpt_dir.mkdir(exist_ok=True)
        best = state.get("best")
        callbacks = [
            LearningRateLogger(schedule),
            keras.callbacks.CSVLogger(str(run_dir / "log.csv"), append=True),
            keras.callbacks.ModelCheckpoint(
                str(ckpt_dir / "last.weights.h5"), save_weights_only=True, verbose=0
            ),
            keras.callbacks.ModelCheckpoint(
                str(ckpt_dir / "best.weights.h5"),
                monitor="loss",
                mode="min",
                save_best_only=True,
                save_weights_only=True,
                initial_value_threshold=best,
                verbose=0,
            ),
            SummaryLogger(
                run_dir / "tb",
                samples,
                schedule,
                scalars_every=_every(log["scalars_every"], "logging.scalars_every"),
                images_every=_every(log["images_every"], "logging.images_every"),
            ),
            RunState(state_path),
            # Last, so that everything above has recorded an epoch before it is backed up.
            keras.callbacks.BackupAndRestore(
                backup_dir=str(run_dir / "backup"),
                save_freq=_every(log["backup_every"], "logging.backup_every"),
                delete_checkpoint=True,
            ),
        ]
        print(
            f"Training {name} ({model.count_params():,} parameters, {config['precision']}) "
            f"for {config['epochs']} epochs x {config['steps_per_epoch']} steps in {run_dir}",
            flush=True,
        )
        history = fit_model.fit(
            pairs,
            epochs=config["epochs"],
            steps_per_epoch=config["steps_per_epoch"],
            callbacks=callbacks,
            verbose=_verbosity(log["verbose"]),
        )
        final = model if config["precision"] == "float32" else _float32_copy(model)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)

    saving.save_model(final, model_path)
    state = read_state(state_path)
    state["complete"] = True
    state_path.write_text(json.dumps(state, indent=1))
    sessions = state.get("sessions") or [{"initial_epoch": 0}]
    print(f"Saved {model_path}", flush=True)
    return TrainResult(
        run_dir,
        model_path,
        {k: [float(v) for v in vs] for k, vs in history.history.items()},
        int(sessions[-1]["initial_epoch"]),
    )


def _write_config(path: Path, config: Mapping[str, Any]) -> None:
    text = yaml.safe_dump(dict(config), sort_keys=False)
    if path.is_file() and path.read_text() != text:
        print(f"note: {path} differs from this start's config; overwriting it", flush=True)
    path.write_text(text)


def read_log(run_dir: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of a run's ``log.csv``."""
    with open(Path(run_dir) / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``train`` options to ``parser`` (shared by ``training/train.py`` and the CLI)."""
    parser.add_argument("--config", required=True, help="YAML recipe, e.g. training/configs/…")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (dotted, value parsed as YAML); repeatable",
    )
    parser.add_argument("--output-dir", help="run folder (same as --set output_dir=...)")
    parser.add_argument("--precision", choices=PRECISIONS, help="Keras mixed-precision policy")
    parser.add_argument("--jit", action="store_true", default=None, help="XLA-compile the step")
    parser.add_argument(
        "--deterministic",
        action="store_true",
        default=None,
        help="tf.config.experimental.enable_op_determinism() (slower)",
    )
    return parser


def run_from_args(args: argparse.Namespace) -> TrainResult:
    """Load the config named by parsed :func:`add_arguments` options and train."""
    overrides = list(args.overrides)
    if args.output_dir is not None:
        overrides.append(f"output_dir={json.dumps(str(args.output_dir))}")
    for key in ("precision", "jit", "deterministic"):
        value = getattr(args, key)
        if value is not None:
            overrides.append(f"{key}={json.dumps(value)}")
    return train(load_config(args.config, overrides))


def main(argv: Sequence[str] | None = None) -> int:
    """``python training/train.py --config ... [--set key=value ...]``."""
    parser = add_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    run_from_args(parser.parse_args(argv))
    return 0
