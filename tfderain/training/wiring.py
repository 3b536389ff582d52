"""Training's wiring: the configured input stream (progressive phases, shards, resume), the
losses per output, and the PSNR metric of the training log."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tfderain import losses
from tfderain._keras import keras, tf
from tfderain.data import pipeline
from tfderain.data.photos import skimage_photos

__all__ = ["PHASE_SEED_STRIDE", "dataset", "loss_table", "psnr"]


def psnr(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """Per-image PSNR in dB of the output clamped to [0, 1], as the official training log."""
    y_true = tf.cast(y_true, tf.float32)
    y_pred = tf.clip_by_value(tf.cast(y_pred, tf.float32), 0.0, 1.0)
    return tf.image.psnr(y_pred, y_true, max_val=1.0)


def _source(
    data: Mapping[str, Any], seed: int, patch: int, batch: int, start: int, shards: tuple[int, int]
) -> tf.data.Dataset:
    """One configured pipeline: global batches ``start, start + 1, ...`` of shard ``shards[1]``."""
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
        size_range = data["size_range"]
        size_range = None if size_range is None else tuple(size_range)
        return pipeline.synthetic_dataset(
            clean,
            size_range=size_range,
            styles=data["styles"],
            keep_veil=data["keep_veil"],
            **common,
        )
    source = data["source"]
    source = [str(s) for s in source] if isinstance(source, (list, tuple)) else str(source)
    return pipeline.paired_dataset(
        source, repeat=True, shuffle=data["shuffle"], cache=data["cache"], **common
    )


#: Seed offset between the phases of progressive training (each phase has its own stream).
PHASE_SEED_STRIDE = 7919


def dataset(
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


def loss_table(config: Mapping[str, Any], outputs: Sequence[str]) -> dict[str, keras.losses.Loss]:
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
