"""Dataset folder layouts: detection, pairing, natural order, warnings and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tfderain.data.layouts import LayoutError, Pair, detect_layout, find_pairs, image_size


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


# ----------------------------------------------------------------- side-by-side, levels, mixes


def _image(path: Path, width: int, height: int) -> None:
    """A real image file (headers are read for detection)."""
    import cv2
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.zeros((height, width, 3), np.uint8))


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp"])
def test_image_size_reads_only_the_header(tmp_path, suffix):
    _image(tmp_path / f"a{suffix}", 37, 21)
    assert image_size(tmp_path / f"a{suffix}") == (37, 21)
    # Cut after the header: the size is still known without any pixel data.
    data = (tmp_path / f"a{suffix}").read_bytes()
    (tmp_path / f"cut{suffix}").write_bytes(data[: 700 if suffix == ".jpg" else 40])
    assert image_size(tmp_path / f"cut{suffix}") == (37, 21)
    (tmp_path / "text.png").write_text("not an image")
    assert image_size(tmp_path / "text.png") is None
    assert image_size(tmp_path / "missing.png") is None


def test_a_jpeg_size_is_found_after_a_large_app_segment(tmp_path):
    _image(tmp_path / "a.jpg", 64, 32)
    data = (tmp_path / "a.jpg").read_bytes()
    app = b"\xff\xe1" + (65535).to_bytes(2, "big") + bytes(65533)  # a 64 KiB APP1 segment
    (tmp_path / "b.jpg").write_bytes(data[:2] + app + data[2:])
    assert image_size(tmp_path / "b.jpg") == (64, 32)


def test_a_folder_of_double_width_images_is_side_by_side_rainy_first(tmp_path):
    _image(tmp_path / "train" / "10.jpg", 64, 32)
    _image(tmp_path / "train" / "2.png", 40, 20)
    pairs = find_pairs(tmp_path / "train")
    assert pairs.layout == detect_layout(tmp_path / "train") == "sidebyside"
    assert [(p.name, p.split, p.density) for p in pairs] == [
        ("2", "rainy|clean", None),
        ("10", "rainy|clean", None),
    ]
    assert all(p.rainy == p.clean for p in pairs)


def test_rain800_folders_are_clean_first_and_the_order_can_be_forced(tmp_path):
    _image(tmp_path / "Rain800" / "test_syn" / "1.jpg", 64, 32)
    assert find_pairs(tmp_path / "Rain800" / "test_syn")[0].split == "clean|rainy"
    forced = find_pairs(tmp_path / "Rain800" / "test_syn", order="rainy|clean")
    assert forced[0].split == "rainy|clean"
    with pytest.raises(LayoutError, match="order must be one of"):
        find_pairs(tmp_path / "Rain800" / "test_syn", order="left|right")


def test_a_folder_with_one_image_of_another_shape_is_not_side_by_side(tmp_path):
    _image(tmp_path / "1.png", 64, 32)
    _image(tmp_path / "2.png", 64, 40)
    _image(tmp_path / "3.png", 63, 32)
    with pytest.raises(LayoutError, match="no known dataset layout"):
        find_pairs(tmp_path)
    # Forced, halves of any shape are fine; an odd width cannot be split.
    pairs = find_pairs(tmp_path, layout="sidebyside")
    assert [p.name for p in pairs] == ["1", "2"]
    assert pairs.warnings == [f"{tmp_path / '3.png'}: width 63 is odd: not a side-by-side pair"]


def test_did_mdn_nested_level_folders_label_each_pair(tmp_path):
    for level in ("Rain_Heavy", "Rain_Medium", "rain_light"):
        for i in (0, 1):
            _image(tmp_path / level / "train2018new" / f"{i}.jpg", 32, 16)
    pairs = find_pairs(tmp_path)
    assert pairs.layout == "levels"
    assert [(p.name, p.density, p.split) for p in pairs] == [
        ("light/0", 0, "rainy|clean"),
        ("light/1", 0, "rainy|clean"),
        ("medium/0", 1, "rainy|clean"),
        ("medium/1", 1, "rainy|clean"),
        ("heavy/0", 2, "rainy|clean"),
        ("heavy/1", 2, "rainy|clean"),
    ]


def test_a_light_medium_heavy_token_in_the_file_name_is_a_label(tmp_path):
    _touch(tmp_path, "input/heavy_1.png", "input/rain-Light-2.png", "input/3.png")
    _touch(tmp_path, "input/heavylight.png", "target/heavylight.png")
    _touch(tmp_path, "target/heavy_1.png", "target/rain-Light-2.png", "target/3.png")
    labels = {p.name: p.density for p in find_pairs(tmp_path)}
    # "heavylight" is one token, neither class.
    assert labels == {"heavy_1": 2, "rain-Light-2": 0, "3": None, "heavylight": None}


def test_a_list_of_roots_is_a_mix_with_prefixed_names(tmp_path):
    _touch(tmp_path, "Rain1800/rain/1.png", "Rain1800/norain/1.png")
    _touch(tmp_path, "Rain12/input/1.png", "Rain12/target/1.png")
    _touch(tmp_path, "other/Rain12/input/7.png", "other/Rain12/target/7.png")
    roots = [tmp_path / "Rain1800", tmp_path / "Rain12", tmp_path / "other" / "Rain12"]
    pairs = find_pairs(roots)
    assert pairs.layout == "mix"
    assert [p.name for p in pairs] == ["Rain1800/1", "Rain12/1", "Rain12~2/7"]
    assert [(r.name, layout, n) for r, layout, n in pairs.roots] == [
        ("Rain1800", "folders", 1),
        ("Rain12", "rain13k", 1),
        ("Rain12", "rain13k", 1),
    ]


def test_a_yaml_or_text_manifest_lists_the_roots_of_a_mix(tmp_path):
    _touch(tmp_path, "data/Rain1800/rain/1.png", "data/Rain1800/norain/1.png")
    _image(tmp_path / "data" / "pairs" / "5.jpg", 32, 16)
    (tmp_path / "mix.yaml").write_text(
        "roots:\n  - data/Rain1800\n  - {path: data/pairs, order: clean|rainy}\n"
    )
    pairs = find_pairs(tmp_path / "mix.yaml")
    assert [(p.name, p.split) for p in pairs] == [("Rain1800/1", None), ("pairs/5", "clean|rainy")]
    (tmp_path / "mix.txt").write_text("# training mix\ndata/pairs  # side by side\n\n")
    assert [p.name for p in find_pairs(tmp_path / "mix.txt")] == ["pairs/5"]
    (tmp_path / "bad.yaml").write_text("roots: 3\n")
    with pytest.raises(LayoutError, match="bad.yaml: a manifest lists roots"):
        find_pairs(tmp_path / "bad.yaml")


def test_an_explicit_layout_overrides_detection(tmp_path):
    _touch(tmp_path, "input/1.png", "target/1.png", "rainy/2.png", "clean/2.png")
    assert [p.name for p in find_pairs(tmp_path)] == ["1"]  # detected: rain13k
    assert [p.name for p in find_pairs(tmp_path, layout="folders")] == ["2"]
    assert find_pairs(tmp_path, layout="rain13k").layout == "rain13k"
    with pytest.raises(LayoutError, match="prenet layout needs"):
        find_pairs(tmp_path / "input", layout="prenet")
    with pytest.raises(LayoutError, match="levels layout needs"):
        find_pairs(tmp_path, layout="levels")
    with pytest.raises(LayoutError, match="layout must be one of"):
        find_pairs(tmp_path, layout="rain14000")


def test_explicit_prenet_and_levels_layouts(tmp_path):
    _touch(tmp_path, "a/rainy/rain-1.png", "a/norain-1.png")
    assert [p.name for p in find_pairs(tmp_path / "a", layout="prenet")] == ["rain-1"]
    _touch(tmp_path, "b/Medium/input/1.png", "b/Medium/target/1.png")
    pairs = find_pairs(tmp_path / "b", layout="levels")
    assert [(p.name, p.density) for p in pairs] == [("medium/1", 1)]
