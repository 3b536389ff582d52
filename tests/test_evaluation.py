"""Evaluation with the official PReNet weights reproduces the published per-image metrics."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

from tfderain import evaluation, inference
from tfderain.convert import convert

# Two pairs keep the suite fast; all 20 are checked by `tfderain evaluate` (see README).
IMAGES = ("1", "7")


class CachedDerainer(inference.Derainer):
    """Runs the network once per distinct image: the tests score the same outputs repeatedly."""

    def __init__(self, model):
        super().__init__(model)
        self.cache: dict[bytes, np.ndarray] = {}

    def derain_array(self, rgb):
        key = rgb.tobytes()
        if key not in self.cache:
            self.cache[key] = super().derain_array(rgb)
        return self.cache[key]


@pytest.fixture(scope="module")
def official_prenet(shared_dir):
    path = shared_dir / "weights/PReNet/logs/Rain100H/PReNet6/net_latest.pth"
    return CachedDerainer(convert("prenet", path))


@pytest.fixture(scope="module")
def reference(shared_dir):
    with open(shared_dir / "golden/metrics/rain100h_1-20_prenet.csv") as handle:
        return {row["image"]: row for row in csv.DictReader(handle)}


@pytest.fixture
def subset(shared_dir, tmp_path):
    """A Rain13K-layout folder holding a few Rain100H pairs."""
    for folder in ("input", "target"):
        (tmp_path / folder).mkdir()
        for name in IMAGES:
            src = shared_dir / "data/Rain100H-20" / folder / f"{name}.png"
            shutil.copy(src, tmp_path / folder / f"{name}.png")
    return tmp_path


@pytest.mark.parametrize("protocol", ["A", "B"])
def test_official_prenet_matches_published_per_image_metrics(
    official_prenet, reference, subset, protocol, tmp_path
):
    result = evaluation.evaluate(official_prenet, subset, protocol)
    assert not result.failed
    assert [s.name for s in result.scores] == list(IMAGES)
    for score in result.scores:
        row = reference[score.name]
        assert score.psnr == pytest.approx(float(row[f"output_psnr_{protocol}"]), abs=0.01)
        assert score.ssim == pytest.approx(float(row[f"output_ssim_{protocol}"]), abs=1e-4)
        if protocol == "A":
            assert score.input_psnr == pytest.approx(float(row["input_psnr_A"]), abs=1e-3)
    out = evaluation.write_csv(result, tmp_path / "scores.csv")
    rows = list(csv.DictReader(out.open()))
    assert [r["image"] for r in rows] == list(IMAGES)
    assert float(rows[0]["psnr"]) == pytest.approx(result.scores[0].psnr, abs=1e-6)


def test_outputs_are_quantized_as_the_official_test_script(
    official_prenet, subset, shared_dir, tmp_path
):
    """Protocol A saves outputs by truncation, exactly as the published output images."""
    import cv2

    saved = tmp_path / "out"
    evaluation.evaluate(official_prenet, subset, "A", save_dir=saved)
    for name in IMAGES:
        ours = cv2.imread(str(saved / f"{name}.png"))
        official = cv2.imread(str(shared_dir / f"golden/metrics/prenet_rain100h_out/{name}.png"))
        # CPU float32 vs the official run can flip a handful of pixels by one grey level.
        diff = np.abs(ours.astype(int) - official.astype(int))
        assert diff.max() <= 1
        assert (diff > 0).mean() < 1e-3


def test_bad_pair_is_reported_and_the_rest_evaluated(official_prenet, subset):
    (subset / "input" / "7.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    result = evaluation.evaluate(official_prenet, subset, "A")
    assert [s.name for s in result.scores] == ["1"]
    assert len(result.failed) == 1 and "7.png" in result.failed[0][1]


def test_side_by_side_files_score_like_their_separate_halves(official_prenet, subset, tmp_path):
    """DID-MDN's [rainy | clean] files and Rain800's [clean | rainy] files give the same scores
    as the two-folder layout of the same pairs."""
    import cv2

    didmdn = tmp_path / "DID-MDN-test"
    rain800 = tmp_path / "rain800" / "test_syn"
    for folder in (didmdn, rain800):
        folder.mkdir(parents=True)
    for name in IMAGES:
        rainy = cv2.imread(str(subset / "input" / f"{name}.png"))
        clean = cv2.imread(str(subset / "target" / f"{name}.png"))
        cv2.imwrite(str(didmdn / f"{name}.png"), np.concatenate([rainy, clean], axis=1))
        cv2.imwrite(str(rain800 / f"{name}.png"), np.concatenate([clean, rainy], axis=1))

    separate = evaluation.evaluate(official_prenet, subset, "A")
    for folder, order in ((didmdn, "rainy|clean"), (rain800, "clean|rainy")):
        joined = evaluation.evaluate(official_prenet, folder, "A", layout="sidebyside", order=order)
        assert not joined.failed
        assert [s.psnr for s in joined.scores] == [s.psnr for s in separate.scores]
        assert [s.ssim for s in joined.scores] == [s.ssim for s in separate.scores]
