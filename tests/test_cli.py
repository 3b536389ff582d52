"""The ``tfderain`` command line, end to end on small models and real files."""

from __future__ import annotations

import csv
import shutil

import cv2
import numpy as np
import pytest

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


def test_models_lists_the_zoo(capsys):
    assert cli.main(["models"]) == 0
    listed = capsys.readouterr().out
    for name in ("prenet", "prenet_r", "prn", "prn_r"):
        assert name in listed
