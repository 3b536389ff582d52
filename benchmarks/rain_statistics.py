"""Rain-layer statistics of the synthetic rain styles next to real benchmark pairs (a report).

For every rainy/clean pair, on luminance ``Y = 0.299 R + 0.587 G + 0.114 B`` in [0, 1]:

* **veil**: ``Y_rainy ~ slope * Y_clean + offset`` from the lower envelope of the residual
  (10th percentile of ``Y_rainy - Y_clean`` in 16 bins of ``Y_clean``, a line fitted through
  them weighted by the root of the bin counts):
  rain only adds light, so the least-rained pixels show the veil alone; ``slope`` < 1 is lost
  contrast, ``offset`` the added light (``alpha`` and ``(1 - alpha) A`` in Yang et al.'s model);
  ``slope`` 1, ``offset`` 0 means none (where rain covers nearly every pixel the envelope rises
  with it and reads as a veil);
* **rain layer** ``S = Y_rainy - (slope * Y_clean + offset)``; rain pixels ``S > 10/255``;
* **coverage**: share of rain pixels; **brightness**: mean ``S`` over rain pixels; **energy**:
  mean of ``max(S, 0)`` over the image;
* **width**, **length**: medians over the rain pixels' 8-connected components of at least 6
  pixels of ``sqrt(12 lambda + 1)`` for the eigenvalues ``lambda`` of each component's pixel
  coordinate covariance (a bar of n pixels has variance (n^2 - 1)/12 along it); crossing streaks
  merge into one component, so lengths of dense rain read long;
* **orientation**: structure tensor of ``max(S, 0)`` (derivatives after a Gaussian of 1 pixel,
  integrated over a Gaussian of 2 pixels); each rain pixel's across-streak direction, weighted
  by the tensor's trace, gives the mean streak angle (degrees from vertical, positive leaning the
  top right) and the spread ``sqrt(-2 ln R) / 2`` in degrees from the doubled-angle mean
  resultant length ``R``.

Sources: ``../shared/data/Rain100H-20`` (``input/N.png``, ``target/N.png``),
``../shared/data/Rain100L-3`` (``rainy/rain-00N.png``, ``norain-00N.png``), and every
:data:`tfderain.data.synthetic.STYLES` rendered on those same clean targets (``--seeds`` renders
each, 8-bit rounded like the real inputs). Nothing here feeds back into the renderer: its
parameters come from the papers cited in :mod:`tfderain.data.synthetic`.

    python benchmarks/rain_statistics.py [--data ../shared/data] [--seeds 2] [--markdown out.md]

A run takes about 30 s on 2 shared Xeon cores; its table, and where the styles and the
benchmarks differ, is in the docstring of :mod:`tfderain.data.synthetic`.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tfderain.data.synthetic import STYLES, add_rain  # noqa: E402

RAIN_THRESHOLD = 10 / 255
VEIL_BINS = 16
ENVELOPE = 0.1
MIN_COMPONENT = 6
LUMA = np.array([0.299, 0.587, 0.114], np.float64)


@dataclass
class Stats:
    coverage: float
    brightness: float
    energy: float
    width: float
    length: float
    angle: float
    spread: float
    slope: float
    offset: float


def read_rgb(path: Path) -> np.ndarray:
    """An RGB float image in [0, 1]; a one-line error naming the file when unreadable."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"{path}: not a readable image")
    return image[..., ::-1].astype(np.float32) / 255.0


def real_pairs(data: Path) -> dict[str, list[tuple[Path, Path]]]:
    """The benchmark pairs under ``data``, by source name."""
    heavy = data / "Rain100H-20"
    light = data / "Rain100L-3"
    sources = {
        "Rain100H-20": [
            (p, heavy / "target" / p.name)
            for p in sorted((heavy / "input").glob("*.png"), key=lambda p: int(p.stem))
        ],
        "Rain100L-3": [
            (p, light / p.name.replace("rain-", "norain-"))
            for p in sorted((light / "rainy").glob("rain-*.png"))
        ],
    }
    for name, pairs in sources.items():
        if not pairs:
            raise SystemExit(f"{data}: no {name} pairs found")
        for rainy, clean in pairs:
            if not clean.is_file():
                raise SystemExit(f"{clean}: missing clean image for {rainy}")
    return sources


def veil(y_rain: np.ndarray, y_clean: np.ndarray) -> tuple[float, float]:
    """``(slope, offset)`` of the veil ``Y_rainy ~ slope * Y_clean + offset``: a line through
    the lower envelope of the residual ``Y_rainy - Y_clean`` (its 10th percentile in each of 16
    clean-brightness bins) against ``Y_clean``; rain only adds light, so the least-rained pixels
    of a bin show the veil alone."""
    bins = np.minimum((y_clean * VEIL_BINS).astype(int), VEIL_BINS - 1)
    xs, ys, ws = [], [], []
    for b in range(VEIL_BINS):
        members = bins == b
        n = int(members.sum())
        if n >= 50:
            xs.append(float(np.median(y_clean[members])))
            ys.append(float(np.quantile(y_rain[members] - y_clean[members], ENVELOPE)))
            ws.append(math.sqrt(n))
    if len(xs) < 2:
        return 1.0, 0.0
    gain, offset = np.polyfit(xs, ys, 1, w=ws)
    return 1.0 + float(gain), float(offset)


