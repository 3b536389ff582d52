"""Size, cost and speed of every registered model: parameters, GFLOPs and CPU latency.

For each model (paper configuration, random weights: weights change neither the cost nor the
speed) one table row:

* **params**: trainable parameters, the convention of the official counts (Keras' BatchNorm
  running statistics are non-trainable weights, buffers in PyTorch).
* **input**: 1×320×480 (the Rain100H test size), bottom/right padded up to the model's
  ``multiple``. Models that need 512×512 are run at 512×512 and marked ``*``: ``crdnet`` (its
  classifier's Linear layer only fits 512×512) and ``didmdn`` (its official pipeline resizes
  every image to 512×512).
* **GFLOPs**: TensorFlow's profiler (``tf.compat.v1.profiler.profile`` with
  ``ProfileOptionBuilder.float_operation()``) on the frozen graph of
  ``tf.function(model).get_concrete_function(tf.TensorSpec([1, H, W, 3]))``. A multiply-add
  counts as 2 FLOPs; ops without a registered FLOP count (e.g. ``Einsum``, resizing) count 0,
  so models built on them are undercounted.
* **ms**: median latency of the Keras model called through ``tf.function`` (``training=False``)
  over ``--runs`` runs after one warm-up call. For the models in ``--xla`` (default:
  ``prenet``) also with ``jit_compile=True``, and the ratio XLA / no XLA (below 1: XLA is
  faster).

``--tiled-4k`` also measures the peak RSS of PReNet deraining a 3840×2160 image through
:mod:`tfderain.inference` (default tiling), in a fresh process (``bench_tiling_memory.py``) so
that nothing measured here inflates it.

    python benchmarks/bench_inference.py [--models prenet,prn] [--runs 5] [--tiled-4k]

CPU timings depend on the machine and its load; the load average is printed with the table.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tfderain import models  # noqa: E402
from tfderain._keras import keras, tf  # noqa: E402

#: Test-image size of the table (height, width): Rain100H.
SIZE = (320, 480)
#: Models that only run (or are only used officially) at one size, and why.
FIXED_SIZE = {
    "crdnet": (512, "the classifier's Linear layer needs 512×512 input"),
    "didmdn": (512, "the official pipeline resizes every image to 512×512"),
}


def input_size(name: str) -> tuple[int, int, bool]:
    """``(height, width, fixed)``: the table size padded to the model's multiple, or its
    fixed size."""
    if name in FIXED_SIZE:
        side = FIXED_SIZE[name][0]
        return side, side, True
    multiple = models.spec(name).multiple
    height, width = (-(-s // multiple) * multiple for s in SIZE)
    return height, width, False


def trainable_params(model: keras.Model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def _call(model: keras.Model):
    def call(x):
        out = model(x, training=False)
        return out["derained"] if isinstance(out, dict) else out

    return call


def gflops(model: keras.Model, height: int, width: int) -> float:
    """FLOPs of one forward pass, counted by TF's profiler on the frozen graph, / 1e9."""
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    concrete = tf.function(_call(model)).get_concrete_function(
        tf.TensorSpec([1, height, width, 3], tf.float32)
    )
    frozen = convert_variables_to_constants_v2(concrete)
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(frozen.graph.as_graph_def(), name="")
    builder = tf.compat.v1.profiler.ProfileOptionBuilder
    options = builder(builder.float_operation()).with_empty_output().build()
    level = tf.get_logger().level
    tf.get_logger().setLevel("ERROR")  # the v1 profiler's deprecation notices
    try:
        profile = tf.compat.v1.profiler.profile(graph, options=options)
    finally:
        tf.get_logger().setLevel(level)
    return profile.total_float_ops / 1e9


def latency_ms(model: keras.Model, x: tf.Tensor, runs: int, xla: bool) -> float:
    """Median wall time of ``runs`` calls after one warm-up (tracing, XLA compilation)."""
    fn = tf.function(_call(model), jit_compile=xla)
    fn(x).numpy()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(x).numpy()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def measure(name: str, runs: int, xla: bool) -> dict:
    keras.utils.set_random_seed(0)
    model = models.build(name)
    height, width, fixed = input_size(name)
    x = tf.constant(np.random.default_rng(0).random((1, height, width, 3), dtype=np.float32))
    row = {
        "model": name,
        "params": trainable_params(model),
        "input": f"{height}×{width}" + ("*" if fixed else ""),
        "gflops": gflops(model, height, width),
        "ms": latency_ms(model, x, runs, xla=False),
    }
    if xla:
        row["xla_ms"] = latency_ms(model, x, runs, xla=True)
    del model
    keras.backend.clear_session()
    gc.collect()
    return row


def print_table(rows: list[dict], runs: int) -> None:
    header = (
        f"{'model':15s} {'params':>12s} {'input':>9s} {'GFLOPs':>9s} "
        f"{'ms':>10s} {'XLA ms':>10s} {'XLA/no-XLA':>10s}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        xla = f"{r['xla_ms']:10.1f} {r['xla_ms'] / r['ms']:9.2f}×" if "xla_ms" in r else ""
        print(
            f"{r['model']:15s} {r['params']:12,d} {r['input']:>9s} {r['gflops']:9.2f} "
            f"{r['ms']:10.1f} {xla}"
        )
    print(f"ms: median of {runs} runs after 1 warm-up, batch 1, tf.function, training=False")
    for name, (side, why) in FIXED_SIZE.items():
        if any(r["model"] == name for r in rows):
            print(f"* {name}: {side}×{side}, {why}")


def tiled_4k(model: str = "prenet", size: str = "3840x2160") -> None:
    """Peak RSS and wall time of tiled 4K inference, measured in a fresh process."""
    script = Path(__file__).with_name("bench_tiling_memory.py")
    cmd = [sys.executable, str(script), "--model", model, "--size", size]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
        print(f"tiled 4K: {script.name} failed ({done.returncode}): {tail[0]}")
        return
    print(f"tiled {size} ({model} through tfderain.inference, fresh process):")
    for line in done.stdout.splitlines():
        if re.match(r"(image|peak RSS|wall time|throughput)\b", line):
            print(f"  {line}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated registry names (default: all)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per model (median)")
    parser.add_argument(
        "--xla", default="prenet", help="comma-separated models also timed with jit_compile=True"
    )
    parser.add_argument("--tiled-4k", action="store_true", help="peak RSS of 4K tiled PReNet")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    names = models.names() if not args.models else [n.strip() for n in args.models.split(",")]
    for name in names:
        models.spec(name)  # unknown names fail before anything is measured
    xla = {n.strip() for n in args.xla.split(",") if n.strip()}

    print(
        f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, load average "
        f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}"
    )
    rows = []
    for name in names:
        rows.append(measure(name, args.runs, xla=name in xla))
        print(f"  measured {name}", file=sys.stderr, flush=True)
    print_table(rows, args.runs)
    print(f"load average after: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    if args.tiled_4k:
        tiled_4k()


if __name__ == "__main__":
    main()
