"""Training at scale: precision policies, exact resumption after SIGKILL, tf.distribute strategies,
the validation callback and progressive patches, on a tiny PRN_r (2 stages, width 8)."""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tfderain import evaluation, inference, models, saving, train_cli, training
from tfderain._keras import keras, tf

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "tfderain" / "configs" / "prn_r.yaml"

TINY = [
    "model.config.stages=2",
    "model.config.channels=8",
    "data.patch_size=16",
    "data.batch_size=4",
    "logging.scalars_every=epoch",
    "logging.images_every=epoch",
    "logging.num_images=1",
    "logging.verbose=2",
]


def _smooth_images(count: int, size: int, seed: int) -> list[np.ndarray]:
    """Random but smooth RGB images in [0, 1] (bilinear upsampling of a coarse random grid)."""
    rng = np.random.default_rng(seed)
    coarse = tf.constant(rng.random((count, 4, 4, 3)), tf.float32)
    images = tf.image.resize(coarse, (size, size), method="bilinear").numpy()
    return [np.clip(im, 0.0, 1.0) for im in images]


def _write_png(path: Path, image: np.ndarray) -> None:
    png = tf.image.encode_png(tf.image.convert_image_dtype(image, tf.uint8, saturate=True))
    path.write_bytes(png.numpy())


@pytest.fixture(scope="module")
def clean_dir(tmp_path_factory) -> Path:
    """Four smooth 40×40 clean photos for synthetic rain."""
    folder = tmp_path_factory.mktemp("clean")
    for i, image in enumerate(_smooth_images(4, 40, seed=3)):
        _write_png(folder / f"{i}.png", image)
    return folder


@pytest.fixture(scope="module")
def val_dir(tmp_path_factory) -> Path:
    """Two 24×32 pairs in the rainy/ + clean/ layout: clean images and a streaked version."""
    root = tmp_path_factory.mktemp("val")
    (root / "rainy").mkdir()
    (root / "clean").mkdir()
    for i, image in enumerate(_smooth_images(2, 32, seed=5)):
        image = image[:24]
        rainy = image.copy()
        rainy[:, 3::7] = np.clip(rainy[:, 3::7] + 0.5, 0, 1)
        _write_png(root / "clean" / f"{i}.png", image)
        _write_png(root / "rainy" / f"{i}.png", rainy)
    return root


def _run(args: list[str], cwd: Path, env: dict | None = None, timeout: float = 600):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1", **(env or {})}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def _train_command(overrides: list[str]) -> list[str]:
    command = [str(REPO / "training" / "train.py"), "--config", str(CONFIG)]
    return command + [arg for item in overrides for arg in ("--set", item)]


def _weights(path: Path) -> list[np.ndarray]:
    return [np.asarray(w) for w in saving.load_model(path).get_weights()]


# ------------------------------------------------------------------------------ precision


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["float32", "mixed_float16", "mixed_bfloat16"])
def test_each_precision_policy_lowers_a_finite_loss_and_saves_float32(precision, tmp_path):
    from tfderain.data import pipeline

    run_dir = tmp_path / "run"
    config = training.load_config(
        CONFIG,
        [
            *TINY,
            "epochs=3",
            "steps_per_epoch=4",
            "optimizer.learning_rate=3e-3",
            f"precision={precision}",
            f"output_dir={run_dir}",
        ],
    )
    fixed = pipeline.synthetic_dataset(_smooth_images(2, 32, 1), patch_size=16, batch_size=4)
    fixed = fixed.take(1).cache().repeat()

    result = training.train(config, dataset=fixed)

    loss = result.history["loss"]
    assert all(math.isfinite(v) for v in loss), loss
    assert loss[-1] < loss[0], loss  # -SSIM falls on the batch it keeps seeing
    assert keras.mixed_precision.global_policy().name == "float32"  # policy restored
    model = saving.load_model(result.model_path)
    assert {w.dtype for w in model.weights} == {tf.float32}
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    assert model(np.full((1, 16, 16, 3), 0.5, np.float32))["derained"].dtype == tf.float32


# ------------------------------------------------------------------------------ resume

KILLER = """
import os, signal, sys
from tfderain import training
from tfderain._keras import keras

class KillAt(keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations) == self.step:
            os.kill(os.getpid(), signal.SIGKILL)

config = training.load_config(sys.argv[1], sys.argv[3:])
training.train(config, callbacks=[KillAt(int(sys.argv[2]))])
"""


