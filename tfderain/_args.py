"""argparse types shared by the command lines (``tfderain``, ``python -m tfderain.beam``): each
checks one option's value when it is parsed, so argparse names the option in its one-line error."""

from __future__ import annotations

import argparse
import math

__all__ = ["jpeg_quality", "non_negative_int", "positive_int", "strength"]


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
