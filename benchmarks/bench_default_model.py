"""Speed of the default architecture against PReNet's paper configuration, side by side.

Both models are built with random weights (weights change neither cost nor speed) and derain the
same random image of about one megapixel (default 1152×864, below the tiling threshold, so each
runs as one piece) through :func:`tfderain.derain`: padding to the model's multiple, one network
call, cropping and clipping, as a user's call does. After one warm-up call each (graph tracing),
the timed calls alternate between the two models, so that a change in machine load affects both
alike. Printed: the median of each, their ratio, the CPU and its vector / matrix extensions.

``--rss-4k`` also derains a 3840×2160 image with the default architecture through the tiled path
in a fresh process (``bench_tiling_memory.py``) and prints its peak RSS. It runs first, before
this process builds any model: on Linux a child's peak RSS (``ru_maxrss``) starts from its
parent's RSS at the fork, so a parent that had just run PReNet on a megapixel would inflate it.

    python benchmarks/bench_default_model.py [--runs 3] [--size 1152x864] [--rss-4k]

CPU timings depend on the machine and its load; the load average is printed with the result.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tfderain  # noqa: E402
from benchmarks._args import two_sizes  # noqa: E402
from benchmarks.bench_inference import tiled_4k  # noqa: E402
from tfderain import _machine, models  # noqa: E402
from tfderain._keras import keras, tf  # noqa: E402

#: CPU flags that decide convolution speed: (``/proc/cpuinfo`` flag, name printed).
CPU_FEATURES = (
    ("avx2", "AVX2"),
    ("fma", "FMA"),
    ("avx512f", "AVX-512F"),
    ("avx512_vnni", "AVX-512 VNNI"),
    ("avx_vnni", "AVX-VNNI"),
    ("avx512_bf16", "AVX-512 BF16"),
    ("amx_tile", "AMX-TILE"),
    ("amx_int8", "AMX-INT8"),
    ("amx_bf16", "AMX-BF16"),
)


def cpu_description() -> tuple[str, list[str]]:
    """``(model name, [extensions present])`` of this machine (:func:`tfderain._machine.cpu`)."""
    cpu = _machine.cpu()
    return cpu.name, [label for flag, label in CPU_FEATURES if flag in cpu.flags]


def time_models(
    nets: dict[str, keras.Model], image: np.ndarray, runs: int
) -> dict[str, list[float]]:
    """Seconds per :func:`tfderain.derain` call of each model, runs interleaved."""
    for name, net in nets.items():
        tfderain.derain(image, model=net)  # warm-up: tracing
        print(f"  warmed up {name}", file=sys.stderr, flush=True)
    times: dict[str, list[float]] = {name: [] for name in nets}
    for run in range(runs):
        for name, net in nets.items():
            start = time.perf_counter()
            tfderain.derain(image, model=net)
            times[name].append(time.perf_counter() - start)
        print(f"  run {run + 1}/{runs} done", file=sys.stderr, flush=True)
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="rainunet", help="candidate (default: rainunet)")
    parser.add_argument("--reference", default="prenet", help="reference (default: prenet)")
    parser.add_argument(
        "--size",
        type=two_sizes("WIDTHxHEIGHT", "1152x864"),
        default=(1152, 864),
        help="WIDTHxHEIGHT of the image (default 1152x864, 0.995 megapixel)",
    )
    parser.add_argument("--runs", type=int, default=3, help="timed calls per model (median)")
    parser.add_argument("--rss-4k", action="store_true", help="peak RSS of a tiled 3840×2160")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    for name in (args.model, args.reference):
        models.spec(name)  # unknown names fail before anything is measured

    if args.rss_4k:
        tiled_4k(args.model)
    cpu, features = cpu_description()
    print(f"CPU: {cpu}; {os.cpu_count()} logical CPUs; {', '.join(features) or 'no AVX2'}")
    print(
        f"TensorFlow {tf.__version__}, load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}"
    )
    keras.utils.set_random_seed(0)
    nets = {name: models.build(name) for name in (args.model, args.reference)}
    width, height = args.size
    image = np.random.default_rng(0).random((height, width, 3), dtype=np.float32)
    times = time_models(nets, image, args.runs)

    medians = {name: statistics.median(t) for name, t in times.items()}
    print(f"image {width}×{height} ({width * height / 1e6:.3f} MP), tfderain.derain, batch 1")
    for name, net in nets.items():
        print(
            f"  {name:12s} {net.count_params():>9,d} params   median {medians[name]:8.3f} s   "
            f"(runs: {', '.join(f'{t:.3f}' for t in times[name])})"
        )
    ratio = medians[args.model] / medians[args.reference]
    print(f"ratio {args.model} / {args.reference}: {ratio:.4f} (1/{1 / ratio:.1f})")
    print(f"load average after: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
