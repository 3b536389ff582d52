"""PSNR of the app's exported models against their float Keras models, tiled as the app tiles.

For each variant folder of ``assets/models`` (written by ``export/android_assets.py``):

* the ``.tflite`` file runs as the app runs it, through the Python twin of the app's core
  (``make_golden.derain``: 8-bit photo, reflect padding, the descriptor's fixed tiles and halo,
  quantization of the input, LiteRT, dequantization of the output, raised-cosine blending);
* its float Keras model runs through the same pipeline and the same tiles, with float32 input
  and output tiles;
* both are scored on a paired test set under protocol A by ``tfderain.evaluation.score_pairs``
  (outputs made 8-bit by the model's output rule), and the difference is printed.

The float model is the one the descriptor's ``source`` names (its preset, from
``--weights-dir`` when that holds a copy of the preset's upstream file), or ``--keras FILE``::

    python android_demo/tools/score_assets.py --data ../shared/data/Rain100H-20

prints one Markdown table row per variant (file size, float dB, file dB, difference, CPU) and
exits with 1 when a file loses more than ``--max-loss`` dB (when given).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DEFAULT_MODELS = REPO / "android_demo" / "app" / "src" / "main" / "assets" / "models"
SPEC_FILE = "model_spec.json"
HEADER = (
    "| variant | `.tflite` size | PSNR, float `.keras` (dB) | PSNR, `.tflite` (dB) | Δ (dB) "
    "| pairs | CPU |\n|---|---|---|---|---|---|---|"
)


def twin() -> Any:
    """``make_golden``, the Python twin of the app's core (beside this script)."""
    name = "tfderain_make_golden"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE / "make_golden.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


class AppDerainer:
    """A derainer of :mod:`tfderain.evaluation` (``spec``, ``derain_array``) running the app's
    pipeline: ``run`` takes the bytes of one input tile and returns the bytes of each output
    (``make_golden.LiteRTEngine.run``, or :func:`keras_tiles` for the float model)."""

    def __init__(self, descriptor: dict, run: Callable[[bytes], list[bytes]], spec: Any):
        self.descriptor = descriptor
        self.run = run
        self.spec = spec

    def derain_array(self, rgb: np.ndarray) -> np.ndarray:
        from tfderain import io

        out, _ = twin().derain(io.to_uint8(rgb), self.descriptor, self.run)
        return out


def float_descriptor(descriptor: dict) -> dict:
    """``descriptor`` with one float32 input and one float32 ``derained`` output (same tile)."""
    tile = descriptor["tile"]
    shape = [1, tile["height"], tile["width"], 3]
    tensor = {"index": 0, "shape": shape, "dtype": "float32", "quantization": None}
    return {
        **descriptor,
        "inputs": [{"name": "rainy", **tensor}],
        "outputs": [{"name": "derained", **tensor}],
    }


def keras_tiles(model: Any, descriptor: dict) -> Callable[[bytes], list[bytes]]:
    """One float32 tile's bytes → ``[bytes of the float model's derained tile]``."""
    from tfderain.export.runtime import keras_reference

    shape = descriptor["inputs"][0]["shape"][1:]
    reference = keras_reference(model)

    def run(data: bytes) -> list[bytes]:
        tile = np.frombuffer(data, "<f4").reshape(shape)
        return [np.asarray(reference(tile)["derained"], "<f4").tobytes()]

    return run


def float_model(descriptor: dict, keras_file: Path | None, weights_dir: Path | None) -> Any:
    """The float model of an exported file: ``keras_file``, else the descriptor's source preset
    (converted from its copy in ``weights_dir`` when there is one)."""
    from tfderain import presets
    from tfderain.saving import load_model

    if keras_file is not None:
        return load_model(keras_file)
    name = (descriptor.get("source") or {}).get("preset")
    if name is None:
        raise ValueError(f"{descriptor['file']}: no source preset in its descriptor; use --keras")
    preset = presets.get(name)
    copy = None if weights_dir is None else presets.local_copy(preset, weights_dir)
    return presets.convert_file(preset, copy) if copy is not None else presets.load(name)


def score(folder: Path, pairs: Sequence[Any], model: Any) -> dict[str, Any]:
    """Scores of the exported variant in ``folder`` and of its float ``model``, same tiles."""
    from tfderain import models
    from tfderain.evaluation import mean_psnr

    descriptor = json.loads((folder / SPEC_FILE).read_text())
    tflite = folder / descriptor["file"]
    spec = models.spec_of(model)
    engine = twin().LiteRTEngine(tflite, descriptor)
    exported = mean_psnr(AppDerainer(descriptor, engine.run, spec), pairs)
    reference = float_descriptor(descriptor)
    float_psnr = mean_psnr(AppDerainer(reference, keras_tiles(model, reference), spec), pairs)
    return {
        "variant": folder.name,
        "file": tflite.name,
        "size": tflite.stat().st_size,
        "quantization": descriptor["quantization"],
        "float_psnr": float_psnr,
        "psnr": exported,
        "difference": exported - float_psnr,
        "pairs": len(pairs),
    }


def row(result: dict[str, Any], cpu: str) -> str:
    """One Markdown table row of :data:`HEADER`."""
    r = result
    return (
        f"| {r['variant']} | {r['size'] / 1e6:.2f} MB | {r['float_psnr']:.3f} | {r['psnr']:.3f} "
        f"| {r['difference']:+.3f} | {r['pairs']} | {cpu} |"
    )


def main(argv: Sequence[str] | None = None) -> int:
    from tfderain.data.layouts import LayoutError, find_pairs
    from tfderain.export.report import cpu_summary

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="paired test set")
    parser.add_argument("--models", type=Path, default=DEFAULT_MODELS, help="assets/models")
    parser.add_argument("--variants", nargs="+", help="variant folders (default: all)")
    parser.add_argument("--images", type=int, help="score the first N pairs only")
    parser.add_argument("--keras", type=Path, help="float model (default: the source preset)")
    parser.add_argument(
        "--weights-dir", type=Path, help="folder with the official checkpoints (source presets)"
    )
    parser.add_argument("--max-loss", type=float, help="fail when a file loses more (dB)")
    args = parser.parse_args(argv)
    try:
        pairs = list(find_pairs(args.data))[: args.images]
    except (LayoutError, OSError) as exc:
        print(f"score_assets: {exc}", file=sys.stderr)
        return 2
    names = args.variants or sorted(p.parent.name for p in args.models.glob(f"*/{SPEC_FILE}"))
    if not names:
        print(f"{args.models}: no exported variant", file=sys.stderr)
        return 2
    missing = [n for n in names if not (args.models / n / SPEC_FILE).is_file()]
    if missing:
        print(f"{args.models}: no {SPEC_FILE} for {', '.join(missing)}", file=sys.stderr)
        return 2
    cpu = cpu_summary()
    print(HEADER)
    failed = False
    for name in names:
        folder = args.models / name
        descriptor = json.loads((folder / SPEC_FILE).read_text())
        model = float_model(descriptor, args.keras, args.weights_dir)
        result = score(folder, pairs, model)
        print(row(result, cpu), flush=True)
        if args.max_loss is not None and -result["difference"] > args.max_loss:
            print(f"{name}: loses more than {args.max_loss} dB", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
