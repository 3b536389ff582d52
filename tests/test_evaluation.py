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


@pytest.mark.slow
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


@pytest.mark.slow
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


class Darkening:
    """Returns the rainy image scaled by a factor: the brightness error is known in advance."""

    def __init__(self, spec, factor):
        self.spec, self.factor = spec, factor

    def derain_array(self, rgb):
        return rgb * np.float32(self.factor)


def test_luma_ratio_is_the_mean_grey_level_of_the_output_over_the_clean_images(
    official_prenet, subset, tmp_path
):
    """Checked against OpenCV's BT.601 grey conversion of the saved outputs, and against the
    factor applied: an output 20 % darker than the input is 20 % darker than the clean image
    times the input's own ratio."""
    import cv2

    saved = tmp_path / "out"
    identity = evaluation.evaluate(Darkening(official_prenet.spec, 1.0), subset, "A")
    darker = evaluation.evaluate(Darkening(official_prenet.spec, 0.8), subset, "A", save_dir=saved)
    for kept, dark in zip(identity.scores, darker.scores, strict=True):
        assert dark.luma_ratio == pytest.approx(0.8 * kept.luma_ratio, rel=0.01)
        out = cv2.imread(str(saved / f"{dark.name}.png"), cv2.IMREAD_GRAYSCALE).astype(float)
        clean = cv2.imread(str(subset / "target" / f"{dark.name}.png"), cv2.IMREAD_GRAYSCALE)
        # OpenCV rounds its grey levels to integers: half a level of error on the means.
        assert dark.luma_ratio == pytest.approx(out.mean() / clean.mean(), abs=0.5 / clean.mean())
    expected = np.mean([abs(s.luma_ratio - 1) for s in darker.scores])
    assert darker.brightness_error == pytest.approx(expected)
    assert darker.brightness_error > 0.1


