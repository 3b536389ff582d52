"""Packing datasets into TFRecord shards: records, manifest, equality with the source, CLI."""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path

import cv2
import numpy as np
import pytest

from tfderain._keras import tf
from tfderain.cli import main
from tfderain.data.pipeline import paired_dataset
from tfderain.data.tfrecord import (
    MANIFEST,
    PackedPairs,
    PackError,
    is_packed,
    pack,
    read_pack_manifest,
    shard_name,
)


def _write(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """Five noise pairs (rainy = 2 clean) of a few sizes, PNG and JPEG, light/heavy labels."""
    root = tmp_path / "src"
    for k, (h, w) in enumerate([(20, 30), (32, 32), (24, 40), (40, 24), (18, 50)]):
        clean = np.random.default_rng(k).integers(0, 128, (h, w, 3), dtype=np.uint8)
        level = ("light", "heavy")[k % 2]
        suffix = ".png" if k % 2 else ".jpg"
        _write(root / "input" / f"{k}_{level}{suffix}", 2 * clean)
        _write(root / "target" / f"{k}_{level}{suffix}", clean)
    return root


def _batches(ds, n: int) -> list[dict]:
    return [{k: v.numpy() for k, v in batch.items()} for batch in islice(ds, n)]


def test_a_pack_holds_the_original_bytes_and_a_manifest(source, tmp_path):
    report = pack(source, tmp_path / "packed", shards=2)
    assert report.count == 5 and report.skipped == []
    folder = tmp_path / "packed"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [MANIFEST, "pairs-00000-of-00002.tfrecord", "pairs-00001-of-00002.tfrecord"]
    )
    assert shard_name(1, 2) == "pairs-00001-of-00002.tfrecord"
    manifest = read_pack_manifest(folder)
    names = ["0_light", "1_heavy", "2_light", "3_heavy", "4_light"]
    assert manifest["names"] == names
    assert manifest["count"] == 5 and manifest["shards"] == 2
    assert manifest["shard_counts"] == [3, 2]  # round robin
    assert manifest["layout"] == "rain13k" and manifest["source"] == str(source)
    assert manifest["density"] == [0, 2, 0, 2, 0]
    # Standard TFRecord files; the records keep the files' bytes untouched.
    assert (
        sum(1 for _ in tf.data.TFRecordDataset([str(folder / f) for f in manifest["files"]])) == 5
    )
    packed = PackedPairs(folder)
    record = packed.record(3)
    assert record.name == "3_heavy" and record.split is None and record.density == 2
    assert record.rainy == (source / "input" / "3_heavy.png").read_bytes()
    assert record.clean == (source / "target" / "3_heavy.png").read_bytes()
    assert is_packed(folder) and not is_packed(source)


def test_a_pack_gives_the_same_batches_as_its_source(source, tmp_path):
    pack(source, tmp_path / "packed", shards=3)
    options = {"patch_size": 16, "batch_size": 4, "seed": 7, "start_batch": 1}
    a = _batches(paired_dataset(source, num_shards=2, shard_index=1, **options), 4)
    b = _batches(paired_dataset(tmp_path / "packed", num_shards=2, shard_index=1, **options), 4)
    for x, y in zip(a, b, strict=True):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
        # The labels travel in the records: light 1/6, heavy 5/6.
        assert np.isclose(y["density"][:, None], [1 / 6, 5 / 6]).any(axis=1).all()


def test_side_by_side_files_are_packed_whole_with_their_order(tmp_path):
    clean = np.random.default_rng(0).integers(0, 128, (16, 16, 3), dtype=np.uint8)
    _write(tmp_path / "Rain800" / "1.png", np.concatenate([clean, 2 * clean], axis=1))
    pack(tmp_path / "Rain800", tmp_path / "packed")
    record = PackedPairs(tmp_path / "packed").record(0)
    assert record.split == "clean|rainy" and record.clean == b""
    assert record.rainy == (tmp_path / "Rain800" / "1.png").read_bytes()
    (batch,) = _batches(paired_dataset(tmp_path / "packed", patch_size=16, batch_size=2), 1)
    np.testing.assert_allclose(batch["rainy"], 2 * batch["clean"], atol=1e-6)


def test_bad_pairs_are_skipped_and_existing_packs_kept(source, tmp_path):
    (source / "input" / "2_light.jpg").write_bytes(b"")
    out = tmp_path / "packed"
    report = pack(source, out)
    assert report.count == 4
    assert report.skipped == [(str(source / "input" / "2_light.jpg"), "empty file")]
    assert read_pack_manifest(out)["skipped"] == [
        [str(source / "input" / "2_light.jpg"), "empty file"]
    ]
    with pytest.raises(PackError, match="already exists"):
        pack(source, out)
    assert pack(source, out, overwrite=True).count == 4
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no leftovers


def test_cli_data_pack_exit_codes_and_messages(source, tmp_path, capsys):
    assert main(["data", "pack", str(source), "-o", str(tmp_path / "a"), "--shards", "2"]) == 0
    err = capsys.readouterr().err
    assert "packed 5 pair(s) into" in err and "(2 shard(s)), 0 skipped" in err

    (source / "target" / "3_heavy.png").write_text("not an image")
    assert main(["data", "pack", str(source), "-o", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err
    bad = source / "target" / "3_heavy.png"
    assert f"tfderain: skipped {bad}: not a PNG, JPEG or BMP file" in err
    assert "packed 4 pair(s)" in err and "1 skipped" in err

    assert main(["data", "pack", str(source), "-o", str(tmp_path / "b")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["data", "pack", str(tmp_path / "missing"), "-o", str(tmp_path / "c")]) == 2
    assert "missing: no such file or directory" in capsys.readouterr().err

    for path in source.glob("*/*"):
        path.write_bytes(b"")
    assert main(["data", "pack", str(source), "-o", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "no pair could be packed (5 bad)" in err
    assert not (tmp_path / "d").exists()


def test_cli_data_info_of_a_folder_and_of_a_pack(source, tmp_path, capsys):
    (source / "input" / "extra.png").write_bytes(b"")
    assert main(["data", "info", str(source)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:4] == [
        "layout: rain13k",
        "pairs: 5",
        "density: light 3, medium 0, heavy 2, unlabelled 0",
        "warnings: 1",
    ]
    assert "extra.png: no clean image" in out[4]
    (source / "input" / "extra.png").unlink()
    pack(source, tmp_path / "packed", shards=2)
    assert main(["data", "info", str(tmp_path / "packed")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == ["layout: packed (rain13k, 2 shard(s))", "pairs: 5", out[2]]
    assert main(["data", "info", str(tmp_path / "nothing")]) == 2


def test_a_damaged_manifest_is_a_clear_error(source, tmp_path):
    pack(source, tmp_path / "packed")
    manifest = json.loads((tmp_path / "packed" / MANIFEST).read_text())
    manifest["names"] = manifest["names"][:-1]
    (tmp_path / "packed" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(PackError, match="must each list 5 pairs"):
        paired_dataset(tmp_path / "packed")
