"""Dataset folder layouts: detection, pairing, natural order, warnings and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tfderain.data.layouts import LayoutError, Pair, detect_layout, find_pairs


def _touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def test_rain100h_20_is_a_rain13k_layout_in_numeric_order(shared_dir):
    root = shared_dir / "data" / "Rain100H-20"
    pairs = find_pairs(root)
    assert detect_layout(root) == pairs.layout == "rain13k"
    assert [p.name for p in pairs] == [str(i) for i in range(1, 21)]
    assert all(isinstance(p, Pair) and p.density is None for p in pairs)
    assert all(p.rainy == root / "input" / f"{p.name}.png" for p in pairs)
    assert all(p.clean == root / "target" / f"{p.name}.png" for p in pairs)
    assert pairs.warnings == []


def test_rain100l_3_is_a_prenet_layout_matched_by_number(shared_dir):
    root = shared_dir / "data" / "Rain100L-3"
    pairs = find_pairs(root)
    assert pairs.layout == "prenet"
    assert [(p.rainy.relative_to(root), p.clean.relative_to(root)) for p in pairs] == [
        (Path(f"rainy/rain-00{i}.png"), Path(f"norain-00{i}.png")) for i in (1, 2, 3)
    ]
    assert pairs.warnings == []


def test_prenet_numbers_match_whatever_their_zero_padding(tmp_path):
    _touch(tmp_path, "rainy/rain-1.png", "rainy/rain-10.png", "rainy/rain-2.png")
    _touch(tmp_path, "norain-001.png", "norain-002.png", "norain-010.png")
    pairs = find_pairs(tmp_path)
    assert [(p.name, p.clean.name) for p in pairs] == [
        ("rain-1", "norain-001.png"),
        ("rain-2", "norain-002.png"),
        ("rain-10", "norain-010.png"),
    ]


@pytest.mark.parametrize(
    ("rainy", "clean"),
    [("rainy", "clean"), ("rain", "norain"), ("input", "gt"), ("Rainy", "Clean")],
)
def test_generic_folder_pairs_match_by_stem(tmp_path, rainy, clean):
    _touch(tmp_path, f"{rainy}/b.jpg", f"{rainy}/a.png", f"{clean}/a.png", f"{clean}/b.png")
    pairs = find_pairs(tmp_path)
    assert pairs.layout == "folders"
    assert [(p.name, p.rainy.name, p.clean.name) for p in pairs] == [
        ("a", "a.png", "a.png"),
        ("b", "b.jpg", "b.png"),
    ]


def test_rain1400_style_names_share_one_clean_image(tmp_path):
    _touch(tmp_path, "rainy_image/3_1.jpg", "rainy_image/3_14.jpg", "rainy_image/3_2.jpg")
    _touch(tmp_path, "ground_truth/3.jpg")
    pairs = find_pairs(tmp_path)
    assert [p.name for p in pairs] == ["3_1", "3_2", "3_14"]
    assert {p.clean.name for p in pairs} == {"3.jpg"}


def test_unmatched_files_are_warnings_not_errors(tmp_path):
    _touch(tmp_path, "input/1.png", "input/2.png", "target/1.png", "target/3.png")
    _touch(tmp_path, "input/notes.txt", "target/Thumbs.db")
    pairs = find_pairs(tmp_path)
    assert [p.name for p in pairs] == ["1"]
    assert len(pairs.warnings) == 2
    assert any(str(tmp_path / "input" / "2.png") in w for w in pairs.warnings)
    assert any(str(tmp_path / "target" / "3.png") in w for w in pairs.warnings)


def test_density_levels_layout_labels_pairs(tmp_path):
    _touch(tmp_path, "light/input/1.png", "light/target/1.png")
    _touch(tmp_path, "Rain_Heavy/rainy/1.png", "Rain_Heavy/clean/1.png")
    pairs = find_pairs(tmp_path)
    assert pairs.layout == "levels"
    assert [(p.name, p.density) for p in pairs] == [("light/1", 0), ("heavy/1", 2)]


def test_unknown_layout_is_a_layout_error_naming_the_folder(tmp_path):
    _touch(tmp_path, "images/1.png")
    expected = (
        f"{tmp_path}: no known dataset layout "
        "(expected input/+target/, rainy/+norain-*.png, or rainy/+clean/)"
    )
    with pytest.raises(LayoutError) as info:
        detect_layout(tmp_path)
    assert str(info.value) == expected
    assert isinstance(info.value, ValueError)
    with pytest.raises(LayoutError, match="not a directory"):
        find_pairs(tmp_path / "missing")


def test_a_layout_without_pairs_is_an_error(tmp_path):
    _touch(tmp_path, "input/1.png", "target/2.png")
    with pytest.raises(LayoutError, match="no rainy/clean pairs"):
        find_pairs(tmp_path)
