"""The error of every export step (a one-line message, shown as is by the command line)."""

from __future__ import annotations


class ExportError(ValueError):
    """An export could not be made as asked."""
