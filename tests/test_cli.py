"""The ``tfderain`` command line, end to end on small models and real files."""

from __future__ import annotations

import csv
import json
import shutil

import cv2
import numpy as np
import pytest
from tiny_models import TINY_MODELS

from tfderain import cli, models
from tfderain.saving import save_model


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "prn_r_small.keras"
    return save_model(models.build("prn_r", stages=2, channels=8), path)


@pytest.fixture
def photos(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.png", "b.jpg"):
        cv2.imwrite(str(folder / name), rng.integers(0, 256, (40, 56, 3), dtype=np.uint8))
    return folder


@pytest.mark.slow
def test_convert_writes_a_self_describing_file(golden, tmp_path, capsys):
    _, io, folder = golden("prn_r")
    out = tmp_path / "prn_r.keras"
    code = cli.main(
        [
            "convert",
            str(folder / "weights.pth"),
            "--arch",
            "prn_r",
            "-o",
            str(out),
            "--set",
            "stages=6",
        ]
    )
    assert code == 0
    assert "21,123 parameters" in capsys.readouterr().out
    from tfderain import load_model

    restored = load_model(out)(io["input"])["derained"].numpy()
    np.testing.assert_allclose(restored, io["output"], atol=1e-4)


@pytest.mark.slow
def test_convert_of_a_wrong_checkpoint_is_one_line_naming_the_file(golden, tmp_path, capsys):
    _, _, folder = golden("prn")
    code = cli.main(
        [
            "convert",
            str(folder / "weights.pth"),
            "--arch",
            "prenet",
            "-o",
            str(tmp_path / "x.keras"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "weights.pth" in err and "missing key" in err
    assert not (tmp_path / "x.keras").exists()


@pytest.mark.slow
def test_derain_folder_with_a_bad_file_finishes_the_rest(small_model, photos, tmp_path, capsys):
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    out = tmp_path / "out"
    code = cli.main(["derain", str(photos), "-o", str(out), "--weights", str(small_model), "-q"])
    err = capsys.readouterr().err
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.jpg"]
    assert "broken.png" in err
    assert cv2.imread(str(out / "a.png")).shape == (40, 56, 3)


def test_derain_single_file_to_named_output(small_model, photos, tmp_path):
    out = tmp_path / "derained.png"
    assert cli.main(["derain", str(photos / "a.png"), "-o", str(out), "-w", str(small_model)]) == 0
    assert cv2.imread(str(out)).shape == (40, 56, 3)


def test_missing_input_and_unknown_model_are_clean_errors(small_model, tmp_path, capsys):
    code = cli.main(
        [
            "derain",
            str(tmp_path / "nope.png"),
            "-o",
            str(tmp_path / "o.png"),
            "-w",
            str(small_model),
        ]
    )
    assert code == 1 and "nope.png" in capsys.readouterr().err
    assert cli.main(["derain", "x.png", "-o", "y.png", "--model", "nonet"]) == 2
    assert "unknown model 'nonet'" in capsys.readouterr().err


def test_evaluate_prints_means_and_writes_csv(small_model, shared_dir, tmp_path, capsys):
    data = tmp_path / "data"
    for sub in ("input", "target"):
        (data / sub).mkdir(parents=True)
        for name in ("1.png", "2.png"):
            img = cv2.imread(str(shared_dir / "data/Rain100H-20" / sub / name))
            cv2.imwrite(str(data / sub / name), img[:64, :96])
    table = tmp_path / "scores.csv"
    code = cli.main(
        [
            "evaluate",
            "-w",
            str(small_model),
            "--data",
            str(data),
            "--protocol",
            "B",
            "--csv",
            str(table),
            "-q",
        ]
    )
    assert code == 0
    assert "protocol B: 2 images, PSNR" in capsys.readouterr().out
    rows = list(csv.DictReader(table.open()))
    assert [r["image"] for r in rows] == ["1", "2"]


def test_evaluate_detects_prenet_layout(small_model, shared_dir, tmp_path, capsys):
    data = tmp_path / "Rain100L-3"
    shutil.copytree(shared_dir / "data/Rain100L-3", data)
    assert cli.main(["evaluate", "-w", str(small_model), "--data", str(data), "-q"]) == 0
    assert "protocol A: 3 images" in capsys.readouterr().out


@pytest.fixture(scope="module")
def small_restormer(tmp_path_factory):
    config, _ = TINY_MODELS["restormer"]
    path = tmp_path_factory.mktemp("model") / "restormer_small.keras"
    return save_model(models.build("restormer", **config), path)


def _crops(shared_dir, folder, names=("1.png", "2.png")):
    """A Rain13K-layout dataset of 64x96 crops of Rain100H pairs."""
    for sub in ("input", "target"):
        (folder / sub).mkdir(parents=True)
        for name in names:
            img = cv2.imread(str(shared_dir / "data/Rain100H-20" / sub / name))
            cv2.imwrite(str(folder / sub / name), img[:64, :96])
    return folder


def test_registry_names_each_models_official_protocol():
    """PReNet's statistic/*.m (A) for the PReNet family; evaluate_PSNR_SSIM.m (B) shipped by
    MPRNet and Restormer; A for the others, whose repositories ship no script of their own."""
    official_b = {"mprnet", "restormer"}
    for name in models.names():
        assert models.spec(name).protocol == ("B" if name in official_b else "A"), name
    with pytest.raises(ValueError, match="protocol"):
        models.ModelSpec(name="x", builder=None, protocol="Y")


def test_evaluate_pairs_repeated_models_and_weights_in_the_order_given():
    parser = cli.build_parser()

    def entries(*argv):
        args = parser.parse_args(["evaluate", *argv, "--data", "D"])
        return [(e["model"], e["weights"]) for e in args.entries]

    assert entries("--model", "prenet", "--weights", "a.pth", "-m", "mprnet", "-w", "b.pth") == [
        ("prenet", "a.pth"),
        ("mprnet", "b.pth"),
    ]
    assert entries("-w", "a.keras", "-w", "b.keras") == [(None, "a.keras"), (None, "b.keras")]
    assert entries("-w", "a.pth", "-m", "prenet", "-w", "b.keras") == [
        ("prenet", "a.pth"),
        (None, "b.keras"),
    ]
    assert entries("-m", "prenet", "-m", "mprnet", "-w", "b.pth") == [
        ("prenet", None),
        ("mprnet", "b.pth"),
    ]
    assert entries() == []
    args = parser.parse_args(["evaluate", "--data", "D1", "--data", "D2"])
    assert args.data == ["D1", "D2"] and args.protocol is None


def test_table_names_weights_by_as_much_of_their_path_as_tells_them_apart():
    official = ["w/Rain100H/PReNet6/net_latest.pth", "w/Rain100L/PReNet6/net_latest.pth"]
    assert cli._short_paths([*official, None, "x.keras"]) == [  # noqa: SLF001
        "Rain100H/PReNet6/net_latest.pth",
        "Rain100L/PReNet6/net_latest.pth",
        None,
        "x.keras",
    ]
    assert cli._short_paths(["/t/a.keras", "/u/b.keras"]) == ["a.keras", "b.keras"]  # noqa: SLF001


@pytest.mark.slow
def test_evaluate_without_protocol_uses_the_models_own(
    small_restormer, shared_dir, tmp_path, capsys
):
    data = _crops(shared_dir, tmp_path / "data")
    assert cli.main(["evaluate", "-w", str(small_restormer), "--data", str(data), "-q"]) == 0
    assert "protocol B: 2 images" in capsys.readouterr().out


@pytest.mark.slow
def test_evaluate_several_models_on_several_datasets_prints_one_table(
    small_model, small_restormer, shared_dir, tmp_path, capsys
):
    d1 = _crops(shared_dir, tmp_path / "D1")
    d2 = _crops(shared_dir, tmp_path / "D2", names=("3.png", "4.png"))
    table = tmp_path / "table.csv"
    argv = ["evaluate", "-m", "prn_r", "-w", str(small_model)]
    argv += ["-m", "restormer", "-w", str(small_restormer)]
    argv += ["--data", str(d1), "--data", str(d2), "--csv", str(table), "-q"]
    assert cli.main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "| model | protocol | D1 (2) | D2 (2) |"
    assert lines[1] == "|---|---|---|---|"
    assert lines[2].startswith("| prn_r (prn_r_small.keras) | A | ")
    assert lines[3].startswith("| restormer (restormer_small.keras) | B | ")
    assert all(row.count(" / ") == 2 for row in lines[2:4])
    assert "each model's official protocol" in lines[-1]
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 2 * 2 * (2 + 1)
    keys = [(r["model"].split()[0], r["data"], r["protocol"], r["image"]) for r in rows]
    assert keys[:6] == [
        ("prn_r", "D1", "A", "1"),
        ("prn_r", "D1", "A", "2"),
        ("prn_r", "D1", "A", "(mean)"),
        ("prn_r", "D2", "A", "3"),
        ("prn_r", "D2", "A", "4"),
        ("prn_r", "D2", "A", "(mean)"),
    ]
    assert {k[2] for k in keys[6:]} == {"B"}
    psnrs = [float(r["psnr"]) for r in rows[:2]]
    assert float(rows[2]["psnr"]) == pytest.approx(sum(psnrs) / 2, abs=1e-5)
    # The table's cell is the CSV's mean, rounded.
    assert f"{float(rows[2]['psnr']):.2f} / {float(rows[2]['ssim']):.4f}" in lines[2]

    # --protocol forces one protocol on every model; a bad weights file is skipped.
    argv = ["evaluate", "-w", str(small_model), "-w", str(tmp_path / "missing.keras")]
    argv += ["--data", str(d1), "--data", str(d2), "--protocol", "rgb", "-q"]
    assert cli.main(argv) == 1
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 2 + 1 + 2 and lines[2].startswith("| prn_r (prn_r_small.keras) | rgb |")
    assert "protocol rgb for every model" in lines[-1]
    assert captured.err.count("\n") == 1 and "missing.keras" in captured.err


def test_score_reports_each_bad_prediction_and_scores_the_rest(shared_dir, tmp_path, capsys):
    data = tmp_path / "data"
    for sub in ("input", "target"):
        (data / sub).mkdir(parents=True)
        for name in ("1", "2", "3"):
            shutil.copy(shared_dir / "data/Rain100H-20" / sub / f"{name}.png", data / sub)
    pred = tmp_path / "pred"
    pred.mkdir()
    official = shared_dir / "golden/metrics/prenet_rain100h_out"
    shutil.copy(official / "1.png", pred / "1.png")
    cv2.imwrite(str(pred / "2.bmp"), cv2.imread(str(official / "2.png")))
    table = tmp_path / "scores.csv"
    argv = ["score", "--pred", str(pred), "--data", str(data), "--protocol", "B"]
    code = cli.main([*argv, "--csv", str(table), "-q"])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err.count("\n") == 1 and "3.*" in captured.err
    assert "protocol B: 2 images, PSNR" in captured.out
    rows = list(csv.DictReader(table.open()))
    with open(official.parent / "rain100h_1-20_prenet.csv") as handle:
        reference = {r["image"]: r for r in csv.DictReader(handle)}
    assert [r["image"] for r in rows] == ["1", "2"]
    for row in rows:
        expected = reference[row["image"]]
        assert float(row["psnr"]) == pytest.approx(float(expected["output_psnr_B"]), abs=1e-5)
        assert float(row["ssim"]) == pytest.approx(float(expected["output_ssim_B"]), abs=1e-5)
    assert cli.main(["score", "--pred", str(tmp_path / "none"), "--data", str(data), "-q"]) == 2
    assert "none" in capsys.readouterr().err


def test_models_lists_the_zoo(capsys):
    assert cli.main(["models"]) == 0
    listed = capsys.readouterr().out
    for name in ("prenet", "prenet_r", "prn", "prn_r"):
        assert name in listed


# ------------------------------------------------------------------------------ train


@pytest.mark.slow
def test_train_runs_a_packaged_recipe_by_name(tmp_path, capsys):
    clean = tmp_path / "clean"
    clean.mkdir()
    rng = np.random.default_rng(3)
    for name in ("p.png", "q.png"):
        cv2.imwrite(str(clean / name), rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
    run = tmp_path / "run"
    tiny = [
        "model.config.stages=2",
        "model.config.channels=4",
        f"data.clean={clean}",
        "data.patch_size=16",
        "data.batch_size=2",
        "epochs=1",
        "steps_per_epoch=2",
        "logging.scalars_every=epoch",
        "logging.backup_every=epoch",
        "logging.num_images=1",
        "logging.verbose=0",
    ]
    argv = ["train", "--config", "prn_r", "--output-dir", str(run)]
    assert cli.main([*argv, *(arg for item in tiny for arg in ("--set", item))]) == 0
    from tfderain.saving import read_metadata

    meta = read_metadata(run / "model.keras")
    assert meta["arch"] == "prn_r" and meta["config"]["stages"] == 2
    assert "steps_per_epoch: 2" in (run / "config.yaml").read_text()
    assert "Saved" in capsys.readouterr().out


def test_train_config_is_a_recipe_name_a_file_or_an_old_recipe_path(tmp_path, capsys):
    from tfderain.train_cli import CONFIG_DIR, find_config

    assert find_config("prenet") == CONFIG_DIR / "prenet.yaml"
    assert find_config("prenet.yaml") == CONFIG_DIR / "prenet.yaml"
    own = tmp_path / "mine.yaml"
    own.write_text("epochs: 3\n")
    assert find_config(str(own)) == own
    assert capsys.readouterr().err == ""
    # Commands written for the old training/configs/ folder still run, with a note.
    assert find_config("training/configs/restormer.yaml") == CONFIG_DIR / "restormer.yaml"
    assert "--config restormer" in capsys.readouterr().err


def test_train_with_an_unknown_recipe_is_one_line_listing_the_recipes(tmp_path, capsys):
    code = cli.main(["train", "--config", "nonet", "--output-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "--config nonet" in err and "prenet, prenet_r" in err
    assert cli.main(["train", "--config", str(tmp_path)]) == 2
    assert "not a file" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------ export


def test_export_tflite_takes_the_architecture_from_the_keras_file(small_model, tmp_path, capsys):
    out = tmp_path / "small.tflite"
    argv = ["export", "tflite", "--weights", str(small_model), "--tile", "32", "-o", str(out)]
    assert cli.main(argv) == 0
    assert out.stat().st_size > 0
    descriptor = json.loads((tmp_path / "small.json").read_text())
    assert (descriptor["model"], descriptor["config"]["stages"], descriptor["file"]) == (
        "prn_r",
        2,
        "small.tflite",
    )
    assert f"and {tmp_path / 'small.json'}" in capsys.readouterr().out


@pytest.mark.slow
def test_export_savedmodel_takes_the_architecture_from_the_keras_file(small_model, tmp_path):
    out = tmp_path / "served"
    argv = ["export", "savedmodel", "--weights", str(small_model), "-o", str(out)]
    assert cli.main([*argv, "--version", "3"]) == 0
    assert (out / "3" / "saved_model.pb").is_file()
    meta = json.loads((out / "3" / "assets.extra" / "tfderain.json").read_text())
    assert meta["arch"] == "prn_r"


def test_export_of_an_official_checkpoint_without_model_is_a_clear_error(tmp_path, capsys):
    pth = tmp_path / "net_latest.pth"
    pth.write_bytes(b"PK")
    code = cli.main(["export", "tflite", "--weights", str(pth), "-o", str(tmp_path / "x.tflite")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "net_latest.pth" in err and "--model NAME" in err


def test_export_with_a_model_other_than_the_files_is_refused(small_model, tmp_path, capsys):
    argv = ["export", "tflite", "-m", "prenet", "-w", str(small_model), "-o", str(tmp_path / "x")]
    assert cli.main(argv) == 2
    assert "holds a 'prn_r' model, not 'prenet'" in capsys.readouterr().err


# ------------------------------------------------------------------------------ derain options


def _derain(model, src, out, *options: str) -> np.ndarray:
    assert cli.main(["derain", str(src), "-o", str(out), "-w", str(model), "-q", *options]) == 0
    return cv2.imread(str(out)).astype(np.float64)


def test_derain_strength_blends_the_input_and_the_output(small_model, photos, tmp_path):
    src = photos / "a.png"
    rainy = cv2.imread(str(src)).astype(np.float64)
    full = _derain(small_model, src, tmp_path / "full.png")
    none = _derain(small_model, src, tmp_path / "none.png", "--strength", "0")
    half = _derain(small_model, src, tmp_path / "half.png", "--strength", "0.5")
    assert np.abs(full - rainy).max() > 20  # the model changes this image
    np.testing.assert_array_equal(none, rainy)
    # Blended in float before the 8-bit rounding: within one level of the exact mean.
    assert np.abs(half - (rainy + full) / 2).max() <= 1.0


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--strength", "1.5", "expected a number from 0 to 1, got '1.5'"),
        ("--strength", "nan", "expected a number from 0 to 1, got 'nan'"),
        ("--strength", "strong", "expected a number from 0 to 1, got 'strong'"),
        ("--tile", "0", "expected a positive integer, got '0'"),
        ("--max-pixels", "1e6", "expected a positive integer, got '1e6'"),
        ("--batch-size", "-2", "expected a positive integer, got '-2'"),
    ],
)
def test_derain_options_are_checked_when_parsed(option, value, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["derain", "x.png", "-o", "y.png", option, value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: {message}" in err


def test_derain_tiling_options_reach_the_tiler(small_model, photos, tmp_path, monkeypatch):
    from tfderain import inference

    seen = []
    original = inference.derain_array

    def spy(model, rgb, **options):
        seen.append(options)
        return original(model, rgb, **options)

    monkeypatch.setattr(inference, "derain_array", spy)
    options = ["--tile", "64", "--max-pixels", "1000", "--batch-size", "3"]
    _derain(small_model, photos / "a.png", tmp_path / "t.png", *options)
    assert len(seen) == 1
    assert (seen[0]["tile"], seen[0]["max_pixels"], seen[0]["batch_size"]) == (64, 1000, 3)


def test_derainer_strength_keeps_dtype_and_is_checked(small_model):
    from tfderain import inference, load_model

    model = load_model(small_model)
    image = np.random.default_rng(2).integers(0, 65536, (12, 20, 3), dtype=np.uint16)
    np.testing.assert_array_equal(inference.derain_numpy(model, image, strength=0.0), image)
    blended = inference.derain_numpy(model, image, strength=0.25)
    assert blended.dtype == np.uint16 and blended.shape == image.shape
    with pytest.raises(ValueError, match="strength must be from 0 to 1, got 1.01"):
        inference.Derainer(model, strength=1.01)
