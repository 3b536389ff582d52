"""Devices for training: one device, MirroredStrategy, or MultiWorkerMirroredStrategy.

``distribute.strategy`` in a training config (``--strategy`` on the command line):

``default``
    TensorFlow's default device placement (one GPU if there is one, else the CPU).
``mirrored``
    :class:`tf.distribute.MirroredStrategy`: synchronous data parallelism over the GPUs of this
    machine, or, without GPUs, over the logical CPU devices (``distribute.cpu_devices: N`` splits
    the CPU into N logical devices; useful to try a multi-device setup on a laptop).
``multiworker``
    :class:`tf.distribute.MultiWorkerMirroredStrategy`: the same over several machines (or
    processes), each started with the same command and its own ``TF_CONFIG`` environment variable,
    e.g. ``{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker",
    "index": 0}}``. Worker 0 is the chief: it writes the run folder; the other workers write theirs
    under ``<output_dir>/workers/<index>``.

``data.batch_size`` is always the **global** batch: with R replicas each computes the loss on
``batch_size / R`` examples and the gradients are averaged, so the optimisation is that of one
device with the whole batch and the learning rate needs no change. (To use more devices for a
larger batch, raise ``data.batch_size`` and scale ``optimizer.learning_rate`` yourself; the linear
scaling rule, lr x k for batch x k, is the usual starting point.) Each worker reads only its own
slice of every global batch (:func:`tfderain.data.pipeline.paired_dataset` ``num_shards`` /
``shard_index``), so the examples seen are those of a single-device run with the same seed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass

from tfderain._keras import tf

__all__ = ["STRATEGIES", "Workers", "make_strategy", "split_cpu", "workers"]

STRATEGIES = ("default", "mirrored", "multiworker")


def split_cpu(count: int) -> None:
    """Make ``count`` logical CPU devices out of the physical CPU (before TensorFlow starts).

    Raises:
        RuntimeError: TensorFlow's devices are already initialised in this process.
    """
    cpus = tf.config.list_physical_devices("CPU")
    config = [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
    try:
        tf.config.set_logical_device_configuration(cpus[0], config)
    except RuntimeError:
        if len(tf.config.list_logical_devices("CPU")) == count:
            return
        raise RuntimeError(
            f"distribute.cpu_devices={count}: TensorFlow has already initialised its devices in "
            "this process; set it in a fresh process (e.g. the training command line)"
        ) from None


def make_strategy(name: str, cpu_devices: int | None = None) -> tf.distribute.Strategy:
    """The :class:`tf.distribute.Strategy` called ``name`` (one of :data:`STRATEGIES`)."""
    if name not in STRATEGIES:
        raise ValueError(
            f"distribute.strategy must be one of {', '.join(STRATEGIES)}, got {name!r}"
        )
    if cpu_devices is not None and cpu_devices > 1:
        split_cpu(int(cpu_devices))
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus or tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if "TF_CONFIG" not in os.environ:
        raise ValueError(
            "distribute.strategy=multiworker needs the TF_CONFIG environment variable "
            '(e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}})'
        )
    try:
        json.loads(os.environ["TF_CONFIG"])
    except ValueError as exc:
        raise ValueError(f"TF_CONFIG is not valid JSON: {exc}") from None
    return tf.distribute.MultiWorkerMirroredStrategy()


@dataclass(frozen=True)
class Workers:
    """This process's place among the training workers."""

    index: int  # 0 for the chief
    count: int
    local_replicas: int

    @property
    def is_chief(self) -> bool:
        return self.index == 0


def workers(strategy: tf.distribute.Strategy) -> Workers:
    """Worker index and count, and replicas per worker, of ``strategy``."""
    replicas = strategy.num_replicas_in_sync
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return Workers(0, 1, replicas)
    spec = resolver.cluster_spec().as_dict()
    count = sum(len(spec.get(kind, [])) for kind in ("chief", "worker"))
    index = int(resolver.task_id or 0)
    if resolver.task_type == "worker" and "chief" in spec:
        index += 1
    return Workers(index, max(count, 1), max(replicas // max(count, 1), 1))


def distributed_dataset(
    strategy: tf.distribute.Strategy,
    make: Callable[[int, int], tf.data.Dataset],
) -> tf.data.Dataset | tf.distribute.DistributedDataset:
    """The training data for ``strategy``.

    ``make(num_shards, shard_index)`` builds the stream of batches of one shard. On one worker
    the whole global batch is built (``make(1, 0)``) and Keras splits it between the replicas. On
    several workers each builds only the shards of its own replicas, interleaved in replica order
    (:meth:`tf.distribute.Strategy.distribute_datasets_from_function`), so the replicas together
    see exactly the global batches of a one-device run.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return make(1, 0)
    replicas = strategy.num_replicas_in_sync

    def per_worker(context: tf.distribute.InputContext) -> tf.data.Dataset:
        local = replicas // context.num_input_pipelines
        first = context.input_pipeline_id * local
        shards = [make(replicas, first + r) for r in range(local)]
        if local == 1:
            return shards[0]
        zipped = tf.data.Dataset.zip(tuple(shards))
        return zipped.flat_map(
            lambda *items: tf.data.Dataset.from_tensor_slices(
                tf.nest.map_structure(lambda *x: tf.stack(x), *items)
            )
        )

    return strategy.distribute_datasets_from_function(per_worker)
