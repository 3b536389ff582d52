"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Reference material (goldens, small datasets, checkpoints) lives next to the repository.
SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """Path of ``../shared``; skips when it is missing, except with ``CI=true`` where it fails."""
    if not SHARED_DIR.is_dir():
        reason = f"shared reference data not found at {SHARED_DIR}"
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(f"{reason} (required when CI=true)")
        pytest.skip(reason)
    return SHARED_DIR


@pytest.fixture(scope="session")
def golden(shared_dir):
    """``golden(name)`` → (manifest dict, io.npz arrays, folder) of ``../shared/golden/<name>``."""
    import json

    import numpy as np

    def load(name: str):
        folder = shared_dir / "golden" / name
        manifest = json.loads((folder / "manifest.json").read_text())
        io = dict(np.load(folder / "io.npz")) if (folder / "io.npz").exists() else {}
        return manifest, io, folder

    return load