def statistics(rainy: np.ndarray, clean: np.ndarray) -> Stats:
    """The rain-layer statistics of one pair (module docstring)."""
    y_rain = rainy.astype(np.float64) @ LUMA
    y_clean = clean.astype(np.float64) @ LUMA
    slope, offset = veil(y_rain, y_clean)
    layer = y_rain - (slope * y_clean + offset)
    mask = layer > RAIN_THRESHOLD
    positive = np.maximum(layer, 0.0).astype(np.float32)

    widths, lengths = [], []
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    ys, xs = np.nonzero(mask)
    ids = labels[ys, xs]
    order = np.argsort(ids, kind="stable")
    ys, xs, ids = ys[order], xs[order], ids[order]
    bounds = np.searchsorted(ids, np.arange(1, count + 1))
    for k in range(1, count):
        lo, hi = bounds[k - 1], bounds[k]
        if hi - lo < MIN_COMPONENT:
            continue
        cov = np.cov(np.stack([xs[lo:hi], ys[lo:hi]]).astype(np.float64))
        small, large = np.linalg.eigvalsh(cov)
        lengths.append(math.sqrt(12 * max(large, 0.0) + 1))
        widths.append(math.sqrt(12 * max(small, 0.0) + 1))

    smooth = cv2.GaussianBlur(positive, (0, 0), 1.0)
    gy, gx = np.gradient(smooth.astype(np.float64))
    jxx = cv2.GaussianBlur(gx * gx, (0, 0), 2.0)[mask]
    jyy = cv2.GaussianBlur(gy * gy, (0, 0), 2.0)[mask]
    jxy = cv2.GaussianBlur(gx * gy, (0, 0), 2.0)[mask]
    # The dominant gradient direction, doubled: (jxx - jyy, 2 jxy) has length trace * coherence.
    weight = jxx + jyy
    doubled = np.arctan2(2 * jxy, jxx - jyy)
    if weight.sum() > 0:
        resultant = np.sum(weight * np.exp(1j * doubled)) / weight.sum()
        # Across-streak angle phi from +x towards +y equals the streak's lean from vertical.
        angle = math.degrees(np.angle(resultant) / 2)
        spread = math.degrees(math.sqrt(-2 * math.log(max(abs(resultant), 1e-12))) / 2)
    else:
        angle = spread = float("nan")

    return Stats(
        coverage=float(mask.mean()),
        brightness=float(layer[mask].mean()) if mask.any() else 0.0,
        energy=float(positive.mean()),
        width=float(np.median(widths)) if widths else float("nan"),
        length=float(np.median(lengths)) if lengths else float("nan"),
        angle=angle,
        spread=spread,
        slope=float(slope),
        offset=float(offset),
    )


def quantize(image: np.ndarray) -> np.ndarray:
    return np.round(image * 255.0).astype(np.float32) / 255.0


def table(rows: list[tuple[str, int, list[Stats]]]) -> str:
    head = (
        "| source | pairs | coverage % | brightness | energy ×100 | width px | length px "
        "| angle ° | spread ° | veil slope | veil offset |"
    )
    lines = [head, "|" + "---|" * 11]
    for name, n, stats in rows:

        def med(field: str, stats: list[Stats] = stats) -> float:
            return float(np.nanmedian([getattr(s, field) for s in stats]))

        lines.append(
            f"| {name} | {n} | {100 * med('coverage'):.1f} | {med('brightness'):.3f} "
            f"| {100 * med('energy'):.2f} | {med('width'):.2f} | {med('length'):.1f} "
            f"| {med('angle'):+.1f} | {med('spread'):.1f} | {med('slope'):.3f} "
            f"| {med('offset'):+.3f} |"
        )
    return "\n".join(lines)


def write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    root = Path(__file__).resolve().parents[1]
    parser.add_argument("--data", type=Path, default=root.parent / "shared" / "data")
    parser.add_argument("--seeds", type=int, default=2, help="renders per style and image")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, got {args.seeds}")

    sources = real_pairs(args.data)
    rows: list[tuple[str, int, list[Stats]]] = []
    cleans: list[np.ndarray] = []
    start = time.perf_counter()
    for name, pairs in sources.items():
        stats = []
        for i, (rainy_path, clean_path) in enumerate(pairs, 1):
            rainy, clean = read_rgb(rainy_path), read_rgb(clean_path)
            if rainy.shape != clean.shape:
                raise SystemExit(f"{rainy_path}: shape {rainy.shape} differs from {clean_path}")
            stats.append(statistics(rainy, clean))
            cleans.append(clean)
            print(f"\r{name}: {i}/{len(pairs)}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        rows.append((name, len(pairs), stats))

    for style in STYLES:
        stats = []
        for i, clean in enumerate(cleans):
            for seed in range(args.seeds):
                rng = np.random.default_rng([seed, i])
                rainy, _, _ = add_rain(clean, rng, style=style)
                stats.append(statistics(quantize(rainy), clean))
            print(f"\rstyle {style}: {i + 1}/{len(cleans)}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        rows.append((f"synthetic {style}", len(stats), stats))

    text = table(rows)
    print(text)
    print(f"({time.perf_counter() - start:.1f} s)", file=sys.stderr)
    if args.markdown:
        write_atomic(args.markdown, text + "\n")


if __name__ == "__main__":
    main()
