"""Specification of tfderain.training and training/train.py, on a tiny PRN_r (2 stages, width 8)."""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from tfderain import models, saving, training
from tfderain._keras import keras, tf

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "tfderain" / "configs" / "prn_r.yaml"

TINY = [
    "model.config.stages=2",
    "model.config.channels=8",
    "data.patch_size=32",
    "data.batch_size=2",
    "steps_per_epoch=3",
    "logging.scalars_every=2",
    "logging.images_every=epoch",
    "logging.num_images=2",
    "logging.backup_every=epoch",
    "logging.verbose=2",
]


def _smooth_images(count: int, size: int = 48, seed: int = 0) -> list[np.ndarray]:
    """Random but smooth RGB images in [0, 1] (bilinear upsampling of a coarse random grid)."""
    rng = np.random.default_rng(seed)
    coarse = tf.constant(rng.random((count, 4, 4, 3)), tf.float32)
    images = tf.image.resize(coarse, (size, size), method="bilinear").numpy()
    return [np.clip(im, 0.0, 1.0) for im in images]


def _event_tags(log_dir: Path) -> dict[str, str]:
    """``{tag: plugin name}`` of every summary in the event files under ``log_dir``."""
    from tensorflow.core.util import event_pb2

    tags = {}
    for path in log_dir.rglob("events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(str(path)):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                tags[value.tag] = value.metadata.plugin_data.plugin_name
    return tags


def _csv_rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------------------------ config


def test_overrides_are_dotted_keys_with_yaml_values():
    config = training.load_config(CONFIG, ["schedule.milestones=[2, 4]", "jit=true", "seed=7"])
    assert config["schedule"]["milestones"] == [2, 4]
    assert config["jit"] is True and config["seed"] == 7
    assert config["model"] == {
        "name": "prn_r",
        "config": {"stages": 6, "channels": 32},
        "init": None,
    }


def test_model_config_and_loss_are_free_form_but_other_keys_are_checked():
    config = training.load_config(CONFIG, ["model.config.stages=2", "loss.derained=mse"])
    assert config["model"]["config"] == {"stages": 2, "channels": 32}
    assert config["loss"] == {"derained": "mse"}
    with pytest.raises(ValueError, match="unknown config key 'data.patchsize'"):
        training.load_config(CONFIG, ["data.patchsize=64"])
    with pytest.raises(ValueError, match="key=value"):
        training.load_config(CONFIG, ["epochs"])


@pytest.mark.parametrize("name", ["prenet", "prenet_r", "prn", "prn_r"])
def test_configs_hold_the_official_prenet_recipe(name):
    config = training.load_config(REPO / "tfderain" / "configs" / f"{name}.yaml")
    assert config["model"]["name"] == name
    assert config["loss"] == "negative_ssim"
    assert config["optimizer"]["learning_rate"] == 1e-3
    assert config["schedule"] == {"name": "multistep", "milestones": [30, 50, 80], "gamma": 0.2}
    assert (config["epochs"], config["data"]["batch_size"], config["data"]["patch_size"]) == (
        100,
        18,
        100,
    )


def test_multistep_schedule_decays_at_epoch_milestones_like_torch_multisteplr():
    schedule = training.MultiStepDecay(1e-3, milestones=[2, 3], gamma=0.1, steps_per_epoch=10)
    # Epoch e uses the rate after the milestones <= e: steps 0..19 epochs 0-1, 20..29 epoch 2.
    expected = {0: 1e-3, 19: 1e-3, 20: 1e-4, 29: 1e-4, 30: 1e-5, 10_000: 1e-5}
    for step, lr in expected.items():
        assert float(schedule(step)) == pytest.approx(lr, rel=1e-6)
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule)
    )
    assert float(restored(25)) == pytest.approx(1e-4, rel=1e-6)


# ------------------------------------------------------------------------------------ fit


