"""The trainer: ``model.fit`` on a config, with resume, mixed precision, XLA, devices and the
run folder described in :mod:`tfderain.training`."""

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

from tfderain import distribute, models, schedules
from tfderain._keras import keras, tf
from tfderain.callbacks import (
    LearningRateLogger,
    RunState,
    SummaryLogger,
    Validation,
    read_state,
    write_json,
)
from tfderain.training import wiring
from tfderain.training.config import every, validate

__all__ = ["TrainResult", "read_log", "resume_step", "train"]


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
    validate(config)
    init = _initial_weights(config["model"])
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
            if init is not None:  # fine-tuning; a resumed run then restores its own backup
                model.load_weights(os.fspath(init))
                print(f"Fine-tuning from the weights of {init}", flush=True)
            outputs = models.spec(name).outputs
            loss_table = wiring.loss_table(config, outputs)
            weights = {k: float(config["loss_weights"].get(k, 1.0)) for k in loss_table}
            schedule = schedules.from_config(
                config["schedule"], config["optimizer"]["learning_rate"], steps_per_epoch
            )
            fit_model = _named_outputs(model)
            fit_model.compile(
                optimizer=_optimizer(config, schedule),
                loss=loss_table,
                loss_weights=weights,
                metrics={"derained": [wiring.psnr]},
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
                source = wiring.dataset(config["data"], config["seed"], start, shards)
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


def _initial_weights(model: dict[str, Any]) -> Path | None:
    """The ``.keras`` file of ``model.init`` (a preset is downloaded and converted on first use),
    after checking its architecture and taking its config into ``model.config``."""
    from tfderain import presets, saving

    init = model.get("init")
    if init is None:
        return None
    path = presets.resolve(init) if presets.is_preset_name(init) else Path(init)
    meta = saving.read_metadata(path)
    if meta["arch"] != model["name"]:
        raise ValueError(
            f"model.init {init}: holds a {meta['arch']!r} model, not {model['name']!r} "
            f"(set model.name={meta['arch']})"
        )
    clash = sorted(k for k, v in model["config"].items() if meta["config"].get(k, v) != v)
    if clash:
        raise ValueError(f"model.init {init}: its weights fix {', '.join(clash)} differently")
    model["config"] = dict(meta["config"])
    return path


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
                every(val["every"], "validation.every"),
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
            scalars_every=every(log["scalars_every"], "logging.scalars_every"),
            images_every=every(log["images_every"], "logging.images_every"),
        ),
        RunState(run_dir / "state.json"),
        # Last, so that everything above has recorded an epoch before it is backed up.
        keras.callbacks.BackupAndRestore(
            backup_dir=str(backup_dir),
            save_freq=every(log["backup_every"], "logging.backup_every"),
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
