"""Callbacks of :func:`tfderain.training.train`: TensorBoard summaries, run state, validation.

TensorBoard summaries are written with TensorFlow's core ``tf.summary.write`` and the plugin
metadata TensorBoard expects, so training does not need the ``tensorboard`` package (only viewing
the logs does).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tfderain._keras import keras, tf
from tfderain.data.layouts import find_pairs
from tfderain.evaluation import EvaluationResult, collect, score_pairs
from tfderain.inference import Derainer
from tfderain.io import write_bytes_atomically

__all__ = [
    "LearningRateLogger",
    "RunState",
    "SummaryLogger",
    "Validation",
    "read_state",
    "write_json",
    "write_scalars",
]


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically (temp file in the same folder, then rename)."""
    write_bytes_atomically(path, json.dumps(data, indent=1).encode())


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


def _step(model: keras.Model) -> int:
    """The optimizer's step count (also when it is a distributed variable)."""
    return int(keras.backend.get_value(model.optimizer.iterations))


def write_scalars(writer: Any, prefix: str, logs: Mapping[str, Any], step: int) -> None:
    """One TensorBoard scalar per entry of ``logs``, named ``prefix + name``."""
    with writer.as_default():
        for name, value in logs.items():
            value = tf.cast(tf.reshape(value, ()), tf.float32)
            tf.summary.write(f"{prefix}{name}", value, step=step, metadata=_scalar_metadata())


class LearningRateLogger(keras.callbacks.Callback):
    """Adds ``learning_rate`` to the epoch logs: the rate the epoch's last step used."""

    def __init__(self, schedule: keras.optimizers.schedules.LearningRateSchedule) -> None:
        super().__init__()
        self.schedule = schedule

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            step = max(_step(self.model) - 1, 0)
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
        write_scalars(self._writer, prefix, logs, step)

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
        step = _step(self.model)
        if self.scalars_every != "epoch" and step % self.scalars_every == 0 and logs:
            scalars = dict(logs)
            scalars["learning_rate"] = float(self.schedule(step - 1))
            self._scalars("batch_", scalars, step)
        if self.images_every != "epoch" and step % self.images_every == 0:
            self._images(step)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._scalars("epoch_", logs or {}, epoch)
        if self.images_every == "epoch":
            self._images(_step(self.model))
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
        write_json(self.path, self.state)

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


class Validation(keras.callbacks.Callback):
    """PSNR/SSIM on a validation set every ``every`` steps (or each epoch); keeps the best weights.

    Each image pair of ``data`` (any layout :func:`tfderain.data.find_pairs` reads, side-by-side
    files included) is scored by :func:`tfderain.evaluation.score_pairs`, the loop of ``tfderain
    evaluate``: derained whole by :class:`tfderain.inference.Derainer` (tiled above its pixel
    limit), turned into 8 bits with the model's official rule and scored under ``protocol``
    (default B: Y channel of ``rgb2ycbcr``, PSNR and ``compare_ssim``-style SSIM; see
    :mod:`tfderain.metrics`). Pairs that cannot be scored are skipped, printed and listed in
    ``validation.json`` under the check's ``skipped``.

    Results go to TensorBoard (``val_psnr``, ``val_ssim`` under ``tb/validation``), to the epoch
    logs (``val_psnr``, ``val_ssim``: the latest values, NaN before the first validation, so that
    ``log.csv`` has them), and to ``validation.json`` (every result and the best). When the PSNR
    improves, the weights are saved to ``best_path``. The best result survives restarts.

    Args:
        model: the model to score (the one being trained; its weights are read at each check).
        spec: the model's registry entry (``multiple``, ``halo``, ``output_rule``).
        data: the validation folder.
        every: ``"epoch"`` or a number of steps.
        run_dir: where ``validation.json`` and ``tb/validation`` live.
        best_path: weights file of the best validation PSNR.
        protocol: ``"A"`` or ``"B"``.
        max_images: score only the first this many pairs (None: all).
    """

    def __init__(
        self,
        model: keras.Model,
        spec: Any,
        data: str | os.PathLike,
        every: str | int,
        run_dir: Path,
        best_path: Path,
        protocol: str = "B",
        max_images: int | None = None,
    ) -> None:
        super().__init__()
        self.target = model
        self.spec = spec
        self.pairs = list(find_pairs(data))[:max_images]
        self.every = every
        self.protocol = protocol
        self.best_path = Path(best_path)
        self.json_path = Path(run_dir) / "validation.json"
        self.log_dir = Path(run_dir) / "tb" / "validation"
        state = json.loads(self.json_path.read_text()) if self.json_path.is_file() else {}
        self.state = {"best": state.get("best"), "history": state.get("history", [])}
        self.latest = (math.nan, math.nan)
        self._writer: Any = None

    def _implements_train_batch_hooks(self) -> bool:
        return self.every != "epoch"

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._writer = tf.summary.create_file_writer(str(self.log_dir))

    def evaluate(self) -> EvaluationResult:
        """Per-pair scores of the model on the validation pairs, as it is now.

        Scored by :func:`tfderain.evaluation.score_pairs`, the loop ``tfderain evaluate`` runs,
        so both agree on the same weights, folder and protocol (side-by-side files included).
        """
        derainer = Derainer(self.target, self.spec)
        return collect(score_pairs(derainer, self.pairs, self.protocol), self.protocol)

    def score(self) -> tuple[float, float]:
        """Mean PSNR and SSIM of the model on the validation pairs, as it is now."""
        result = self.evaluate()
        return result.mean_psnr, result.mean_ssim

    def _validate(self, step: int) -> None:
        start = time.perf_counter()
        result = self.evaluate()
        psnr, ssim = result.mean_psnr, result.mean_ssim
        self.latest = (psnr, ssim)
        record = {"step": step, "psnr": psnr, "ssim": ssim, "seconds": time.perf_counter() - start}
        if result.failed:
            record["skipped"] = [{"pair": name, "cause": cause} for name, cause in result.failed]
            for name, cause in result.failed:
                print(f"\nvalidation skipped {name}: {cause}", flush=True)
        if not result.scores:
            print(f"\nvalidation at step {step}: no pair could be scored", flush=True)
            self.state["history"].append(record)
            write_json(self.json_path, self.state)
            return
        self.state["history"].append(record)
        best = self.state["best"]
        if best is None or psnr > best["psnr"]:
            self.state["best"] = record
            self.target.save_weights(str(self.best_path))
        write_json(self.json_path, self.state)
        write_scalars(self._writer, "val_", {"psnr": psnr, "ssim": ssim}, step)
        self._writer.flush()
        print(
            f"\nvalidation at step {step}: PSNR {psnr:.3f} dB, SSIM {ssim:.4f} "
            f"(best {self.state['best']['psnr']:.3f} dB at step {self.state['best']['step']})",
            flush=True,
        )

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        step = _step(self.model)
        if self.every != "epoch" and step % self.every == 0:
            self._validate(step)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.every == "epoch":
            self._validate(_step(self.model))
        if logs is not None:
            logs["val_psnr"], logs["val_ssim"] = self.latest

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._writer is not None:
            self._writer.close()
