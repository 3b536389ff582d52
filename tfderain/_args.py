"""argparse types shared by the command lines (``tfderain``, ``python -m tfderain.beam``): each
checks one option's value when it is parsed, so argparse names the option in its one-line error."""

from __future__ import annotations

import argparse
import math

from tfderain.tiling import DEFAULT_BATCH_SIZE, DEFAULT_MAX_PIXELS, DEFAULT_TILE

__all__ = [
    "add_output_arguments",
    "jpeg_quality",
    "non_negative_int",
    "positive_int",
    "strength",
]


def non_negative_int(text: str) -> int:
    """A whole number ≥ 0 (a seed)."""
    if not text.isdecimal():  # also rejects "-1"
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return int(text)


def positive_int(text: str) -> int:
    """A whole number ≥ 1 (a size or a count)."""
    if not text.isdecimal() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def strength(text: str) -> float:
    """``--strength``: a number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}")
    return value


def jpeg_quality(text: str) -> int:
    """``--jpeg-quality``: a whole number from 1 to 100."""
    if not text.isdecimal() or not 1 <= int(text) <= 100:
        raise argparse.ArgumentTypeError(f"expected an integer from 1 to 100, got {text!r}")
    return int(text)


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``derain`` that shape each result: strength, tiling and JPEG quality."""
    parser.add_argument(
        "--strength",
        type=strength,
        default=1.0,
        help="how much rain to remove, from 0 (the input unchanged) to 1 (the model's output, "
        "default): the output is strength × derained + (1 − strength) × input",
    )
    parser.add_argument(
        "--tile",
        type=positive_int,
        default=DEFAULT_TILE,
        help=f"tile side in pixels for large images (default {DEFAULT_TILE}; rounded down to "
        "the model's multiple, must exceed twice its halo)",
    )
    parser.add_argument(
        "--max-pixels",
        type=positive_int,
        default=DEFAULT_MAX_PIXELS,
        help=f"images with more pixels run in tiles (default {DEFAULT_MAX_PIXELS})",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULT_BATCH_SIZE,
        help=f"tiles per network call (default {DEFAULT_BATCH_SIZE}; memory grows with it)",
    )
    parser.add_argument(
        "--jpeg-quality",
        type=jpeg_quality,
        default=95,
        metavar="N",
        help="quality of JPEG outputs, 1 to 100 (default 95)",
    )