@pytest.mark.slow
def test_bad_pair_is_reported_and_the_rest_evaluated(official_prenet, subset):
    (subset / "input" / "7.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    result = evaluation.evaluate(official_prenet, subset, "A")
    assert [s.name for s in result.scores] == ["1"]
    assert len(result.failed) == 1 and "7.png" in result.failed[0][1]


def test_mean_psnr_is_the_identity_score_and_refuses_a_bad_pair(official_prenet, subset):
    """The rainy input returned as is scores the input's own PSNR (the protocol's), and a pair
    that cannot be read makes the mean an error naming it instead of a mean over fewer pairs."""
    from tfderain.data.layouts import find_pairs

    identity = Darkening(official_prenet.spec, 1.0)
    pairs = find_pairs(subset)
    expected = np.mean([s.input_psnr for s in evaluation.evaluate(identity, subset, "A").scores])
    assert evaluation.mean_psnr(identity, pairs) == pytest.approx(expected)
    (subset / "input" / "7.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(ValueError, match="test pair 7: .*7.png"):
        evaluation.mean_psnr(identity, find_pairs(subset))


@pytest.mark.slow
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


# ------------------------------------------------------------------------ saved predictions


@pytest.fixture
def official_outputs(shared_dir, tmp_path):
    """The saved official PReNet outputs of IMAGES, the second one as a (lossless) .bmp."""
    import cv2

    folder = tmp_path / "pred"
    folder.mkdir()
    for i, name in enumerate(IMAGES):
        image = cv2.imread(str(shared_dir / f"golden/metrics/prenet_rain100h_out/{name}.png"))
        cv2.imwrite(str(folder / (f"{name}.bmp" if i else f"{name}.png")), image)
    return folder


@pytest.mark.parametrize("protocol", ["A", "B"])
def test_score_of_saved_official_outputs_reproduces_the_golden_metrics(
    official_outputs, reference, subset, protocol
):
    result = evaluation.score_predictions(official_outputs, subset, protocol)
    assert not result.failed
    assert [s.name for s in result.scores] == list(IMAGES)
    for score in result.scores:
        row = reference[score.name]
        # The very images the golden metrics were computed on: only float64 rounding differs.
        assert score.psnr == pytest.approx(float(row[f"output_psnr_{protocol}"]), abs=1e-5)
        assert score.ssim == pytest.approx(float(row[f"output_ssim_{protocol}"]), abs=1e-5)
        if protocol == "A":
            assert score.input_psnr == pytest.approx(float(row["input_psnr_A"]), abs=1e-5)
            assert score.input_ssim == pytest.approx(float(row["input_ssim_A"]), abs=1e-5)


def test_missing_ambiguous_and_mis_sized_predictions_are_reported_and_the_rest_scored(
    official_outputs, subset, shared_dir
):
    import cv2

    for name in ("2", "3", "4"):
        for folder in ("input", "target"):
            src = shared_dir / "data/Rain100H-20" / folder / f"{name}.png"
            shutil.copy(src, subset / folder / f"{name}.png")
    # 1: fine (.png), 7: fine (.bmp), 2: missing, 3: two candidates, 4: cropped.
    out3 = cv2.imread(str(shared_dir / "golden/metrics/prenet_rain100h_out/3.png"))
    cv2.imwrite(str(official_outputs / "3.png"), out3)
    cv2.imwrite(str(official_outputs / "3.jpg"), out3)
    out4 = cv2.imread(str(shared_dir / "golden/metrics/prenet_rain100h_out/4.png"))
    cv2.imwrite(str(official_outputs / "4.png"), out4[:-2])
    (official_outputs / "notes.txt").write_text("not an image")

    result = evaluation.score_predictions(official_outputs, subset, "A")
    assert sorted(s.name for s in result.scores) == ["1", "7"]
    failed = dict(result.failed)
    assert sorted(failed) == ["2", "3", "4"]
    assert "2.*" in failed["2"] and "no prediction" in failed["2"]
    assert "3.jpg" in failed["3"] and "3.png" in failed["3"]
    assert "4.png" in failed["4"] and "differs" in failed["4"]
    assert all("\n" not in cause for cause in failed.values())


@pytest.mark.slow
def test_score_finds_predictions_in_the_folders_evaluate_saves(official_prenet, subset, tmp_path):
    """The outputs `evaluate` saves score exactly as `evaluate` scored them."""
    saved = tmp_path / "saved"
    direct = evaluation.evaluate(official_prenet, subset, "B", save_dir=saved)
    again = evaluation.score_predictions(saved, subset, "B")
    assert [(s.name, s.psnr, s.ssim) for s in again.scores] == [
        (s.name, s.psnr, s.ssim) for s in direct.scores
    ]


def test_score_of_a_missing_prediction_folder_is_an_error(subset, tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing"):
        evaluation.score_predictions(tmp_path / "nothing", subset, "A")
    with pytest.raises(ValueError, match="protocol"):
        evaluation.score_predictions(tmp_path, subset, "C")


# ---------------------------------------------------------------------- many models, one table


def _result(protocol, psnrs, failed=()):
    scores = [
        evaluation.Score(str(i), p, p / 40, p / 2, p / 80, p / 30) for i, p in enumerate(psnrs)
    ]
    return evaluation.EvaluationResult(protocol, scores, list(failed))


def test_table_has_a_row_per_model_and_a_column_per_dataset():
    runs = [
        evaluation.Run("prenet (a.keras)", "D1", _result("A", [30.0, 32.0])),
        evaluation.Run("prenet (a.keras)", "D2", _result("A", [20.0], [("x", "bad")])),
        evaluation.Run("mprnet (b.pth)", "D1", _result("B", [28.0, 29.0])),
    ]
    lines = evaluation.format_table(runs).splitlines()
    assert lines[0] == "| model | protocol | D1 (2) | D2 (2) |"
    assert lines[1] == "|---|---|---|---|"
    assert lines[2] == "| prenet (a.keras) | A | 31.00 / 0.7750 | 20.00 / 0.5000 (1 failed) |"
    assert lines[3] == "| mprnet (b.pth) | B | 28.50 / 0.7125 | - |"
    assert "each model's official protocol" in lines[5]
    assert "A = PReNet" in lines[5] and "B = MPRNet/Restormer" in lines[5]
    forced = evaluation.format_table(runs[:1], forced="A").splitlines()
    assert "protocol A for every model" in forced[-1]


def test_runs_csv_has_a_row_per_model_dataset_and_image_plus_the_means(tmp_path):
    runs = [
        evaluation.Run("m1", "D1", _result("A", [30.0, 32.0])),
        evaluation.Run("m2", "D1", _result("rgb", [28.0])),
    ]
    path = evaluation.write_runs_csv(runs, tmp_path / "table.csv")
    rows = list(csv.DictReader(path.open()))
    assert [(r["model"], r["data"], r["protocol"], r["image"]) for r in rows] == [
        ("m1", "D1", "A", "0"),
        ("m1", "D1", "A", "1"),
        ("m1", "D1", "A", evaluation.MEAN_ROW),
        ("m2", "D1", "rgb", "0"),
        ("m2", "D1", "rgb", evaluation.MEAN_ROW),
    ]
    mean = rows[2]
    assert float(mean["psnr"]) == pytest.approx(31.0)
    assert float(mean["ssim"]) == pytest.approx((30 / 40 + 32 / 40) / 2)
    assert float(mean["input_psnr"]) == pytest.approx(15.5)
    assert float(mean["input_ssim"]) == pytest.approx((30 / 80 + 32 / 80) / 2)
    assert float(mean["luma_ratio"]) == pytest.approx((30 / 30 + 32 / 30) / 2, abs=1e-6)
    # |1.0 - 1| and |1.0667 - 1|, averaged.
    assert runs[0].result.brightness_error == pytest.approx((0 + 2 / 30) / 2)
