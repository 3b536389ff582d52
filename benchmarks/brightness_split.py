"""Where a model's brightness error comes from: pixels the rain left alone versus rain pixels.

``tfderain evaluate`` prints the brightness error, the mean over images of
``|mean luma(output) / mean luma(clean) - 1|``. This report splits each pair's pixels by what the
rain did to them, on luminance ``Y = 0.299 R + 0.587 G + 0.114 B`` in [0, 1]:

* **untouched**: ``Y_rainy - Y_clean < 10/255`` and ``Y_clean < 0.7`` (far from white, where
  added light is not clipped away): the rain neither added streaks nor a veil there, so a model
  that keeps the scene's brightness leaves them as they are;
* **rain**: every other pixel.

For each model it prints the mean luma ratio, the brightness error, how many outputs are darker
than their clean image, and the mean ``Y_output - Y_clean`` (in 8-bit steps) over each kind of
pixel. A negative value on untouched pixels is light removed where there was none to remove
(for example a veil of rain accumulation taken out of rain that has none); a positive value on
rain pixels is rain left in.

    python benchmarks/brightness_split.py --data ../shared/data/Rain100H-20 \\
        --model default --model prenet:rain100h [--weights run/model.keras ...]

``--model`` takes preset names, ``--weights`` tfderain ``.keras`` files. About 10 s per model on
20 pairs of 481 x 321 pixels (2 CPU cores).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from tfderain import evaluation, inference, io, load_model, presets  # noqa: E402
from tfderain.data.layouts import find_pairs  # noqa: E402

#: A pixel the rain changed by less than this (luma, in [0, 1]) counts as untouched.
UNTOUCHED = 10 / 255
#: ... when its clean luma is below this: near white, added light is clipped away.
BELOW_WHITE = 0.7
_LUMA = np.array([0.299, 0.587, 0.114])


def split(output: np.ndarray, rainy: np.ndarray, clean: np.ndarray) -> tuple[float, ...]:
    """``(luma ratio, untouched share, mean dY untouched, mean dY rain)`` of one 8-bit pair."""
    y_out, y_rainy, y_clean = (
        np.asarray(a, np.float64) @ _LUMA / 255 for a in (output, rainy, clean)
    )
    untouched = (y_rainy - y_clean < UNTOUCHED) & (y_clean < BELOW_WHITE)
    delta = y_out - y_clean

    def mean(mask: np.ndarray) -> float:
        return float(delta[mask].mean()) if mask.any() else float("nan")

    return y_out.mean() / y_clean.mean(), untouched.mean(), mean(untouched), mean(~untouched)


def report(derainer: inference.Derainer, data: Path, name: str) -> np.ndarray:
    """One row of :func:`split` per pair of ``data``; outputs become 8 bits by the model's own
    output rule, as in ``tfderain evaluate``."""
    try:
        pairs = find_pairs(data)
    except ValueError as exc:  # LayoutError: not a paired dataset
        raise SystemExit(str(exc)) from None
    rows = []
    for pair in tqdm(pairs, desc=name, unit="pair", file=sys.stderr):
        try:
            rainy, clean = evaluation.read_pair(pair)
            if rainy.rgb.shape != clean.rgb.shape:
                raise io.ImageError(pair.rainy, "size differs from its clean image")
        except ValueError as exc:  # ImageError: unreadable or mismatched; skip it
            tqdm.write(f"skipped: {exc}", file=sys.stderr)
            continue
        output = derainer.spec.processor.to_uint8(derainer.derain_array(rainy.rgb)).numpy()
        rows.append(split(output, io.to_uint8(rainy.rgb), io.to_uint8(clean.rgb)))
    if not rows:
        raise SystemExit(f"{data}: no readable rainy/clean pairs")
    return np.array(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a paired dataset folder")
    parser.add_argument("--model", action="append", default=[], help="a preset name")
    parser.add_argument("--weights", action="append", default=[], help="a tfderain .keras file")
    args = parser.parse_args(argv)
    if not args.model and not args.weights:
        parser.error("give at least one --model or --weights")
    if not args.data.is_dir():
        parser.error(f"{args.data}: not a folder")
    print(
        "| model | mean luma ratio | brightness error | darker outputs "
        "| dY untouched (8-bit) | dY rain (8-bit) | untouched share |"
    )
    print("|---|---|---|---|---|---|---|")
    named = [(m, lambda m=m: presets.load(m)) for m in args.model]
    named += [(str(w), lambda w=w: load_model(w)) for w in args.weights]
    for name, load in named:
        try:
            model = load()
        except (presets.PresetError, OSError, ValueError) as exc:
            raise SystemExit(f"{name}: {exc}") from None
        rows = report(inference.Derainer(model), args.data, name)
        ratio = rows[:, 0]
        print(
            f"| {name} | {ratio.mean():.3f} | {100 * np.abs(ratio - 1).mean():.1f} % "
            f"| {int((ratio < 1).sum())} of {len(ratio)} | {255 * np.nanmean(rows[:, 2]):+.1f} "
            f"| {255 * np.nanmean(rows[:, 3]):+.1f} | {100 * rows[:, 1].mean():.0f} % |",
            flush=True,
        )


if __name__ == "__main__":
    main()
