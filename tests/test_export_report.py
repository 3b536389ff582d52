"""``tfderain.export.report`` (run as ``export/report.py``): its markdown rows survive a
rewrite, older reports still merge, the official weights come from the presets and the PSNR
column from :mod:`tfderain.evaluation`."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest
from conftest import REPO

import tfderain.export.report
from tfderain import _machine, models
from tfderain.export import report_table as table
from tfderain.export.options import QATSettings


@pytest.fixture(scope="module")
def report():
    return tfderain.export.report


def _row(report, model: str, fmt: str, latency: str, cpu: str = "X (avx2)") -> dict[str, str]:
    row = dict.fromkeys(table.COLUMNS, "")
    return {**row, "model": model, "format": fmt, "latency (ms)": latency, "CPU": cpu}


def test_rows_written_are_read_back_and_merged_by_model_format_and_cpu(report, tmp_path):
    path = tmp_path / "REPORT.md"
    old = [_row(report, "prenet", "qat", "300.0"), _row(report, "prenet", "none", "900.0")]
    table.write_report(path, old, ["first run"])
    assert table.read_rows(path) == old
    new = [
        _row(report, "prenet", "qat", "250.0"),
        _row(report, "pcnet", "int8", "80.0"),
        _row(report, "prenet", "none", "700.0", cpu="Y (avx2 avx512_vnni)"),
    ]
    merged = table.merge(table.read_rows(path), new)
    # A row of another CPU does not replace this CPU's row: each keeps its own float row.
    assert [(r["model"], r["format"], r["latency (ms)"]) for r in merged] == [
        ("pcnet", "int8", "80.0"),
        ("prenet", "none", "900.0"),
        ("prenet", "qat", "250.0"),
        ("prenet", "none", "700.0"),
    ]
    assert "first run" in path.read_text()


def test_a_report_from_before_the_cpu_column_is_read_with_an_empty_cpu(report, tmp_path):
    old_columns = [c for c in table.COLUMNS if c != "CPU"]
    cells = {c: f"v{k}" for k, c in enumerate(old_columns)}
    path = tmp_path / "REPORT.md"
    path.write_text(
        "| " + " | ".join(old_columns) + " |\n"
        "|" + "---|" * len(old_columns) + "\n"
        "| " + " | ".join(cells.values()) + " |\n"
    )
    (row,) = table.read_rows(path)
    assert row["CPU"] == ""
    assert all(row[c] == v for c, v in cells.items())


def test_cpu_summary_names_the_model_and_the_int8_relevant_flags(report, tmp_path):
    """On a fake /proc/cpuinfo: the model name, then the SIMD flags that decide int8 speed (AVX2,
    AVX-512, VNNI, AMX, Arm dot product and i8mm) in that order, and no other flag."""
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: Example CPU 9000\n"
        "flags\t\t: fpu sse2 avx2 fma avx512f avx512bw avx512_vnni amx_tile amx_int8\n"
    )
    cpu = _machine.cpu(cpuinfo)
    assert report.cpu_summary(cpu) == "Example CPU 9000 (avx2 avx512f avx512_vnni amx_int8)"
    cpuinfo.write_text("model name\t: Old CPU\nflags\t\t: fpu sse2\n")
    assert report.cpu_summary(_machine.cpu(cpuinfo)) == "Old CPU (no SIMD flags)"
    assert report.cpu_summary() == report.cpu_summary(_machine.cpu())  # this machine's


def test_latency_shape_is_rounded_up_to_the_models_multiple(report):
    assert report.LATENCY_SHAPE == (320, 480)
    assert report.latency_shape(1) == (320, 480)
    assert report.latency_shape(16) == (320, 480)  # 320 = 20·16, 480 = 30·16
    assert report.latency_shape(128) == (384, 512)
    assert report.latency_shape(512) == (512, 512)  # CRDNet's classifier input


def test_target_lines_judge_every_qat_row_against_both_targets(report):
    def qat(cpu: str, delta: str, ratio: str) -> dict[str, str]:
        row = _row(report, "prenet", "qat", "1.0", cpu=cpu)
        return {**row, "weights": "official", "ΔPSNR vs float": delta, "× float latency": ratio}

    rows = [qat("A", "-0.31", "0.24"), qat("B", "-0.10", "0.85"), qat("C", "", "")]
    lines = table.target_lines(rows)
    prenet = [line for line in lines if line.startswith("prenet")]
    assert prenet == [
        "prenet qat (official, A): PSNR loss 0.31 dB (NOT met); latency 0.24× float (met)",
        "prenet qat (official, B): PSNR loss 0.10 dB (met); latency 0.85× float (NOT met)",
        "prenet qat (official, C): no float row in the same run",
    ]
    assert "pcnet qat: not measured" in lines


@pytest.mark.parametrize("flag", ["--keep-float", "--weights"])
def test_a_name_value_option_without_a_value_is_a_one_line_error(report, flag, capsys):
    assert report.main(["--models", "prenet", flag, "prenet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"report: {flag} expects NAME=") and err.endswith("got prenet")
    assert "\n" not in err


def test_qat_setup_names_steps_patches_loss_and_float_layers(report):
    assert report.qat_setup(QATSettings(300), "l1", []) == ["300 QAT steps"]
    assert report.qat_setup(QATSettings(30, 1), "l1", []) == ["30 QAT steps of 1 patch"]
    assert report.qat_setup(QATSettings(30, 2), "l2", ["conv", "stage*_out"]) == [
        "30 QAT steps of 2 patches, l2 loss",
        "float32 layers conv stage*_out",
    ]
    assert report.qat_setup(QATSettings(300, 1, 256), "l1", []) == [
        "300 QAT steps of 1 patch of 256×256"
    ]
    assert report.qat_setup(QATSettings(300, 4, 192), "l1", []) == [
        "300 QAT steps of patches of 192×192"
    ]


def _args(**given):
    sizes = {"qat_steps": None, "qat_batch_size": None, "qat_patch_size": None}
    return argparse.Namespace(**{**sizes, "qat_loss": "l1", "seed": 0, "samples": 32, **given})


@pytest.mark.parametrize(
    ("fmt", "seed", "expected"),
    [
        ("none", 2, ["20 test pairs"]),
        ("int8", 0, ["20 test pairs"]),
        ("int8", 2, ["20 test pairs", "seed 2"]),
        ("qat", 2, ["20 test pairs", "300 QAT steps", "float32 layers conv", "seed 2"]),
    ],
)
def test_row_setup_names_the_seed_of_quantized_rows_only(report, fmt, seed, expected):
    keep = ["conv"] if fmt == "qat" else []
    setup = report.row_setup(_args(seed=seed), fmt, 20, QATSettings(300), keep, (320, 480))
    assert setup == expected


def test_row_setup_of_random_weights_and_another_latency_shape(report):
    args = _args(qat_loss="l2")
    assert report.row_setup(args, "qat", 0, QATSettings(30, 1, 256), [], (512, 512)) == [
        "30 QAT steps of 1 patch of 256×256, l2 loss",
        "latency at 512×512",
    ]


def test_fine_tune_takes_the_command_line_then_the_recipe(report):
    # PReNet's recipe (600 steps of 1 patch of 256×256); PCNet has none (200 of 4 of 128×128)
    assert report.fine_tune(_args(), "prenet", False) == QATSettings(600, 1, 256)
    assert report.fine_tune(_args(), "pcnet", False) == QATSettings(200, 4, 128)
    assert report.fine_tune(_args(qat_steps=300), "prenet", False) == QATSettings(300, 1, 256)
    given = _args(qat_batch_size=2, qat_patch_size=64)
    assert report.fine_tune(given, "pcnet", False) == QATSettings(200, 2, 64)
    # random weights: at most RANDOM_QAT steps (a smoke test of the conversion, not of quality)
    assert report.fine_tune(_args(), "prenet", True) == QATSettings(report.RANDOM_QAT, 1, 256)
    assert report.fine_tune(_args(qat_steps=3), "pcnet", True).steps == 3


def test_a_negative_seed_is_a_parse_error_naming_the_option(report, capsys):
    with pytest.raises(SystemExit) as info:
        report.main(["--models", "prenet", "--seed", "-1"])
    assert info.value.code == 2
    assert "argument --seed: expected a non-negative integer, got '-1'" in capsys.readouterr().err


def test_reuse_takes_a_kept_file_only_if_its_build_record_matches(report, tmp_path, capsys):
    kept = tmp_path / "prenet_qat.tflite"
    seed0 = report.build_record(_args(), "prenet", "qat", "official", QATSettings(600, 1, 256), [])
    assert not report.kept_file_matches(kept, seed0)  # no file
    kept.write_bytes(b"tflite")
    assert not report.kept_file_matches(kept, seed0)  # a file without a record
    assert "no readable build record" in capsys.readouterr().out
    report.record_path(kept).write_text(json.dumps(seed0))
    assert report.kept_file_matches(kept, seed0)
    seed1 = report.build_record(
        _args(seed=1), "prenet", "qat", "official", QATSettings(600, 1, 256), []
    )
    assert not report.kept_file_matches(kept, seed1)
    assert "built with other seed; building it again" in capsys.readouterr().out
    shorter = report.build_record(
        _args(), "prenet", "qat", "official", QATSettings(300, 1, 256), []
    )
    assert not report.kept_file_matches(kept, shorter)
    assert "built with other qat;" in capsys.readouterr().out


def test_a_float_file_serves_every_seed_but_an_int8_file_does_not(report):
    def record(fmt, seed):
        return report.build_record(_args(seed=seed), "pcnet", fmt, "trained", QATSettings(), [])

    assert record("none", 0) == record("none", 3)
    assert record("int8", 0) != record("int8", 3)
    assert "qat" not in record("int8", 0) and record("qat", 0)["qat"]["steps"] == 200


@pytest.mark.slow
def test_official_weights_are_the_first_preset_of_the_architecture_at_hand(report, shared_dir):
    """``../shared/weights`` holds the PReNet family's and mCODE-Net's upstream files: each
    architecture gets its first preset there (the table's order), others none."""
    weights = shared_dir / "weights"
    preset, copy = report.official_preset("prenet", weights)
    assert preset.name == "prenet:rain100h"
    assert copy == weights / "PReNet/logs/Rain100H/PReNet6/net_latest.pth"
    assert report.official_preset("prn_r", weights)[0].name == "prn_r:rain100h"
    # mCODE-Net's Rain1200 weights come first: the golden fixture's checkpoint.
    preset, copy = report.official_preset("mcodenet", weights)
    assert preset.name == "mcodenet:rain1200"
    assert copy == weights / "CODE-Net/mCODENET-rain1200.pth"
    assert report.official_preset("pcnet", weights) is None  # no preset
    assert report.official_preset("restormer", weights) is None  # presets, no copy at hand
    model, label = report.load("prn_r", {}, weights, None)
    assert label == "official (prn_r:rain100h)"
    assert models.identity(model).source["preset"] == "prn_r:rain100h"


def test_models_for_phones_get_every_format_larger_ones_the_float_formats(report):
    wanted = list(report.ALL_FORMATS)
    assert models.spec("pcnet").phone and report.formats_for("pcnet", wanted) == wanted
    assert not models.spec("restormer").phone
    assert report.formats_for("restormer", wanted) == ["none", "fp16", "dynamic"]


@pytest.mark.slow
def test_a_run_reports_the_official_weights_scored_by_the_evaluation(report, shared_dir, tmp_path):
    """One small model (PRN_r, 21 K parameters) end to end: its official weights from the
    presets, the Keras and float32 TFLite rows scored on two test pairs by the evaluation, a
    row merged into an existing report."""
    from tfderain import evaluation, inference
    from tfderain.data.layouts import find_pairs

    out = tmp_path / "REPORT.md"
    table.write_report(out, [_row(report, "pcnet", "int8", "80.0")], ["earlier"])
    argv = ["--models", "prn_r", "--formats", "none", "--images", "2", "--repeats", "1"]
    assert report.main([*argv, "-o", str(out)], shared=shared_dir) == 0
    rows = {(r["model"], r["format"]): r for r in table.read_rows(out)}
    assert set(rows) == {("pcnet", "int8"), ("prn_r", "Keras float32"), ("prn_r", "none")}
    keras_row, none = rows["prn_r", "Keras float32"], rows["prn_r", "none"]
    assert keras_row["weights"] == none["weights"] == "official (prn_r:rain100h)"
    assert none["Flex-free"] == "yes" and float(none["max err vs Keras"]) < 1e-4
    assert none["setup"] == "2 test pairs" and none["CPU"] == report.cpu_summary()
    # the Keras row's PSNR is what `tfderain evaluate` gives the same weights on the same pairs
    model, _ = report.load("prn_r", {}, shared_dir / "weights", None)
    pairs = find_pairs(shared_dir / "data" / "Rain100H-20")[:2]
    scored = evaluation.collect(evaluation.score_pairs(inference.Derainer(model), pairs), "A")
    assert abs(float(keras_row["PSNR (dB)"]) - scored.mean_psnr) <= 0.006  # printed to 0.01
    assert abs(float(none["PSNR (dB)"]) - scored.mean_psnr) <= 0.016
    assert "- 2 test pairs;" in out.read_text()


@pytest.mark.slow
def test_the_entry_point_passes_the_checkouts_shared_folder_and_report():
    proc = subprocess.run(
        [sys.executable, str(REPO / "export" / "report.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("usage: export/report.py")
    assert "--reuse" in proc.stdout and "--keep-float NAME=PATTERNS" in proc.stdout
