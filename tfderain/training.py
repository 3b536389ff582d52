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

import copy
import csv
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tfderain import distribute, losses, models, schedules
from tfderain._keras import keras, tf
from tfderain.callbacks import (
    LearningRateLogger,
    RunState,
    SummaryLogger,
    Validation,
    read_state,
    write_json,
)
from tfderain.schedules import MultiStepDecay

__all__ = [
    "DEFAULTS",
    "SKIMAGE_PHOTOS",
    "MultiStepDecay",
    "TrainResult",
    "apply_overrides",
    "load_config",
    "read_log",
    "read_state",
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
        # Progressive patches: a list of {iterations, patch_size, batch_size} phases run one after
        # the other (the last one until the end), replacing patch_size and batch_size.
        "progressive": None,
    },
    # One loss name for "derained", or {output: name | {name: ..., **kwargs}}; other outputs get
    # no loss unless listed.
    "loss": "negative_ssim",
    "loss_weights": {},  # {output: weight}; missing outputs with a loss weigh 1
    "optimizer": {
        "name": "adam",  # adam | adamw (decoupled weight decay, as torch.optim.AdamW)
        "learning_rate": 1.0e-3,
        "beta_1": 0.9,
        "beta_2": 0.999,
        "epsilon": 1.0e-8,
        "weight_decay": None,  # adamw only
        "clipnorm": None,  # clip each variable's gradient to this norm (Keras clipnorm)
        # clip all gradients together to this global norm, as torch.nn.utils.clip_grad_norm_
        "global_clipnorm": None,
    },
    # tfderain.schedules: multistep (milestones, gamma), cosine (period, warmup,
    # min_learning_rate) or cyclic_cosine (periods, eta_mins, restart_weights); "unit" says whether
    # milestones/period/warmup count epochs (default) or steps.
    "schedule": {"name": "multistep", "milestones": [30, 50, 80], "gamma": 0.2},
    "epochs": 100,
    "steps_per_epoch": 1045,
    "seed": 0,
    "output_dir": None,  # default runs/<model name>
    "precision": "float32",  # float32 | mixed_float16 | mixed_bfloat16
    "jit": False,
    "deterministic": False,
    # tfderain.distribute: default | mirrored | multiworker; cpu_devices splits the CPU into that
    # many logical devices (to try mirrored training without GPUs).
    "distribute": {"strategy": "default", "cpu_devices": None},
    # PSNR/SSIM on a folder of pairs every N steps or each epoch; best weights kept.
    "validation": {"source": None, "every": "epoch", "protocol": "B", "max_images": None},
    "logging": {
        "scalars_every": "epoch",  # "epoch" or N steps (batch_* scalars every N steps)
        "images_every": "epoch",  # "epoch" or N steps
        "num_images": 4,
        "backup_every": "epoch",  # "epoch" or N steps
        "verbose": "auto",  # Keras fit verbosity; auto = progress bar on a terminal
    },
}

_FREE_FORM = {("model", "config"), ("loss",), ("loss_weights",), ("schedule",)}
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
        replaces = where == ("schedule",) and isinstance(value, Mapping) and "name" in value
        if replaces and value["name"] != base[key].get("name", "multistep"):
            base[key] = copy.deepcopy(dict(value))  # another kind of schedule: no default keys
        elif isinstance(base.get(key), dict) and isinstance(value, Mapping):
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
    if config["optimizer"]["name"].lower() not in ("adam", "adamw"):
        raise ValueError("optimizer.name must be adam or adamw")
    for key in ("scalars_every", "images_every", "backup_every"):
        _every(config["logging"][key], f"logging.{key}")
    _every(config["validation"]["every"], "validation.every")
    if config["validation"]["protocol"] not in ("A", "B"):
        raise ValueError("validation.protocol must be A or B")
    if config["distribute"]["strategy"] not in distribute.STRATEGIES:
        raise ValueError(f"distribute.strategy must be one of {', '.join(distribute.STRATEGIES)}")
    for phase in config["data"]["progressive"] or ():
        keys = {"iterations", "patch_size", "batch_size"}
        if not isinstance(phase, Mapping) or set(phase) != keys:
            raise ValueError(f"each data.progressive phase needs exactly {sorted(keys)}: {phase}")


# --------------------------------------------------------------------------------------------
# Learning rate, metric, data
# --------------------------------------------------------------------------------------------


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


def _source(
    data: Mapping[str, Any], seed: int, patch: int, batch: int, start: int, shards: tuple[int, int]
) -> tf.data.Dataset:
    """One configured pipeline: global batches ``start, start + 1, ...`` of shard ``shards[1]``."""
    from tfderain.data import pipeline

    common = dict(
        patch_size=patch,
        batch_size=batch,
        seed=seed,
        augment=data["augment"],
        start_batch=start,
        num_shards=shards[0],
        shard_index=shards[1],
    )
    if data["source"] == "synthetic":
        clean = skimage_photos() if data["clean"] == "skimage" else str(data["clean"])
        return pipeline.synthetic_dataset(clean, **common)
    source = data["source"]
    source = [str(s) for s in source] if isinstance(source, (list, tuple)) else str(source)
    return pipeline.paired_dataset(
        source, repeat=True, shuffle=data["shuffle"], cache=data["cache"], **common
    )