@pytest.mark.slow
def test_sigkill_mid_epoch_then_restart_ends_with_the_uninterrupted_weights(tmp_path, clean_dir):
    # 2 epochs x 5 steps, a backup every 2 steps. The first run is killed after step 7 (epoch 1,
    # batch 1), its last backup being after step 6: the restart redoes step 7 from that backup.
    overrides = [
        *TINY,
        "epochs=2",
        "steps_per_epoch=5",
        "logging.backup_every=2",
        "schedule.milestones=[1]",
        "schedule.gamma=0.1",
        "data.source=synthetic",
        f"data.clean={clean_dir}",
        "deterministic=true",
    ]
    straight = _run(_train_command([*overrides, f"output_dir={tmp_path / 'straight'}"]), tmp_path)
    assert straight.returncode == 0, straight.stderr[-3000:]

    killed_dir = tmp_path / "killed"
    script = tmp_path / "kill_at.py"
    script.write_text(KILLER)
    first = _run([str(script), str(CONFIG), "7", *overrides, f"output_dir={killed_dir}"], tmp_path)
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    assert not (killed_dir / "model.keras").exists()
    assert training.resume_step(killed_dir / "backup", 5) == 6

    second = _run(_train_command([*overrides, f"output_dir={killed_dir}"]), tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Resuming from the backup: epoch 2" in second.stdout

    rows = training.read_log(killed_dir)
    assert [int(r["epoch"]) for r in rows] == [0, 1]  # epoch 0 was not trained again
    # The restored step counter drives the schedule: 1e-3 in epoch 0, 1e-4 from epoch 1 on.
    assert [float(r["learning_rate"]) for r in rows] == pytest.approx([1e-3, 1e-4], rel=1e-5)

    expected = _weights(tmp_path / "straight" / "model.keras")
    resumed = _weights(killed_dir / "model.keras")
    assert len(expected) == len(resumed)
    for a, b in zip(expected, resumed, strict=True):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------ distribute


def _distributed_overrides(clean_dir: Path) -> list[str]:
    return [
        *TINY,
        "epochs=1",
        "steps_per_epoch=3",
        "data.source=synthetic",
        f"data.clean={clean_dir}",
        "deterministic=true",
    ]


@pytest.fixture(scope="module")
def one_device_weights(tmp_path_factory, clean_dir) -> list[np.ndarray]:
    """Final weights of the distributed tests' run on the default single device."""
    tmp = tmp_path_factory.mktemp("one_device")
    one = _run(_train_command([*_distributed_overrides(clean_dir), f"output_dir={tmp}"]), tmp)
    assert one.returncode == 0, one.stderr[-3000:]
    return _weights(tmp / "model.keras")


@pytest.mark.slow
def test_mirrored_over_two_logical_cpus_matches_one_device_at_the_same_global_batch(
    tmp_path, clean_dir, one_device_weights
):
    overrides = _distributed_overrides(clean_dir)
    two = _run(
        _train_command([*overrides, "distribute.cpu_devices=2", f"output_dir={tmp_path / 'two'}"])
        + ["--strategy", "mirrored"],
        tmp_path,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    assert "mirrored strategy, 2 replica(s)" in two.stdout

    # Same examples, gradients averaged over the two halves of each batch: the same optimisation
    # up to the order of floating-point sums.
    for a, b in zip(one_device_weights, _weights(tmp_path / "two" / "model.keras"), strict=True):
        np.testing.assert_allclose(a, b, atol=2e-5)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.mark.slow
def test_two_local_workers_train_in_sync_like_one_device(tmp_path, clean_dir, one_device_weights):
    overrides = _distributed_overrides(clean_dir)

    run_dir = tmp_path / "cluster"
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1"}
    command = [sys.executable, *_train_command([*overrides, f"output_dir={run_dir}"])]
    command += ["--strategy", "multiworker"]
    procs, logs = [], []
    for index in range(2):
        tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        log = open(tmp_path / f"worker{index}.log", "w")  # noqa: SIM115
        logs.append(log)
        procs.append(
            subprocess.Popen(
                command,
                cwd=tmp_path,
                env={**env, "TF_CONFIG": json.dumps(tf_config)},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    try:
        codes = [p.wait(timeout=600) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for log in logs:
            log.close()
    output = "".join((tmp_path / f"worker{i}.log").read_text()[-2000:] for i in range(2))
    assert codes == [0, 0], output
    assert "multiworker strategy, 2 replica(s)" in output

    chief = _weights(run_dir / "model.keras")
    other = _weights(run_dir / "workers" / "1" / "model.keras")
    for a, b, c in zip(chief, other, one_device_weights, strict=True):
        np.testing.assert_array_equal(a, b)  # all-reduced updates: identical replicas
        np.testing.assert_allclose(a, c, atol=2e-5)  # and the one-device optimisation
    assert (run_dir / "log.csv").is_file() and (run_dir / "workers" / "1" / "log.csv").is_file()


# ------------------------------------------------------------------------------ validation


@pytest.mark.slow
def test_validation_scores_protocol_b_every_n_steps_and_keeps_the_best(
    tmp_path, clean_dir, val_dir
):
    run_dir = tmp_path / "run"
    config = training.load_config(
        CONFIG,
        [
            *TINY,
            "epochs=2",
            "steps_per_epoch=3",
            "data.source=synthetic",
            f"data.clean={clean_dir}",
            "optimizer.learning_rate=3e-3",
            f"validation.source={val_dir}",
            "validation.every=2",
            f"output_dir={run_dir}",
        ],
    )
    training.train(config)

    record = json.loads((run_dir / "validation.json").read_text())
    assert [r["step"] for r in record["history"]] == [2, 4, 6]
    best = max(record["history"], key=lambda r: r["psnr"])
    assert record["best"] == best

    # The kept weights score the best PSNR when evaluated independently (tfderain.evaluation).
    model = models.build("prn_r", stages=2, channels=8)
    model.load_weights(run_dir / "checkpoints" / "best_val.weights.h5")
    scored = evaluation.evaluate(inference.Derainer(model), val_dir, protocol="B")
    assert scored.mean_psnr == pytest.approx(best["psnr"], abs=1e-6)
    assert scored.mean_ssim == pytest.approx(best["ssim"], abs=1e-6)

    rows = training.read_log(run_dir)
    assert [float(r["val_psnr"]) for r in rows] == pytest.approx(
        [record["history"][0]["psnr"], record["history"][2]["psnr"]], abs=1e-4
    )
    from tensorflow.core.util import event_pb2

    tags = set()
    for path in (run_dir / "tb" / "validation").rglob("events.out.tfevents.*"):
        for raw in tf.data.TFRecordDataset(str(path)):
            tags |= {v.tag for v in event_pb2.Event.FromString(raw.numpy()).summary.value}
    assert {"val_psnr", "val_ssim"} <= tags


# ------------------------------------------------------------------------------ progressive


def test_progressive_phases_switch_patch_and_batch_and_resume_inside_a_phase(clean_dir):
    data = training.load_config(
        CONFIG,
        [
            "data.source=synthetic",
            f"data.clean={clean_dir}",
            "data.progressive=[{iterations: 2, patch_size: 16, batch_size: 4},"
            " {iterations: 3, patch_size: 24, batch_size: 2}, {iterations: 1, patch_size: 32,"
            " batch_size: 1}]",
        ],
    )["data"]
    batches = list(training.dataset(data, seed=0).take(7))
    shapes = [tuple(b["rainy"].shape) for b in batches]
    assert shapes == [(4, 16, 16, 3)] * 2 + [(2, 24, 24, 3)] * 3 + [(1, 32, 32, 3)] * 2

    resumed = list(training.dataset(data, seed=0, start_step=3).take(4))
    for a, b in zip(batches[3:], resumed, strict=True):
        np.testing.assert_array_equal(a["rainy"], b["rainy"])
        np.testing.assert_array_equal(a["clean"], b["clean"])


def test_the_configured_rain_styles_and_veil_target_reach_the_stream(clean_dir):
    def first_batch(keep_veil: str):
        data = training.load_config(
            CONFIG,
            [
                "data.source=synthetic",
                f"data.clean={clean_dir}",
                "data.patch_size=16",
                "data.batch_size=4",
                "data.styles=[heavy]",
                f"data.keep_veil={keep_veil}",
            ],
        )["data"]
        return next(iter(training.dataset(data, seed=0)))

    kept, removed = first_batch("true"), first_batch("false")
    # The heavy style's densities lie in [2/3, 1], each with Li et al.'s depth veil.
    assert float(tf.reduce_min(removed["density"])) >= 2 / 3
    np.testing.assert_array_equal(kept["rainy"], removed["rainy"])
    lift = tf.reduce_mean(kept["clean"] - removed["clean"], axis=[1, 2, 3]).numpy()
    assert np.all(lift > 0), lift


@pytest.mark.slow
def test_fit_runs_through_a_change_of_patch_size(tmp_path, clean_dir):
    config = training.load_config(
        CONFIG,
        [
            *TINY,
            "epochs=1",
            "steps_per_epoch=4",
            "data.source=synthetic",
            f"data.clean={clean_dir}",
            "data.progressive=[{iterations: 2, patch_size: 16, batch_size: 4},"
            " {iterations: 2, patch_size: 24, batch_size: 2}]",
            f"output_dir={tmp_path / 'run'}",
        ],
    )
    result = training.train(config)
    assert math.isfinite(result.history["loss"][0])


# ------------------------------------------------------------------------------ command line


def test_bad_strategy_and_missing_tf_config_are_clear_errors(tmp_path, monkeypatch):
    bad = training.load_config(CONFIG, [*TINY, "distribute.strategy=tpu", f"output_dir={tmp_path}"])
    with pytest.raises(ValueError, match="distribute.strategy must be one of"):
        training.train(bad)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    config = training.load_config(
        CONFIG, [*TINY, "distribute.strategy=multiworker", f"output_dir={tmp_path}"]
    )
    with pytest.raises(ValueError, match="needs the TF_CONFIG environment variable"):
        training.train(config)


def test_train_command_line_has_strategy_precision_and_jit_flags():
    parser = train_cli.add_arguments(argparse.ArgumentParser())
    args = parser.parse_args(
        ["--config", "c.yaml", "--strategy", "mirrored", "--precision", "mixed_float16", "--jit"]
    )
    assert (args.strategy, args.precision, args.jit) == ("mirrored", "mixed_float16", True)
    with pytest.raises(SystemExit):
        parser.parse_args(["--config", "c.yaml", "--strategy", "tpu"])
