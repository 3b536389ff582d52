"""The README's table of the bundled default model states what was measured.

Each row naming a preset must equal that preset's recorded scores in
``tfderain/presets_scores.json`` (written by ``benchmarks/score_presets.py``, which derains
through ``tfderain.presets``); the rainy-input row is recomputed here from ``../shared/data``
with the protocol functions, so neither can drift from the numbers it claims.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tests.conftest import REPO
from tfderain import evaluation, io, metrics
from tfderain.data.layouts import find_pairs

SECTION = "## The bundled default model"
SCORES = REPO / "tfderain" / "presets_scores.json"
COLUMN = re.compile(r"^(Rain100[HL]-\d+), ([AB])$")
BRIGHTNESS = re.compile(r"^brightness error, (Rain100[HL]-\d+)$")
PRESET = re.compile(r"`([a-z0-9_]+:[a-z0-9_]+)`")


def _table() -> tuple[list[str], list[list[str]]]:
    """Header and body rows of the first table after the section heading."""
    text = (REPO / "README.md").read_text()
    section = text[text.index(SECTION) :]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    end = next((i for i, row in enumerate(rows) if i > 2 and len(row) != len(rows[0])), None)
    header, body = rows[0], rows[2:end]
    assert set(rows[1][0]) <= {"-", ":"}, "the table's second line is not its separator"
    return header, body


def _expected_cell(column: str, scores: dict) -> str | None:
    """The cell a column should hold for ``scores`` (by dataset and protocol), None if unknown."""
    if match := COLUMN.match(column):
        dataset, protocol = match.groups()
        entry = scores.get(dataset, {}).get(protocol)
        if entry is None:
            return None
        return f"{entry['mean_psnr']:.2f} dB / {entry['mean_ssim']:.3f}"
    if match := BRIGHTNESS.match(column):
        entry = scores.get(match.group(1), {}).get("A", {})
        if "brightness_error" not in entry:
            return None
        return f"{100 * entry['brightness_error']:.1f} %"
    return None


def test_the_table_has_both_protocols_and_the_brightness_column():
    header, body = _table()
    assert [c for c in header if COLUMN.match(c)] == [
        "Rain100H-20, A",
        "Rain100H-20, B",
        "Rain100L-3, A",
        "Rain100L-3, B",
    ]
    assert "brightness error, Rain100H-20" in header
    names = [m.group(1) for row in body if (m := PRESET.search(row[0]))]
    assert names[0] == "rainunet:synthetic" and "prenet:rain100h" in names


def test_preset_rows_equal_the_recorded_scores():
    recorded = json.loads(SCORES.read_text())["presets"]
    header, body = _table()
    checked = 0
    for row in body:
        match = PRESET.search(row[0])
        if match is None:
            continue
        name = match.group(1)
        assert name in recorded, f"{name}: no recorded scores in {SCORES.name}"
        for column, cell in zip(header[1:], row[1:], strict=True):
            expected = _expected_cell(column, recorded[name])
            if expected is None:
                assert cell == "", f"{name}, {column}: {cell!r} but nothing was recorded"
                continue
            assert cell == expected, f"{name}, {column}"
            checked += 1
    assert checked >= 15


@pytest.mark.slow
def test_rainy_input_row_is_measured_on_the_shared_data(shared_dir):
    header, body = _table()
    (row,) = [r for r in body if r[0] == "rainy input"]
    for column, cell in zip(header[1:], row[1:], strict=True):
        if match := COLUMN.match(column):
            dataset, protocol = match.groups()
            scores = [
                metrics.evaluate_pair(*_uint8_pair(pair), protocol)
                for pair in find_pairs(shared_dir / "data" / dataset)
            ]
            psnr, ssim = np.mean(scores, axis=0)
            assert cell == f"{psnr:.2f} dB / {ssim:.3f}", column
        elif match := BRIGHTNESS.match(column):
            ratios = [
                metrics.luma_ratio(*_uint8_pair(pair))
                for pair in find_pairs(shared_dir / "data" / match.group(1))
            ]
            assert cell == f"{100 * np.mean(np.abs(np.subtract(ratios, 1))):.1f} %", column


def _uint8_pair(pair) -> tuple[np.ndarray, np.ndarray]:
    rainy, clean = evaluation.read_pair(pair)
    return io.to_uint8(rainy.rgb), io.to_uint8(clean.rgb)
