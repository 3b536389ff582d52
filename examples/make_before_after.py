"""Make ``examples/before_after.jpg``, the README's picture: ``examples/rainy.png`` beside what the
bundled default model makes of it (``tfderain.derain`` with no model given)::

    python examples/make_before_after.py

Run it again whenever the bundled default model changes; a test checks that the right half is
the current default model's output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import tfderain
from tfderain import io

HERE = Path(__file__).resolve().parent
#: White gap between the two halves, in pixels.
GAP = 8


def before_after(rainy: np.ndarray) -> np.ndarray:
    """``rainy | gap | derained`` side by side, floats in [0, 1]."""
    derained = tfderain.derain(rainy)
    gap = np.ones((rainy.shape[0], GAP, 3), np.float32)
    return np.concatenate([rainy, gap, derained], axis=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rainy", type=Path, default=HERE / "rainy.png")
    parser.add_argument("-o", "--output", type=Path, default=HERE / "before_after.jpg")
    args = parser.parse_args(argv)
    try:
        rainy = io.read_image(args.rainy).rgb
    except (io.ImageError, OSError) as exc:
        print(f"make_before_after: {exc}", file=sys.stderr)
        return 2
    io.write_image(args.output, before_after(rainy), jpeg_quality=90)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