#: Seed offset between the phases of progressive training (each phase has its own stream).
PHASE_SEED_STRIDE = 7919


def _dataset(
    data: Mapping[str, Any], seed: int, start_step: int = 0, shards: tuple[int, int] = (1, 0)
) -> tf.data.Dataset:
    """The configured training batches from step ``start_step`` on, progressive phases included.

    Batch ``s`` is a pure function of the config and ``s``, so a run resumed at step ``s`` sees
    what an uninterrupted run would have seen. Phase ``k`` of ``data.progressive`` draws from its
    own stream (seed ``seed + k * PHASE_SEED_STRIDE``), starting at its first batch.
    """
    phases = data["progressive"] or [
        {"iterations": None, "patch_size": data["patch_size"], "batch_size": data["batch_size"]}
    ]
    parts, begin = [], 0
    for k, phase in enumerate(phases):
        end = None if k == len(phases) - 1 else begin + int(phase["iterations"])
        if end is None or start_step < end:
            first = max(start_step, begin)
            ds = _source(
                data,
                seed + k * PHASE_SEED_STRIDE,
                int(phase["patch_size"]),
                int(phase["batch_size"]),
                first - begin,
                shards,
            )
            parts.append(ds if end is None else ds.take(end - first))
        begin = end if end is not None else begin
    stream = parts[0]
    for part in parts[1:]:
        stream = stream.concatenate(part)
    return stream


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


def resume_step(backup_dir: Path, steps_per_epoch: int) -> int:
    """The step a run continues at from the ``BackupAndRestore`` checkpoint in ``backup_dir``.

    Mirrors what ``model.fit`` does when it restores the backup: a backup taken after batch ``b``
    of epoch ``e`` resumes at batch ``b + 1`` (the next epoch after its last batch); an epoch-end
    backup resumes at the next epoch. 0 when there is no backup.
    """
    latest = tf.train.latest_checkpoint(str(backup_dir / "chief"))
    if latest is None:
        return 0
    reader = tf.train.load_checkpoint(latest)
    epoch = int(reader.get_tensor("ckpt_saved_epoch/.ATTRIBUTES/VARIABLE_VALUE"))
    batch = int(reader.get_tensor("ckpt_saved_batch/.ATTRIBUTES/VARIABLE_VALUE"))
    if batch >= 0:
        return (
            (epoch + 1) * steps_per_epoch
            if batch == steps_per_epoch - 1
            else (epoch * steps_per_epoch + batch + 1)
        )
    return (epoch + 1) * steps_per_epoch if epoch >= 0 else 0


def _optimizer(config: Mapping[str, Any], schedule: Any) -> keras.optimizers.Optimizer:
    opt = config["optimizer"]
    common = dict(
        learning_rate=schedule,
        beta_1=opt["beta_1"],
        beta_2=opt["beta_2"],
        epsilon=opt["epsilon"],
        clipnorm=opt["clipnorm"],
        global_clipnorm=opt["global_clipnorm"],
    )
    if opt["name"].lower() == "adamw":
        return keras.optimizers.AdamW(weight_decay=opt["weight_decay"] or 0.0, **common)
    if opt["weight_decay"]:
        raise ValueError("optimizer.weight_decay needs optimizer.name: adamw")
    return keras.optimizers.Adam(**common)


