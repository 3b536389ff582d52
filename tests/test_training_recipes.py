"""Specification of tfderain/configs/*.yaml: every recipe loads, holds the official numbers, and
trains one step of a reduced model with a finite loss."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from tiny_models import TINY_MODELS

from tfderain import models, schedules, training
from tfderain._keras import keras, tf
from tfderain.training import trainer

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / "tfderain" / "configs"
CONFIGS = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))

#: Models whose recipe is smoke-tested on a size-agnostic / derain-only variant.
SMOKE_VARIANT = {"crdnet": "crdnet_anysize", "didmdn": "didmdn_derain"}


def _smoke_config(name: str, run_dir: Path) -> dict[str, Any]:
    """The recipe ``name`` loaded as the trainer does, reduced to one tiny training step."""
    config = training.load_config(
        CONFIG_DIR / f"{name}.yaml",
        [
            "epochs=1",
            "steps_per_epoch=1",
            "logging.scalars_every=epoch",
            "logging.images_every=epoch",
            "logging.backup_every=epoch",
            "logging.num_images=1",
            "logging.verbose=0",
            f"output_dir={run_dir}",
        ],
    )
    arch = SMOKE_VARIANT.get(config["model"]["name"], config["model"]["name"])
    outputs = models.spec(arch).outputs
    if isinstance(config["loss"], dict) and "name" not in config["loss"]:
        config["loss"] = {k: v for k, v in config["loss"].items() if k in outputs}
        config["loss_weights"] = {k: v for k, v in config["loss_weights"].items() if k in outputs}
    tiny, patch = TINY_MODELS[arch]
    config["model"] = {"name": arch, "config": tiny}
    config["data"]["patch_size"] = patch
    config["data"]["batch_size"] = 1 if patch > 64 else 2
    return config


def _fixed_batches(patch: int, batch: int) -> tf.data.Dataset:
    """One smooth random batch (rain = bright vertical streaks), repeated; densities known."""
    rng = np.random.default_rng(0)
    coarse = tf.constant(rng.random((batch, 4, 4, 3)), tf.float32)
    clean = tf.image.resize(coarse, (patch, patch), method="bilinear").numpy()
    streaks = (rng.random((batch, 1, patch, 1)) < 0.15) * 0.4
    rainy = np.clip(clean + streaks, 0.0, 1.0).astype(np.float32)
    density = np.array([0.2, 0.8][:batch], np.float32)
    element = {"rainy": rainy, "clean": clean.astype(np.float32), "density": density}
    return tf.data.Dataset.from_tensors(element).repeat()


# --------------------------------------------------------------------------------- smoke tests


class _NoOp(keras.callbacks.Callback):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()


@pytest.fixture
def lean_training(monkeypatch):
    """``training.train`` without its file output, running the train step eagerly.

    The run machinery (checkpoints, backups, TensorBoard samples, the final ``.keras`` file, graph
    tracing) is specified by tests/test_training.py; replacing it here keeps the time of these
    tests on what the recipes themselves define: model, losses, targets, optimizer and schedule.
    """
    from tfderain import saving

    monkeypatch.setattr(trainer, "SummaryLogger", _NoOp)
    monkeypatch.setattr(keras.callbacks, "ModelCheckpoint", _NoOp)
    monkeypatch.setattr(keras.callbacks, "BackupAndRestore", _NoOp)
    monkeypatch.setattr(saving, "save_model", lambda model, path: Path(path))
    eager = tf.config.functions_run_eagerly()
    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(eager)


#: Histories of the smoke runs by reduced config, so that recipes that reduce to the same run
#: (crdnet and crdnet_anysize; didmdn and didmdn_derain) train once.
_RUNS: dict[str, dict[str, list[float]]] = {}


def _run_key(config: dict[str, Any]) -> str:
    config = {k: v for k, v in config.items() if k != "output_dir"}
    loss = config["loss"]
    outputs = loss if isinstance(loss, dict) and "name" not in loss else {"derained": loss}
    config["loss"] = outputs
    config["loss_weights"] = {k: float(config["loss_weights"].get(k, 1.0)) for k in outputs}
    return yaml.safe_dump(config, sort_keys=True)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Even though the `tf.config.experimental_run_functions_eagerly`")
@pytest.mark.parametrize("name", CONFIGS)
def test_recipe_trains_one_step_of_a_reduced_model_with_a_finite_loss(
    name, tmp_path, lean_training
):
    config = _smoke_config(name, tmp_path / "run")
    key = _run_key(config)
    if key not in _RUNS:
        data = config["data"]
        batches = _fixed_batches(data["patch_size"], data["batch_size"])
        _RUNS[key] = training.train(config, dataset=batches).history
    history = _RUNS[key]

    assert math.isfinite(history["loss"][0]), history
    losses = yaml.safe_load(key)["loss"]
    for output in losses:
        value = history[f"{output}_loss"][0] if len(losses) > 1 else history["loss"][0]
        assert math.isfinite(value), (output, history)
    psnr = history.get("derained_psnr", history.get("psnr"))  # "psnr" for one-output models
    assert psnr is not None and math.isfinite(psnr[0]), history


def test_every_registered_model_has_a_recipe_and_a_smoke_configuration():
    assert set(models.names()) <= set(CONFIGS)
    for name in CONFIGS:
        config = training.load_config(CONFIG_DIR / f"{name}.yaml")
        arch = SMOKE_VARIANT.get(config["model"]["name"], config["model"]["name"])
        assert arch in TINY_MODELS, name
        assert TINY_MODELS[arch][1] % models.spec(arch).multiple == 0


# --------------------------------------------------------------------------- official numbers

#: name: (learning rate, batch, patch, total iterations or None when per-epoch, milestones, gamma)
OFFICIAL = {
    "remaen": (1e-3, 32, 64, 40_000, [30], 0.1),
    "codenet": (8e-5, 8, 128, 250_000, [50, 100, 150, 200], 0.5),
    "mcodenet": (8e-5, 8, 128, 250_000, [50, 100, 150, 200], 0.5),
    "crdnet": (1e-4, 16, 512, None, [], 1.0),
    "crdnet_anysize": (1e-4, 16, 512, None, [], 1.0),
    "dtpnet": (1e-4, 4, 96, None, [31, 51, 81], 0.2),
    "pcnet": (4e-4, 32, 128, None, [59 + 60 * i for i in range(16)], 0.8),
    "mprnet": (2e-4, 16, 256, None, None, None),
    "restormer": (3e-4, 64, 128, 300_000, None, None),
    "didmdn": (2e-4, 1, 512, None, None, 0.5),
    "didmdn_derain": (2e-4, 1, 512, None, None, 0.5),
}


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_recipe_holds_the_official_training_numbers(name):
    config = training.load_config(CONFIG_DIR / f"{name}.yaml")
    lr, batch, patch, iterations, milestones, gamma = OFFICIAL[name]
    assert config["model"]["name"] == name
    assert config["optimizer"]["learning_rate"] == pytest.approx(lr)
    assert (config["data"]["batch_size"], config["data"]["patch_size"]) == (batch, patch)
    if iterations is not None:
        assert config["epochs"] * config["steps_per_epoch"] == iterations
    if milestones is not None:
        assert config["schedule"]["milestones"] == milestones
    if gamma is not None:
        assert config["schedule"]["gamma"] == gamma


def test_mprnet_recipe_warms_up_then_anneals_like_the_official_schedulers():
    config = training.load_config(CONFIG_DIR / "mprnet.yaml")
    steps = config["steps_per_epoch"]
    schedule = schedules.from_config(config["schedule"], 2e-4, steps)
    # GradualWarmupScheduler(multiplier=1, total_epoch=3), stepped once before epoch 1: epochs
    # 1, 2, 3 (0-based 0, 1, 2) use 2e-4 * 1/3, 2/3, 3/3.
    for epoch, factor in enumerate([1 / 3, 2 / 3, 1.0]):
        assert float(schedule(epoch * steps + 5)) == pytest.approx(2e-4 * factor, rel=1e-5)
    # Then CosineAnnealingLR(T_max=247, eta_min=1e-6) takes one step per epoch.
    for epoch in (3, 50, 125, 249):
        t = min(epoch - 2, 247)
        expected = 1e-6 + (2e-4 - 1e-6) * (1 + math.cos(math.pi * t / 247)) / 2
        assert float(schedule(epoch * steps)) == pytest.approx(expected, rel=1e-4)


def test_restormer_recipe_uses_adamw_progressive_patches_and_the_cyclic_cosine():
    config = training.load_config(CONFIG_DIR / "restormer.yaml")
    assert config["optimizer"]["name"] == "adamw"
    assert config["optimizer"]["weight_decay"] == pytest.approx(1e-4)
    phases = config["data"]["progressive"]
    assert [p["iterations"] for p in phases] == [92000, 64000, 48000, 36000, 36000, 24000]
    assert [p["patch_size"] for p in phases] == [128, 160, 192, 256, 320, 384]
    assert [p["batch_size"] for p in phases] == [8 * b for b in (8, 5, 4, 2, 1, 1)]
    assert sum(p["iterations"] for p in phases) == config["epochs"] * config["steps_per_epoch"]
    schedule = schedules.from_config(config["schedule"], 3e-4, config["steps_per_epoch"])
    # BasicSR steps the scheduler before iteration i = step + 1: flat 3e-4 through i = 92000,
    # then eta_min + (3e-4 - eta_min) * (1 + cos(pi * (i - 92000) / 208000)) / 2.
    assert float(schedule(0)) == pytest.approx(3e-4, rel=1e-6)
    assert float(schedule(91_999)) == pytest.approx(3e-4, rel=1e-6)
    for step in (92_000, 150_000, 250_000, 299_999):
        i = step + 1
        expected = 1e-6 + (3e-4 - 1e-6) * (1 + math.cos(math.pi * (i - 92_000) / 208_000)) / 2
        assert float(schedule(step)) == pytest.approx(expected, rel=1e-4, abs=1e-9)


def test_recipes_with_official_epoch_counts():
    epochs = {"crdnet": 1000, "dtpnet": 100, "pcnet": 1000, "mprnet": 250, "didmdn": 400}
    for name, count in epochs.items():
        assert training.load_config(CONFIG_DIR / f"{name}.yaml")["epochs"] == count, name


def test_torch_style_global_gradient_clipping_reaches_the_optimizer():
    codenet = training.load_config(CONFIG_DIR / "codenet.yaml")["optimizer"]
    restormer = training.load_config(CONFIG_DIR / "restormer.yaml")["optimizer"]
    assert (codenet["global_clipnorm"], codenet["clipnorm"]) == (0.4, None)
    assert (restormer["global_clipnorm"], restormer["clipnorm"]) == (0.01, None)
    # Keras' global_clipnorm scales all gradients together, as torch's clip_grad_norm_ does.
    opt = keras.optimizers.Adam(learning_rate=1.0, global_clipnorm=0.4)
    grads = [tf.constant([3.0]), tf.constant([4.0])]  # global norm 5
    clipped = opt._clip_gradients(grads)
    np.testing.assert_allclose([float(g[0]) for g in clipped], [0.24, 0.32], rtol=1e-6)


def test_multi_output_recipes_weight_each_output_as_the_official_sum():
    pcnet = training.load_config(CONFIG_DIR / "pcnet.yaml")
    assert pcnet["loss"]["rain"] == {"name": "pcnet", "target": "rainy", "edge_weight": 0.0}
    assert pcnet["loss_weights"] == {"derained": 1.0, "rain": 0.2}
    dtpnet = training.load_config(CONFIG_DIR / "dtpnet.yaml")
    assert dtpnet["loss"] == {
        "derained": "negative_ssim",
        "stages": {"name": "stage_mse", "stage": 0},
    }
    assert dtpnet["loss_weights"] == {"derained": 1.0, "stages": 0.5}
    crdnet = training.load_config(CONFIG_DIR / "crdnet.yaml")
    assert crdnet["loss"] == {"derained": "crdnet", "density": "cumulative_density_mse"}
    assert training.load_config(CONFIG_DIR / "mprnet.yaml")["loss"] == {"stages": "mprnet"}
