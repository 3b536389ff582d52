"""The training config: every key with its default (:data:`DEFAULTS`), YAML recipes merged over
them, ``--set key.sub=value`` overrides, and the checks a config must pass before training.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tfderain import distribute, metrics

__all__ = ["DEFAULTS", "PRECISIONS", "apply_overrides", "every", "load_config", "validate"]

#: Every config key with its default. ``model.config``, ``loss`` and ``loss_weights`` are free-form
#: (checked against the model and the loss registry); all other keys must be listed here.
DEFAULTS: dict[str, Any] = {
    "model": {
        "name": "prenet",  # registry name (tfderain models)
        "config": {},  # builder kwargs; empty = the paper config
        # fine-tuning: a tfderain .keras file or a preset name (e.g. prenet:rain100h) whose weights
        # start the run; its architecture must be model.name, its config is the model's
        "init": None,
    },
    "data": {
        # "synthetic" (rain rendered on clean photos), or a folder of rainy/clean pairs
        "source": "synthetic",
        # synthetic only: "skimage" (scikit-image's bundled CC0/public-domain photos) or a folder
        "clean": "skimage",
        "patch_size": 100,
        "batch_size": 18,
        "augment": True,  # random flips and 90-degree rotations
        # synthetic only: [lo, hi] pixels (hi null: the photo's own) for the photo's long side,
        # log-uniform (tfderain.data.synthetic_dataset); null: downsampled by 0.5 to 1
        "size_range": None,
        # synthetic only: rain styles of tfderain.data.synthetic, one drawn per patch
        "styles": ["mixed"],
        # synthetic only: true keeps the rain accumulation (veil) in the clean target, so the
        # model removes streaks and keeps the scene's brightness; false removes it too
        "keep_veil": False,
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


def every(value: Any, key: str) -> str | int:
    if value == "epoch":
        return "epoch"
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise ValueError(f"{key} must be 'epoch' or a positive number of steps, got {value!r}")


def validate(config: dict[str, Any]) -> None:
    if config["precision"] not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
    for key in ("epochs", "steps_per_epoch"):
        if not isinstance(config[key], int) or config[key] < 1:
            raise ValueError(f"{key} must be a positive integer, got {config[key]!r}")
    if config["optimizer"]["name"].lower() not in ("adam", "adamw"):
        raise ValueError("optimizer.name must be adam or adamw")
    for key in ("scalars_every", "images_every", "backup_every"):
        every(config["logging"][key], f"logging.{key}")
    every(config["validation"]["every"], "validation.every")
    if config["validation"]["protocol"] not in metrics.PROTOCOLS:
        raise ValueError(f"validation.protocol must be one of {', '.join(metrics.PROTOCOLS)}")
    if config["distribute"]["strategy"] not in distribute.STRATEGIES:
        raise ValueError(f"distribute.strategy must be one of {', '.join(distribute.STRATEGIES)}")
    for phase in config["data"]["progressive"] or ():
        keys = {"iterations", "patch_size", "batch_size"}
        if not isinstance(phase, Mapping) or set(phase) != keys:
            raise ValueError(f"each data.progressive phase needs exactly {sorted(keys)}: {phase}")
