"""tfderain.callbacks: training's validation scores exactly as ``tfderain evaluate`` does."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from tfderain import evaluation, models
from tfderain.callbacks import Validation
from tfderain.inference import Derainer

PAIRS = ("1", "2")


@pytest.fixture(scope="module")
def tiny_model():
    from tfderain._keras import keras

    keras.utils.set_random_seed(3)
    return models.build("prn_r", stages=2, channels=4)


def _side_by_side_folder(shared_dir, root, order):
    """A Rain800-style folder: each file holds a pair's two square halves side by side (the
    layout is detected from that 2:1 shape), cut from Rain100H pairs."""
    root.mkdir(parents=True)
    for name in PAIRS:
        rainy = cv2.imread(str(shared_dir / "data/Rain100H-20/input" / f"{name}.png"))
        clean = cv2.imread(str(shared_dir / "data/Rain100H-20/target" / f"{name}.png"))
        side = min(rainy.shape[:2])
        rainy, clean = rainy[:side, :side], clean[:side, :side]
        halves = [rainy, clean] if order == "rainy|clean" else [clean, rainy]
        cv2.imwrite(str(root / f"{name}.png"), np.concatenate(halves, axis=1))
    return root


@pytest.mark.parametrize("protocol", ["A", "B"])
def test_validation_scores_side_by_side_pairs_like_evaluate(
    shared_dir, tmp_path, tiny_model, protocol
):
    """Rain800's test_syn files are [clean | rainy]: validation must cut them as evaluate does,
    not derain the joined file and score it against itself."""
    folder = _side_by_side_folder(shared_dir, tmp_path / "rain800" / "test_syn", "clean|rainy")
    spec = models.spec("prn_r")
    expected = evaluation.evaluate(Derainer(tiny_model, spec), folder, protocol)
    assert not expected.failed and len(expected.scores) == len(PAIRS)

    validation = Validation(
        tiny_model, spec, folder, "epoch", tmp_path, tmp_path / "best.weights.h5", protocol
    )
    psnr, ssim = validation.score()
    assert psnr == pytest.approx(expected.mean_psnr, abs=1e-6)
    assert ssim == pytest.approx(expected.mean_ssim, abs=1e-9)

    # The joined file scored against itself would be far better than any real restoration:
    # the scores must be those of the rainy half against the clean half.
    rainy_vs_clean = np.mean([s.input_psnr for s in expected.scores])
    assert rainy_vs_clean < 20.0  # Rain100H inputs are ~13 dB from their clean images
    assert psnr < 40.0


def test_validation_reports_and_skips_bad_pairs(shared_dir, tmp_path, tiny_model, capsys):
    folder = _side_by_side_folder(shared_dir, tmp_path / "rain800" / "test_syn", "clean|rainy")
    (folder / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    spec = models.spec("prn_r")
    validation = Validation(
        tiny_model, spec, folder, "epoch", tmp_path, tmp_path / "best.weights.h5", "B"
    )
    validation.on_train_begin()
    validation._validate(step=5)  # one check, as at the end of an epoch
    record = json.loads((tmp_path / "validation.json").read_text())["history"][-1]
    assert [s["pair"] for s in record["skipped"]] == ["2"]
    assert "2.png" in record["skipped"][0]["cause"]
    assert np.isfinite(record["psnr"])
    expected = evaluation.evaluate(Derainer(tiny_model, spec), folder, "B")
    assert record["psnr"] == pytest.approx(expected.mean_psnr, abs=1e-6)
    assert "validation skipped 2" in capsys.readouterr().out
