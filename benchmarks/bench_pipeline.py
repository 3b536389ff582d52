"""Throughput of the paired pipeline against what PReNet training consumes, side by side.

At PReNet's training settings (100×100 patches, batch 18, flips and rotations), on a folder of
481×321 pairs (``--data PATH``, or a temporary folder of ``--pairs`` random-content pairs in
``--format`` jpg or png, written in the Rain13K ``input/`` + ``target/`` layout):

* **pipeline, unpacked**: examples/s of :func:`tfderain.data.paired_dataset` on the folder
  (``num_parallel_calls=AUTOTUNE``, no cache: every element reads and decodes its two files);
* **pipeline, packed**: the same on a TFRecord pack of the folder
  (:func:`tfderain.data.tfrecord.pack`);
* **training**: examples/s of PReNet (``models.build("prenet")``, paper config) compiled with
  Adam and the negative SSIM loss (:class:`tfderain.losses.NegativeSSIM`), ``train_on_batch``
  on a fixed batch, median step time over ``--steps`` steps after warm-up.

Each pipeline figure is the median over ``--runs`` timed windows of ``--batches`` batches after
a warm-up window; the ratios pipeline / training say how far the input pipeline outpaces the
model (the target is 5× or more). The machine may be shared: everything runs in one process,
one after the other, and the load average is printed.

    python benchmarks/bench_pipeline.py [--data PATH] [--pairs 200] [--format jpg]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tfderain.data import paired_dataset  # noqa: E402
from tfderain.data.tfrecord import pack  # noqa: E402

PATCH, BATCH = 100, 18
SIZE = (321, 481)  # height, width


def make_folder(root: Path, pairs: int, fmt: str) -> Path:
    """Random-content pairs: smooth noise for the clean image, plus bright streaks for rainy."""
    rng = np.random.default_rng(0)
    for folder in ("input", "target"):
        (root / folder).mkdir(parents=True)
    for k in range(pairs):
        small = rng.integers(0, 256, (SIZE[0] // 8 + 1, SIZE[1] // 8 + 1, 3), dtype=np.uint8)
        clean = cv2.resize(small, SIZE[::-1], interpolation=cv2.INTER_CUBIC)
        clean = np.clip(clean.astype(np.int16) + rng.integers(-8, 9, clean.shape), 0, 255)
        rainy = clean.copy()
        streaks = rng.random(SIZE) < 0.02
        rainy[streaks] = 230
        cv2.imwrite(str(root / "input" / f"{k}.{fmt}"), rainy.astype(np.uint8))
        cv2.imwrite(str(root / "target" / f"{k}.{fmt}"), clean.astype(np.uint8))
    return root


def pipeline_rate(source: Path, batches: int, runs: int) -> float:
    """Median examples/s of the paired pipeline over ``runs`` windows of ``batches`` batches."""
    ds = paired_dataset(source, patch_size=PATCH, batch_size=BATCH, seed=0, augment=True)
    it = iter(ds)
    for _ in range(batches):  # warm-up: threads, autotuning, file cache
        next(it)
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(batches):
            next(it)
        rates.append(batches * BATCH / (time.perf_counter() - start))
    return statistics.median(rates)


def training_rate(steps: int) -> float:
    """Examples/s of PReNet ``train_on_batch`` (Adam, negative SSIM) on a fixed batch."""
    from bench_training import step_times  # benchmarks/bench_training.py, beside this script

    times = step_times("prenet", "float32", False, BATCH, PATCH, "negative_ssim", 2, steps)
    return BATCH / statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="dataset folder (default: generated)")
    parser.add_argument("--pairs", type=int, default=200, help="generated pairs")
    parser.add_argument("--format", choices=("jpg", "png"), default="jpg")
    parser.add_argument("--batches", type=int, default=10, help="batches per timed window")
    parser.add_argument("--runs", type=int, default=3, help="timed windows per pipeline")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench_pipeline."))
    try:
        data = args.data or make_folder(work / "data", args.pairs, args.format)
        packed = work / "packed"
        start = time.perf_counter()
        report = pack(data, packed, shards=4)
        pack_s = time.perf_counter() - start
        print(f"data: {data} ({report.count} pairs; packed in {pack_s:.1f} s)")
        print(
            f"settings: patch {PATCH}, batch {BATCH}, augment, AUTOTUNE; cores {os.cpu_count()}",
            flush=True,
        )
        unpacked = pipeline_rate(data, args.batches, args.runs)
        print(f"pipeline, unpacked: {unpacked:8.1f} examples/s", flush=True)
        packed_rate = pipeline_rate(packed, args.batches, args.runs)
        print(f"pipeline, packed:   {packed_rate:8.1f} examples/s", flush=True)
        train = training_rate(args.steps)
        print(
            f"PReNet training:    {train:8.2f} examples/s  "
            f"(train_on_batch, median step {BATCH / train:.1f} s)"
        )
        print(f"ratio unpacked / training: {unpacked / train:.1f}x")
        print(f"ratio packed / training:   {packed_rate / train:.1f}x")
        print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
