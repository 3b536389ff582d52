"""Peak memory and wall time of tiled inference on a large image.

Builds a registered model with random weights (weights do not change memory or speed), derains a
random image of the given size through :func:`tfderain.inference.derain_array` with the default
tiling settings, and prints the process's peak resident set size and the wall time.

    python benchmarks/bench_tiling_memory.py [--model prenet] [--size 3840x2160]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._args import two_sizes  # noqa: E402
from tfderain import inference, models  # noqa: E402
from tfderain._keras import keras  # noqa: E402


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KiB


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="prenet", help="registry name (default: prenet)")
    parser.add_argument(
        "--size",
        type=two_sizes("WIDTHxHEIGHT", "3840x2160"),
        default=(3840, 2160),
        help="WIDTHxHEIGHT",
    )
    parser.add_argument("--tile", type=int, default=inference.DEFAULT_TILE)
    parser.add_argument("--batch-size", type=int, default=inference.DEFAULT_BATCH_SIZE)
    parser.add_argument("--max-pixels", type=int, default=inference.DEFAULT_MAX_PIXELS)
    parser.add_argument("--repeats", type=int, default=1, help="timed runs (median is printed)")
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(0)
    model = models.build(args.model)
    spec = models.spec(args.model)
    width, height = args.size
    image = np.random.default_rng(0).random((height, width, 3), dtype=np.float32)
    options = dict(
        multiple=spec.multiple,
        halo=spec.halo,
        tile=args.tile,
        max_pixels=args.max_pixels,
        batch_size=args.batch_size,
    )

    # Trace the graph on a small image first so the timings measure inference only.
    inference.derain_array(model, image[:64, :64], **options)
    before = peak_rss_mb()

    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        out = inference.derain_array(model, image, **options)
        times.append(time.perf_counter() - start)
    assert out.shape == image.shape

    tiled = height * width > args.max_pixels
    if tiled:
        padded_h = -(-height // spec.multiple) * spec.multiple
        padded_w = -(-width // spec.multiple) * spec.multiple
        tile = max(spec.multiple, args.tile // spec.multiple * spec.multiple)
        overlap = 2 * spec.halo
        rows = inference.tile_starts(padded_h, min(tile, padded_h), overlap, spec.multiple)
        cols = inference.tile_starts(padded_w, min(tile, padded_w), overlap, spec.multiple)
        layout = (
            f"{len(rows)}×{len(cols)} tiles of {min(tile, padded_h)}×{min(tile, padded_w)}, "
            f"overlap ≥ {overlap}, batch {args.batch_size}"
        )
    else:
        layout = "whole image (no tiling)"
    print(f"model            {args.model} ({model.count_params():,} parameters)")
    print(f"image            {width}×{height}: {layout}")
    print(f"peak RSS         {peak_rss_mb():,.0f} MB (after warm-up: {before:,.0f} MB)")
    print(f"wall time        {statistics.median(times):.1f} s median of {len(times)}")
    print(f"throughput       {width * height / statistics.median(times) / 1e3:,.1f} kpixel/s")


if __name__ == "__main__":
    main()
