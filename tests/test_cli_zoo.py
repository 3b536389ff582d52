"""Every architecture works through `tfderain derain --model` and `tfderain evaluate --model`."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest
from tiny_models import TINY_MODELS

from tfderain import cli, models
from tfderain.saving import save_model


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(1)
    clean = cv2.GaussianBlur(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8), (7, 7), 2)
    rainy = np.clip(clean.astype(int) + (rng.random((50, 70, 1)) > 0.97) * 120, 0, 255)
    for sub, img in (("input", rainy), ("target", clean)):
        (root / sub).mkdir()
        cv2.imwrite(str(root / sub / "1.png"), img.astype(np.uint8))
    return root


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(n for n in TINY_MODELS if n in models.names()))
def test_derain_and_evaluate_with_any_model(name, tiny_dataset, tmp_path, capsys):
    config, _ = TINY_MODELS[name]
    weights = save_model(models.build(name, **config), tmp_path / f"{name}.keras")
    rainy = tiny_dataset / "input" / "1.png"
    out = tmp_path / "out.png"
    args = ["--model", name, "--weights", str(weights)]
    assert cli.main(["derain", str(rainy), "-o", str(out), "-q", *args]) == 0
    assert cv2.imread(str(out)).shape == (50, 70, 3)  # padded to the model's multiple and back
    saved, table = tmp_path / "saved", tmp_path / "scores.csv"
    evaluate = ["evaluate", "--data", str(tiny_dataset), "--protocol", "rgb", "-q"]
    assert cli.main([*evaluate, "--save-outputs", str(saved), "--csv", str(table), *args]) == 0
    assert "protocol rgb: 1 images" in capsys.readouterr().out
    # The reported PSNR is that of the saved 8-bit output against the clean image, computed here
    # from its definition (peak 255, MSE over the three channels), and the output is the model's.
    (row,) = list(csv.DictReader(table.open()))
    output = cv2.imread(str(saved / "1.png")).astype(np.float64)
    clean = cv2.imread(str(tiny_dataset / "target" / "1.png")).astype(np.float64)
    expected = 10 * np.log10(255.0**2 / np.mean((output - clean) ** 2))
    assert float(row["psnr"]) == pytest.approx(expected, abs=1e-4)
    derained = cv2.imread(str(out)).astype(np.float64)
    assert np.abs(derained - output).max() <= 1  # the same network output, 8-bit by its rule
