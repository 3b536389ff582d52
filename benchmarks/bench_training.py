"""Training throughput: examples/s and step time of one model under each precision and XLA setting.

Builds the model (random weights), compiles it as :func:`tfderain.training.train` does (Adam, the
recipe's loss on ``derained``), and times ``train_on_batch`` on one fixed batch of the recipe's
size, so the input pipeline is not measured (``benchmarks/bench_pipeline.py`` measures it). For each
setting: ``--warmup`` untimed steps (tracing, XLA compilation), then ``--steps`` timed ones; the
median step time is printed with examples/s and the ratio to the first setting, all measured side by
side in one run.

    python benchmarks/bench_training.py                      # PReNet, batch 18, 100x100 patches
    python benchmarks/bench_training.py --model prn --batch 8 --patch 64 --steps 5
    python benchmarks/bench_training.py --settings float32,mixed_bfloat16+xla

On CPUs without native bfloat16 or float16 arithmetic the mixed policies are usually slower: they
pay for casts without faster math. They are meant for GPUs (float16 tensor cores) and TPUs/recent
GPUs (bfloat16).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tfderain import losses, models  # noqa: E402
from tfderain._keras import keras, tf  # noqa: E402

DEFAULT_SETTINGS = "float32,float32+xla,mixed_bfloat16,mixed_bfloat16+xla"


def step_times(
    name: str, precision: str, jit: bool, batch: int, patch: int, loss: str, warmup: int, steps: int
) -> list[float]:
    """Wall times of ``steps`` training steps after ``warmup`` untimed ones."""
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy(precision)
    try:
        keras.utils.set_random_seed(0)
        model = models.build(name)
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss={"derained": losses.get(loss)},
            jit_compile=jit,
        )
        rng = np.random.default_rng(0)
        rainy = rng.random((batch, patch, patch, 3), dtype=np.float32)
        clean = np.clip(rainy - 0.1, 0, 1).astype(np.float32)
        x, y = tf.constant(rainy), {"derained": tf.constant(clean)}
        for _ in range(warmup):
            model.train_on_batch(x, y)
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            model.train_on_batch(x, y)
            times.append(time.perf_counter() - start)
        return times
    finally:
        keras.mixed_precision.set_global_policy("float32")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="prenet", help="registry name (default: prenet)")
    parser.add_argument("--batch", type=int, default=18, help="batch size (PReNet paper: 18)")
    parser.add_argument("--patch", type=int, default=100, help="patch size (PReNet paper: 100)")
    parser.add_argument("--loss", default="negative_ssim", help="loss on derained (PReNet: -SSIM)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument(
        "--settings",
        default=DEFAULT_SETTINGS,
        help=f"comma-separated precision[+xla] settings (default: {DEFAULT_SETTINGS})",
    )
    args = parser.parse_args(argv)

    print(
        f"{args.model}: batch {args.batch}, {args.patch}x{args.patch} patches, loss {args.loss}, "
        f"{args.steps} timed steps after {args.warmup} warm-up; devices: "
        f"{', '.join(d.name for d in tf.config.list_logical_devices())}"
    )
    print(f"{'setting':<22}{'median step (s)':>16}{'examples/s':>12}{'vs first':>10}")
    first = None
    for setting in args.settings.split(","):
        precision, _, xla = setting.partition("+")
        times = step_times(
            args.model,
            precision,
            xla == "xla",
            args.batch,
            args.patch,
            args.loss,
            args.warmup,
            args.steps,
        )
        median = statistics.median(times)
        first = first or median
        rate = args.batch / median
        print(f"{setting:<22}{median:>16.3f}{rate:>12.1f}{first / median:>9.2f}x")


if __name__ == "__main__":
    main()
