"""Score every preset whose file is in ../shared/weights; write tfderain/presets_scores.json.

Run by hand (it derains 23 images per preset; about a minute per PReNet preset on 2 CPU cores):

    nice -n 10 python benchmarks/score_presets.py [--presets NAME ...] [--skip-arch mcodenet]

The weights go through the real :func:`tfderain.presets.resolve` path: ``$TFDERAIN_MIRROR`` is
pointed at a mirror-layout folder of symlinks to ../shared/weights and ``$TFDERAIN_HOME`` at an
empty temporary cache, so each preset is fetched, hash-checked and converted as on first use.
The bundled default model is scored too. Each image is derained once and scored under both
protocols (A: PReNet's MATLAB statistics, B: MPRNet/Restormer's evaluate_PSNR_SSIM.m), after
the model's own official 8-bit output rule (:mod:`tfderain.evaluation`).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

import _mirror  # noqa: E402

from tfderain import (  # noqa: E402
    __version__,
    _machine,
    evaluation,
    inference,
    io,
    models,
    presets,
)

DATASETS = ("Rain100H-20", "Rain100L-3")
PROTOCOLS = ("A", "B")
OUTPUT = REPO / "tfderain" / "presets_scores.json"


class DerainOnce:
    """A derainer that remembers its outputs, so both protocols score one derained image."""

    def __init__(self, derainer: inference.Derainer):
        self.spec = derainer.spec
        self._derainer = derainer
        self._done: dict[str, object] = {}

    def derain_array(self, rgb):
        key = hashlib.sha1(rgb.tobytes()).hexdigest() + str(rgb.shape)
        if key not in self._done:
            self._done[key] = self._derainer.derain_array(rgb)
        return self._done[key]


def score_preset(name: str, data_dir: Path) -> dict:
    """Per-image and mean PSNR/SSIM of preset ``name`` on each dataset under both protocols."""
    derainer = DerainOnce(inference.Derainer(presets.load(name)))
    result = {}
    for dataset in DATASETS:
        result[dataset] = {}
        for protocol in PROTOCOLS:
            evaluated = evaluation.evaluate(derainer, data_dir / dataset, protocol, progress=True)
            if evaluated.failed:
                raise SystemExit(f"{name}: {dataset}: failed pairs {evaluated.failed}")
            result[dataset][protocol] = {
                "images": [s.name for s in evaluated.scores],
                "psnr": [s.psnr for s in evaluated.scores],
                "ssim": [s.ssim for s in evaluated.scores],
                "luma_ratio": [s.luma_ratio for s in evaluated.scores],
                "mean_psnr": evaluated.mean_psnr,
                "mean_ssim": evaluated.mean_ssim,
                "brightness_error": evaluated.brightness_error,
            }
            print(
                f"{name} {dataset} protocol {protocol}: "
                f"{evaluated.mean_psnr:.3f} dB / {evaluated.mean_ssim:.4f}, "
                f"brightness off by {100 * evaluated.brightness_error:.1f} %",
                flush=True,
            )
    return result


def write(output: Path, scores: dict, skipped: dict) -> None:
    """The scores file, written atomically."""
    document = {
        "date": datetime.date.today().isoformat(),
        "cpu": _machine.cpu().name,
        "tfderain_version": __version__,
        "datasets": {d: f"../shared/data/{d}" for d in DATASETS},
        "protocols": {
            "A": "PReNet statistic/*.m: unrounded Y, SSIM with automatic downsampling",
            "B": "MPRNet/Restormer evaluate_PSNR_SSIM.m: Y rounded to 8 bits, no downsampling",
        },
        "output_rule": "each model's official 8-bit rule (tfderain.evaluation)",
        "presets": dict(sorted(scores.items())),
        "skipped": dict(sorted(skipped.items())),
    }
    text = json.dumps(document, indent=1) + "\n"
    io.write_bytes_atomically(output, text.encode())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--presets", nargs="+", help="only these (merged into the output file)")
    parser.add_argument("-o", "--output", type=Path, default=OUTPUT)
    parser.add_argument(
        "--skip-arch",
        action="append",
        default=[],
        metavar="ARCH",
        help="record the presets of ARCH as not scored (mcodenet: about 40 s per image on CPU)",
    )
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="tfderain-score-"))
    os.environ["TFDERAIN_MIRROR"] = str(work / "mirror")
    os.environ["TFDERAIN_HOME"] = str(work / "home")
    served = _mirror.build_mirror(args.shared / "weights", work / "mirror")
    served.sort(key=lambda name: presets.get(name).size or 0)  # quick ones first
    wanted = [presets.DEFAULT, *served] if args.presets is None else args.presets
    known_archs = set(models.names())

    try:
        scores = {}
        skipped = {}
        if args.presets is not None and args.output.is_file():
            previous = json.loads(args.output.read_text())
            scores, skipped = previous.get("presets", {}), previous.get("skipped", {})
        for name in wanted:
            preset = presets.get(name)
            if preset.arch in args.skip_arch:
                skipped[preset.name] = "not scored in this run (--skip-arch): slow on CPU"
                print(f"{preset.name}: skipped ({skipped[preset.name]})", flush=True)
                write(args.output, scores, skipped)
                continue
            if preset.arch not in known_archs:
                skipped[preset.name] = f"architecture {preset.arch!r} is not registered"
                print(f"{preset.name}: skipped ({skipped[preset.name]})", flush=True)
                write(args.output, scores, skipped)
                continue
            start = time.perf_counter()
            scores[preset.name] = score_preset(name, args.shared / "data")
            skipped.pop(preset.name, None)
            print(f"{preset.name}: {time.perf_counter() - start:.0f} s", flush=True)
            write(args.output, scores, skipped)  # after each preset: a long run keeps its progress

        write(args.output, scores, skipped)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.output}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
