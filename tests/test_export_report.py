"""``export/report.py``: its markdown rows survive a rewrite, older reports still merge."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "export" / "report.py"


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("export_report", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(report, model: str, fmt: str, latency: str) -> dict[str, str]:
    row = dict.fromkeys(report.COLUMNS, "")
    return {**row, "model": model, "format": fmt, "latency (ms)": latency, "CPU": "X (avx2)"}


def test_rows_written_are_read_back_and_merged_by_model_and_format(report, tmp_path):
    path = tmp_path / "REPORT.md"
    old = [_row(report, "prenet", "qat", "300.0"), _row(report, "prenet", "none", "900.0")]
    report.write_report(path, old, ["first run"])
    assert report.read_rows(path) == old
    new = [_row(report, "prenet", "qat", "250.0"), _row(report, "pcnet", "int8", "80.0")]
    merged = report.merge(report.read_rows(path), new)
    assert [(r["model"], r["format"], r["latency (ms)"]) for r in merged] == [
        ("pcnet", "int8", "80.0"),
        ("prenet", "none", "900.0"),
        ("prenet", "qat", "250.0"),
    ]
    assert "first run" in path.read_text()


def test_a_report_from_before_the_cpu_column_is_read_with_an_empty_cpu(report, tmp_path):
    old_columns = [c for c in report.COLUMNS if c != "CPU"]
    cells = {c: f"v{k}" for k, c in enumerate(old_columns)}
    path = tmp_path / "REPORT.md"
    path.write_text(
        "| " + " | ".join(old_columns) + " |\n"
        "|" + "---|" * len(old_columns) + "\n"
        "| " + " | ".join(cells.values()) + " |\n"
    )
    (row,) = report.read_rows(path)
    assert row["CPU"] == ""
    assert all(row[c] == v for c, v in cells.items())


def test_cpu_summary_names_a_model_and_only_the_flags_that_matter(report):
    model, _, flags = report.cpu_summary().rpartition(" (")
    assert model and flags.endswith(")")
    flags = flags[:-1].split()
    assert flags == ["no", "SIMD", "flags"] or set(flags) <= set(report.CPU_FLAGS)
