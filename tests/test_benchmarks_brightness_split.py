"""benchmarks/brightness_split.py: the split of the brightness error into untouched and rain
pixels, on pairs built so the answer is known."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/brightness_split.py", "brightness_split")


def _grey(value: int, shape=(4, 8)) -> np.ndarray:
    return np.full((*shape, 3), value, np.uint8)


def test_a_veil_removed_where_there_was_none_shows_on_untouched_pixels(bench):
    # Clean grey 100; the rain brightens the right half by 60 and leaves the left half alone.
    clean = _grey(100)
    rainy = clean.copy()
    rainy[:, 4:] = 160
    # The output takes the rain out but is 20 steps too dark everywhere.
    output = _grey(80)
    ratio, untouched, d_untouched, d_rain = bench.split(output, rainy, clean)
    assert ratio == pytest.approx(0.8)
    assert untouched == pytest.approx(0.5)
    assert 255 * d_untouched == pytest.approx(-20)
    assert 255 * d_rain == pytest.approx(-20)


def test_rain_left_in_shows_on_rain_pixels_only(bench):
    clean = _grey(100)
    rainy = clean.copy()
    rainy[:, 4:] = 160
    ratio, untouched, d_untouched, d_rain = bench.split(rainy, rainy, clean)  # nothing removed
    assert ratio == pytest.approx(1.3)
    assert d_untouched == pytest.approx(0.0)
    assert 255 * d_rain == pytest.approx(60)


def test_near_white_pixels_do_not_count_as_untouched(bench):
    # A white sky cannot get brighter: rain there is invisible, not absent.
    clean = _grey(250)
    _, untouched, d_untouched, _ = bench.split(clean, clean, clean)
    assert untouched == 0.0 and np.isnan(d_untouched)


def test_a_folder_without_pairs_is_a_one_line_error(bench, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        bench.main(["--data", str(tmp_path / "missing"), "--weights", "x.keras"])
    assert stop.value.code == 2
    assert "missing: not a folder" in capsys.readouterr().err.strip().splitlines()[-1]
