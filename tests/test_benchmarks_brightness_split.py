"""benchmarks/brightness_split.py: the split of the brightness error into untouched and rain
pixels, on pairs built so the answer is known."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import load_script

from tfderain import models


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


def test_a_folder_that_is_not_a_paired_dataset_is_a_one_line_error(bench, tmp_path):
    (tmp_path / "photo.txt").write_text("not a dataset")
    with pytest.raises(SystemExit) as stop:
        bench.report(None, tmp_path, "model")
    assert str(tmp_path) in str(stop.value) and "layout" in str(stop.value)


def test_a_broken_pair_is_skipped_and_reported(bench, tmp_path, capsys):
    (tmp_path / "input").mkdir()
    (tmp_path / "target").mkdir()
    for name in ("1", "2"):
        assert cv2.imwrite(str(tmp_path / "target" / f"{name}.png"), _grey(100, (16, 16)))
    assert cv2.imwrite(str(tmp_path / "input" / "1.png"), _grey(160, (16, 16)))
    (tmp_path / "input" / "2.png").write_bytes(b"not a png")

    class Identity:  # returns the rainy image: the rain is left in
        spec = models.spec("rainunet")

        def derain_array(self, rgb):
            return rgb

    rows = bench.report(Identity(), tmp_path, "identity")
    assert rows.shape == (1, 4)
    assert rows[0, 0] == pytest.approx(1.6)
    err = capsys.readouterr().err
    assert "skipped:" in err and "2.png" in err