@pytest.mark.slow
def test_fit_overfits_a_fixed_batch_and_writes_a_complete_run(tmp_path):
    from tfderain.data import pipeline

    run_dir = tmp_path / "run"
    config = training.load_config(
        CONFIG, [*TINY, "epochs=4", "optimizer.learning_rate=3e-3", f"output_dir={run_dir}"]
    )
    fixed = pipeline.synthetic_dataset(_smooth_images(4), patch_size=32, batch_size=2, seed=1)
    fixed = fixed.take(1).cache().repeat()

    result = training.train(config, dataset=fixed)

    loss = result.history["loss"]
    assert all(math.isfinite(v) for v in loss)
    assert loss[-1] < loss[0] - 0.02, loss  # -SSIM falls on the batch it keeps seeing
    assert result.history["derained_psnr"][-1] > result.history["derained_psnr"][0]
    assert result.history["learning_rate"] == pytest.approx([3e-3] * 4)

    model = saving.load_model(result.model_path)
    assert model.output["stages"].shape[1] == 2
    probe = np.full((1, 32, 32, 3), 0.5, np.float32)
    best = models.build("prn_r", stages=2, channels=8)
    best.load_weights(run_dir / "checkpoints" / "best.weights.h5")
    last = models.build("prn_r", stages=2, channels=8)
    last.load_weights(run_dir / "checkpoints" / "last.weights.h5")
    np.testing.assert_allclose(
        last(probe)["derained"].numpy(), model(probe)["derained"].numpy(), atol=1e-6
    )

    tags = _event_tags(run_dir / "tb")
    for tag in ("epoch_loss", "epoch_learning_rate", "epoch_derained_psnr", "batch_loss"):
        assert tags.get(tag) == "scalars", (tag, sorted(tags))
    assert tags.get("samples") == "images"

    assert [row["epoch"] for row in _csv_rows(run_dir)] == ["0", "1", "2", "3"]
    assert not any((run_dir / "backup").rglob("checkpoint"))  # deleted once complete
    state = json.loads((run_dir / "state.json").read_text())
    assert state["complete"] and state["epochs_done"] == 4

    again = training.train(config, dataset=fixed)
    assert again.already_complete


@pytest.mark.slow
def test_mixed_bfloat16_trains_with_finite_loss_and_saves_float32(tmp_path):
    from tfderain.data import pipeline

    run_dir = tmp_path / "run"
    config = training.load_config(
        CONFIG, [*TINY, "epochs=1", "precision=mixed_bfloat16", f"output_dir={run_dir}"]
    )
    data = pipeline.synthetic_dataset(_smooth_images(2), patch_size=32, batch_size=2, seed=0)

    result = training.train(config, dataset=data)

    assert math.isfinite(result.history["loss"][0])
    assert keras.mixed_precision.global_policy().name == "float32"  # policy restored
    model = saving.load_model(result.model_path)
    assert {w.dtype for w in model.weights} == {tf.float32}
    out = model(np.full((1, 32, 32, 3), 0.5, np.float32))
    assert out["derained"].dtype == tf.float32


@pytest.mark.slow
def test_fine_tuning_starts_from_the_weights_of_a_keras_file(tmp_path):
    """``--model FILE.keras`` (``model.init``): the run starts from that file's weights and takes
    its config; with a learning rate of 0 the trained model is exactly the starting one."""
    from tfderain import train_cli
    from tfderain.data import pipeline

    start = models.build("prn_r", stages=2, channels=8)
    init = saving.save_model(start, tmp_path / "start.keras")
    parser = train_cli.add_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--config", str(CONFIG), "--model", str(init)])
    overrides = train_cli.overrides_from_args(args)
    assert overrides == ['model.name="prn_r"', f"model.init={json.dumps(str(init))}"]
    config = training.load_config(
        CONFIG,
        [
            *TINY,
            *overrides,
            "epochs=1",
            "optimizer.learning_rate=0.0",
            "schedule.gamma=1.0",
            f"output_dir={tmp_path / 'run'}",
        ],
    )
    fixed = pipeline.synthetic_dataset(_smooth_images(2), patch_size=32, batch_size=2, seed=1)
    result = training.train(config, dataset=fixed.take(1).cache().repeat())
    tuned = saving.load_model(result.model_path)
    for a, b in zip(start.get_weights(), tuned.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)

    other = saving.save_model(models.build("prn", stages=2, channels=8), tmp_path / "prn.keras")
    wrong = training.load_config(CONFIG, [*TINY, f"model.init={other}", "epochs=1"])
    with pytest.raises(ValueError, match="holds a 'prn' model, not 'prn_r'"):
        training.train(wrong, dataset=fixed)
