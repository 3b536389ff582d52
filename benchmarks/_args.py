"""Command-line value types shared by the benchmark scripts."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def two_sizes(layout: str, example: str) -> Callable[[str], tuple[int, int]]:
    """An argparse ``type`` for ``"AxB"`` (two positive integers, in the order written);
    anything else is a one-line usage error naming ``layout`` (e.g. ``"HxW"``) and ``example``."""

    def parse(text: str) -> tuple[int, int]:
        parts = text.lower().split("x")
        if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise argparse.ArgumentTypeError(f"expected {layout} such as {example}, got {text!r}")
        return int(parts[0]), int(parts[1])

    return parse
