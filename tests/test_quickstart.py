"""The README's Quickstart: the installed console script derains the bundled sample."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _console_script() -> str:
    beside_python = Path(sys.executable).with_name("tfderain")
    return str(beside_python) if beside_python.exists() else (shutil.which("tfderain") or "")


@pytest.mark.slow
def test_quickstart_derains_the_sample_with_the_bundled_model(tmp_path):
    script = _console_script()
    assert script, "the tfderain console script is not installed"
    sample = REPO / "examples" / "rainy.png"
    done = subprocess.run(
        [script, "derain", str(sample), "-o", "derained.png"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    rainy = cv2.imread(str(sample))
    derained = cv2.imread(str(tmp_path / "derained.png"))
    assert derained.shape == rainy.shape
    # Rain streaks are thin and bright: they live in the high spatial frequencies. Deraining must
    # remove much of that energy (measured as the luma minus its Gaussian blur, sigma 2 px) ...
    assert _high_frequency_energy(derained) < 0.8 * _high_frequency_energy(rainy)
    # ... and keep the scene: the coarse picture (blur sigma 8 px) stays correlated with the input.
    coarse = [cv2.GaussianBlur(_luma(i), (0, 0), 8).ravel() for i in (rainy, derained)]
    assert np.corrcoef(*coarse)[0, 1] > 0.9
    # The sample is synthetic rain over examples/clean.png, so the truth is known: the output is
    # much closer to it than the rainy input (PSNR, OpenCV's definition) and as bright as it
    # (rain adds light, about 15 % here; a model that darkens the scene fails).
    clean = cv2.imread(str(REPO / "examples" / "clean.png"))
    assert cv2.PSNR(derained, clean) > cv2.PSNR(rainy, clean) + 5
    grey = [cv2.cvtColor(i, cv2.COLOR_BGR2GRAY).mean() for i in (derained, clean)]
    assert abs(grey[0] / grey[1] - 1) <= 0.05
    # The README's picture shows this sample and what the bundled model makes of it (made by
    # examples/make_before_after.py): both halves agree with today's files up to JPEG loss.
    picture = cv2.imread(str(REPO / "examples" / "before_after.jpg"))
    width = rainy.shape[1]
    assert picture.shape == (rainy.shape[0], 2 * width + 8, 3)
    assert cv2.PSNR(picture[:, :width], rainy) > 33
    assert cv2.PSNR(picture[:, -width:], derained) > 33


def _luma(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64).mean(axis=2)


def _high_frequency_energy(image: np.ndarray) -> float:
    luma = _luma(image)
    return float(np.mean((luma - cv2.GaussianBlur(luma, (0, 0), 2)) ** 2))


def test_bundled_default_model_is_small_and_self_describing():
    from tfderain.api import default_model_path
    from tfderain.saving import read_metadata

    path = default_model_path()
    assert path.stat().st_size <= 2 * 1024 * 1024
    meta = read_metadata(path)
    assert meta["arch"] == "rainunet"
    assert meta["source"]["preset"] == "rainunet:synthetic"


def test_the_picture_script_names_a_missing_sample_in_one_line(tmp_path, capsys):
    from conftest import load_script

    script = load_script("examples/make_before_after.py", "tfderain_make_before_after")
    missing = tmp_path / "rainy.png"
    assert script.main(["--rainy", str(missing), "-o", str(tmp_path / "out.jpg")]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"make_before_after: {missing}: no such file"
    assert not (tmp_path / "out.jpg").exists()
