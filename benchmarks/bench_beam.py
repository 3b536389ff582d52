"""Images per second of ``tfderain.beam.DerainImages`` on the DirectRunner against
:class:`tfderain.inference.Derainer` in one process, over the same folder.

* **Derainer**: one process, model loaded and traced before timing; each image is read,
  derained and written (PNG) as ``tfderain derain`` does.
* **Beam, N workers**: ``DerainImages`` (``overwrite=True``, into a fresh folder) on the
  DirectRunner in multi-process mode with ``--direct_num_workers N``; the wall time from
  ``pipeline.run()`` to the end, so it includes starting the worker processes, importing
  TensorFlow and loading the model in each (a fixed cost that a larger folder amortizes).
  ``in-worker`` is the images per second implied by the manifest's per-image ``seconds``
  (reading, deraining and writing, summed over images and divided by the workers): the rate
  without that fixed cost.

Each figure is the median over ``--runs`` runs; ratios are against the Derainer. The CPU model,
its vector flags and the load average are printed with the table, since on a shared machine
they decide the numbers.

    python benchmarks/bench_beam.py [--data ../shared/data/Rain100H-20/input] [--limit 8]
        [--runs 3] [--workers 1,2] [--weights model.keras]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import apache_beam as beam  # noqa: E402
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402

from tfderain import _machine, _quiet, inference, io, saving  # noqa: E402
from tfderain.beam import DerainImages, DerainModelHandler, model_ref  # noqa: E402
from tfderain.beam.model import default_model_path  # noqa: E402

#: Vector instruction flags worth printing (they decide oneDNN's kernels).
FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "amx_tile")


def cpu() -> str:
    """``"<model name> (<flags>), <n> CPUs"`` (:func:`tfderain._machine.cpu`)."""
    machine = _machine.cpu()
    flags = ", ".join(machine.having(FLAGS)) or "flags unknown"
    return f"{machine.name} ({flags}), {os.cpu_count()} CPUs"


def derainer_rate(files: list[Path], weights: Path, runs: int) -> float:
    """Images/s of Derainer in this process (read, derain, write)."""
    derainer = inference.Derainer(saving.load_model(weights))
    derainer.derain_image(io.read_image(files[0]))  # trace once
    rates = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            for path in files:
                result = derainer.derain_image(io.read_image(path))
                io.write_image(Path(out) / path.name, result.rgb, result.alpha, result.bit_depth)
            rates.append(len(files) / (time.perf_counter() - start))
    return statistics.median(rates)


def beam_rates(files: list[Path], weights: Path, workers: int, runs: int) -> tuple[float, float]:
    """``(wall, in-worker)`` images/s of DerainImages with ``workers`` worker processes."""
    handler = DerainModelHandler(model_ref(weights=str(weights)))
    walls, inner = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as out:
            options = PipelineOptions(
                [
                    f"--direct_num_workers={workers}",
                    "--direct_running_mode=multi_processing",
                    "--default_sdk_harness_log_level=WARNING",
                ],
                runner="DirectRunner",
            )
            pipeline = beam.Pipeline(options=options)
            _ = pipeline | DerainImages([str(p) for p in files], out, handler, overwrite=True)
            start = time.perf_counter()
            pipeline.run().wait_until_finish()
            walls.append(len(files) / (time.perf_counter() - start))
            rows = [json.loads(x) for x in (Path(out) / "manifest.jsonl").read_text().splitlines()]
            if any(r["status"] != "written" for r in rows):
                raise SystemExit(f"not every image was written: {rows}")
            inner.append(len(files) * workers / sum(r["seconds"] for r in rows))
    return statistics.median(walls), statistics.median(inner)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=REPO.parent / "shared" / "data" / "Rain100H-20" / "input",
        help="folder of images (default: ../shared/data/Rain100H-20/input)",
    )
    parser.add_argument("--limit", type=int, default=8, help="first N images (default 8)")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--workers", default="1,2", help="worker counts (default 1,2)")
    parser.add_argument("--weights", type=Path, help=".keras model (default: bundled model)")
    args = parser.parse_args(argv)
    files = sorted(p for p in args.data.iterdir() if io.is_image_path(p))[: args.limit]
    if not files:
        parser.error(f"{args.data}: no images")
    weights = args.weights or default_model_path()
    # Worker processes must import this checkout's tfderain.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")])
    )
    counts = [int(w) for w in args.workers.split(",")]
    sizes = {io.read_image(p).rgb.shape[:2] for p in files}
    print(f"CPU: {cpu()}")
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{len(files)} images from {args.data} (sizes {sorted(sizes)}), model {weights.name}")
    with _quiet.tensorflow_logs():
        base = derainer_rate(files, weights, args.runs)
        rows = [("Derainer, 1 process", base, None)]
        for n in counts:
            wall, inner = beam_rates(files, weights, n, args.runs)
            rows.append((f"Beam DirectRunner, {n} worker(s)", wall, inner))
    print(f"median of {args.runs} runs; ratio = images/s ÷ Derainer's")
    print(f"{'':34s} {'images/s':>9s} {'ratio':>6s} {'in-worker':>10s} {'ratio':>6s}")
    for name, rate, inner in rows:
        extra = f" {inner:10.3f} {inner / base:6.2f}" if inner is not None else ""
        print(f"{name:34s} {rate:9.3f} {rate / base:6.2f}{extra}")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