def train(
    config: Mapping[str, Any],
    dataset: tf.data.Dataset | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> TrainResult:
    """Train the model described by ``config`` (a :func:`load_config` result).

    Args:
        config: the full config; see :data:`DEFAULTS`.
        dataset: optional replacement for the configured data: a ``tf.data.Dataset`` of dicts
            ``{"rainy", "clean", "density"}`` as :mod:`tfderain.data.pipeline` yields (e.g. a
            fixed batch repeated). It must be endless or long enough for all epochs; a resumed
            run skips the batches already trained on.
        callbacks: extra Keras callbacks, run after the built-in ones.

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
    if read_state(run_dir / "state.json").get("complete") and (run_dir / "model.keras").is_file():
        done = read_state(run_dir / "state.json")["epochs_done"]
        print(f"{run_dir}: run already complete ({done} epochs); nothing to do")
        return TrainResult(run_dir, run_dir / "model.keras", {}, done, already_complete=True)

    # The strategy comes first: it may need to configure devices before anything runs.
    dist = config["distribute"]
    strategy = distribute.make_strategy(dist["strategy"], dist["cpu_devices"])
    worker = distribute.workers(strategy)
    backup_dir = run_dir / "backup"  # shared: Keras lets only the chief write it
    if not worker.is_chief:  # the other workers keep their files apart
        run_dir = run_dir / "workers" / str(worker.index)
        run_dir.mkdir(parents=True, exist_ok=True)
    model_path = run_dir / "model.keras"
    state_path = run_dir / "state.json"
    state = read_state(state_path)
    _write_config(run_dir / "config.yaml", config)

    keras.utils.set_random_seed(int(config["seed"]))
    if config["deterministic"]:
        tf.config.experimental.enable_op_determinism()

    steps_per_epoch = config["steps_per_epoch"]
    start_step = resume_step(backup_dir, steps_per_epoch)
    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(config["precision"])
    try:
        with strategy.scope():
            model = models.build(name, **config["model"]["config"])
            outputs = models.spec(name).outputs
            loss_table = _loss_table(config, outputs)
            weights = {k: float(config["loss_weights"].get(k, 1.0)) for k in loss_table}
            schedule = schedules.from_config(
                config["schedule"], config["optimizer"]["learning_rate"], steps_per_epoch
            )
            fit_model = _named_outputs(model)
            fit_model.compile(
                optimizer=_optimizer(config, schedule),
                loss=loss_table,
                loss_weights=weights,
                metrics={"derained": [psnr]},
                jit_compile=bool(config["jit"]),
            )
        stages = int(model.output["stages"].shape[1]) if "stages" in loss_table else None
        # "derained" always gets its target: the PSNR metric and the sample images read it, also
        # when the loss is on other outputs only (MPRNet's loss is on "stages").
        targets = tuple(dict.fromkeys(["derained", *loss_table]))

        def pairs_from(start: int, shards: tuple[int, int] = (1, 0)) -> tf.data.Dataset:
            if dataset is not None:
                source = dataset.skip(start) if start else dataset
            else:
                source = _dataset(config["data"], config["seed"], start, shards)
            return pipeline.as_training_pairs(source, outputs=targets, stages=stages)

        data = distribute.distributed_dataset(
            strategy, lambda count, index: pairs_from(start_step, (count, index))
        )
        log = config["logging"]
        samples = _first_batch(pairs_from(0), int(log["num_images"]))
        history = fit_model.fit(
            data,
            epochs=config["epochs"],
            steps_per_epoch=steps_per_epoch,
            callbacks=[
                *_callbacks(
                    config,
                    run_dir,
                    backup_dir,
                    state,
                    model,
                    samples,
                    schedule,
                    strategy.num_replicas_in_sync,
                ),
                *callbacks,
            ],
            verbose=_verbosity(log["verbose"]) if worker.is_chief else 0,
        )
        final = models.float32_copy(model)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)

    saving.save_model(final, model_path)
    state = read_state(state_path)
    state["complete"] = True
    write_json(state_path, state)
    sessions = state.get("sessions") or [{"initial_epoch": 0}]
    print(f"Saved {model_path}", flush=True)
    return TrainResult(
        run_dir,
        model_path,
        {k: [float(v) for v in vs] for k, vs in history.history.items()},
        int(sessions[-1]["initial_epoch"]),
    )


def _callbacks(
    config: Mapping[str, Any],
    run_dir: Path,
    backup_dir: Path,
    state: Mapping[str, Any],
    model: keras.Model,
    samples: tuple[np.ndarray, np.ndarray],
    schedule: Any,
    replicas: int,
) -> list[keras.callbacks.Callback]:
    """The built-in callbacks of a run, in the order they must run at the end of an epoch."""
    log = config["logging"]
    ckpt_dir = run_dir / "checkpoints"
    ckpt_dir.mkdir(exist_ok=True)
    name = config["model"]["name"]
    print(
        f"Training {name} ({model.count_params():,} parameters, {config['precision']}) "
        f"for {config['epochs']} epochs x {config['steps_per_epoch']} steps in {run_dir}; "
        f"{config['distribute']['strategy']} strategy, {replicas} replica(s)",
        flush=True,
    )
    found = []
    val = config["validation"]
    if val["source"] is not None:  # first: it adds val_psnr / val_ssim to the epoch logs
        found.append(
            Validation(
                model,
                models.spec(name),
                val["source"],
                _every(val["every"], "validation.every"),
                run_dir,
                ckpt_dir / "best_val.weights.h5",
                protocol=val["protocol"],
                max_images=val["max_images"],
            )
        )
    found += [
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
            initial_value_threshold=state.get("best"),
            verbose=0,
        ),
        SummaryLogger(
            run_dir / "tb",
            samples,
            schedule,
            scalars_every=_every(log["scalars_every"], "logging.scalars_every"),
            images_every=_every(log["images_every"], "logging.images_every"),
        ),
        RunState(run_dir / "state.json"),
        # Last, so that everything above has recorded an epoch before it is backed up.
        keras.callbacks.BackupAndRestore(
            backup_dir=str(backup_dir),
            save_freq=_every(log["backup_every"], "logging.backup_every"),
            delete_checkpoint=True,
        ),
    ]
    return found


def _write_config(path: Path, config: Mapping[str, Any]) -> None:
    text = yaml.safe_dump(dict(config), sort_keys=False)
    if path.is_file() and path.read_text() != text:
        print(f"note: {path} differs from this start's config; overwriting it", flush=True)
    path.write_text(text)


def read_log(run_dir: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of a run's ``log.csv``."""
    with open(Path(run_dir) / "log.csv", newline="") as f:
        return list(csv.DictReader(f))
