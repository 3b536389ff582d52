"""tf.data pipelines: shapes, aligned crops, determinism, bad files, synthetic rain, fit targets."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import cv2
import numpy as np
import pytest

from tfderain._keras import keras, tf
from tfderain.data.pipeline import (
    BAD_PAIRS,
    LEVEL_DENSITY,
    _crop_and_augment,
    as_training_pairs,
    paired_dataset,
    synthetic_dataset,
)

PATCH = 32

# (height, width) of the test pairs; the first is smaller than the patch in one dimension.
SIZES = [(20, 50), (40, 56), (48, 40), (64, 64), (33, 90)]


def _write_pair(rainy_path: Path, clean_path: Path, seed: int, shape: tuple[int, int]) -> None:
    """A noise pair with ``rainy == 2 * clean`` exactly, so any misalignment shows."""
    clean = np.random.default_rng(seed).integers(0, 128, (*shape, 3), dtype=np.uint8)
    for path, image in ((rainy_path, 2 * clean), (clean_path, clean)):
        path.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(path), image)


@pytest.fixture
def rain13k(tmp_path: Path) -> Path:
    for i, shape in enumerate(SIZES, start=1):
        _write_pair(tmp_path / "input" / f"{i}.png", tmp_path / "target" / f"{i}.png", i, shape)
    return tmp_path


def _batches(ds, n: int) -> list[dict]:
    return [{k: v.numpy() for k, v in batch.items()} for batch in islice(ds, n)]


@pytest.mark.slow
def test_paired_batches_have_the_documented_structure(rain13k):
    ds = paired_dataset(rain13k, patch_size=PATCH, batch_size=4)
    assert ds.element_spec["rainy"].shape.as_list() == [4, PATCH, PATCH, 3]
    (batch,) = _batches(ds, 1)
    assert set(batch) == {"rainy", "clean", "density"}
    assert batch["rainy"].shape == batch["clean"].shape == (4, PATCH, PATCH, 3)
    assert batch["rainy"].dtype == batch["clean"].dtype == batch["density"].dtype == np.float32
    assert batch["rainy"].min() >= 0.0 and batch["rainy"].max() <= 1.0
    np.testing.assert_array_equal(batch["density"], -1.0)


def test_crops_flips_and_rotations_keep_each_pair_aligned(rain13k):
    ds = paired_dataset(rain13k, patch_size=PATCH, batch_size=5, seed=3)
    for batch in _batches(ds, 6):
        np.testing.assert_allclose(batch["rainy"], 2 * batch["clean"], atol=1e-6)
        assert batch["clean"].std() > 0.05


def test_augmentation_produces_all_eight_flips_and_rotations():
    """A 2x2 patch of distinct values takes all 8 orientations of the square, both images alike."""
    image = np.arange(4, dtype=np.uint8).reshape(2, 2, 1).repeat(3, axis=-1)
    element = {"images": tf.constant(np.concatenate([image, image], -1)), "density": -1.0}
    seen = set()
    for i in range(64):
        out = _crop_and_augment(tf.constant(i, tf.int64), element, 2, 0, True)
        np.testing.assert_array_equal(out["rainy"], out["clean"])
        seen.add(tuple(out["rainy"].numpy()[..., 0].ravel()))
    assert len(seen) == 8


@pytest.mark.slow
def test_same_seed_same_stream_other_seed_other_stream(rain13k):
    def first(seed):
        return _batches(paired_dataset(rain13k, patch_size=PATCH, batch_size=4, seed=seed), 3)

    a, b, c = first(0), first(0), first(1)
    for x, y in zip(a, b, strict=True):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
    assert not all(np.array_equal(x["rainy"], y["rainy"]) for x, y in zip(a, c, strict=True))


@pytest.mark.parametrize("cache", [False, True])
def test_an_epoch_without_repeat_ends_with_a_partial_batch(rain13k, cache):
    options = {"repeat": False, "shuffle": False, "augment": False, "cache": cache}
    ds = paired_dataset(rain13k, patch_size=PATCH, batch_size=2, **options)
    sizes = [len(batch["rainy"]) for batch in _batches(ds, 10)]
    assert sizes == [2, 2, 1]


@pytest.mark.parametrize("cache", [False, True])
def test_corrupt_files_are_skipped_and_the_epoch_finishes(rain13k, cache):
    good = cv2.imencode(".png", np.zeros((40, 40, 3), np.uint8))[1].tobytes()
    (rain13k / "input" / "6.png").write_bytes(good[: len(good) // 2])  # truncated PNG
    (rain13k / "target" / "6.png").write_bytes(good)
    (rain13k / "input" / "7.png").write_bytes(b"this is not an image")
    (rain13k / "target" / "7.png").write_bytes(good)
    (rain13k / "input" / "8.png").write_bytes(b"")
    (rain13k / "target" / "8.png").write_bytes(good)
    _write_pair(rain13k / "input" / "9.png", rain13k / "target" / "9.png", 9, (40, 40))
    _write_pair(rain13k / "input" / "10.png", rain13k / "target" / "10.png", 10, (40, 41))
    (rain13k / "target" / "10.png").write_bytes(good)  # the two sizes differ
    ds = paired_dataset(
        rain13k, patch_size=PATCH, batch_size=3, repeat=False, shuffle=False, cache=cache
    )
    batches = _batches(ds, 10)
    assert sum(len(b["rainy"]) for b in batches) == len(SIZES) + 1
    for batch in batches:
        np.testing.assert_allclose(batch["rainy"], 2 * batch["clean"], atol=1e-6)


def test_density_labels_flow_from_a_levels_layout(tmp_path):
    _write_pair(tmp_path / "light/input/1.png", tmp_path / "light/target/1.png", 1, (40, 40))
    _write_pair(tmp_path / "heavy/rainy/1.png", tmp_path / "heavy/clean/1.png", 2, (40, 40))
    ds = paired_dataset(
        tmp_path, patch_size=PATCH, batch_size=2, repeat=False, shuffle=False, augment=False
    )
    (batch,) = _batches(ds, 1)
    np.testing.assert_allclose(batch["density"], [LEVEL_DENSITY[0], LEVEL_DENSITY[2]])


# ---------------------------------------------------------------------------- synthetic stream


def _clean_images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    smooth = [cv2.resize(rng.random((8, 12, 3), dtype=np.float32), (120, 80)) for _ in range(2)]
    return [*smooth, rng.integers(0, 256, (24, 70, 3), dtype=np.uint8)]


def test_synthetic_stream_structure_and_density_range():
    ds = synthetic_dataset(
        _clean_images(), patch_size=PATCH, batch_size=6, seed=0, density_range=(0.4, 0.6)
    )
    assert ds.element_spec["clean"].shape.as_list() == [6, PATCH, PATCH, 3]
    for batch in _batches(ds, 2):
        assert batch["rainy"].shape == batch["clean"].shape == (6, PATCH, PATCH, 3)
        assert batch["rainy"].dtype == batch["clean"].dtype == np.float32
        assert batch["rainy"].min() >= 0.0 and batch["rainy"].max() <= 1.0
        assert np.all((batch["density"] >= 0.4) & (batch["density"] <= 0.6))
        assert np.abs(batch["rainy"] - batch["clean"]).mean() > 0.005


def test_synthetic_stream_is_a_function_of_the_seed():
    def first(seed):
        return _batches(
            synthetic_dataset(_clean_images(), patch_size=PATCH, batch_size=4, seed=seed), 3
        )

    a, b, c = first(5), first(5), first(6)
    for x, y in zip(a, b, strict=True):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
    assert not np.array_equal(a[0]["rainy"], c[0]["rainy"])


def _extents(size_range, long_side: int = 1000, n: int = 16) -> np.ndarray:
    """Horizontal extent of clean patches cut from a photo whose value is x / long_side: a patch
    of a photo downsampled to long side ``S`` spans about PATCH / S of it."""
    ramp = np.arange(long_side, dtype=np.float32) / long_side
    photo = np.repeat(np.broadcast_to(ramp, (600, long_side))[..., None], 3, axis=2)
    ds = synthetic_dataset(
        [np.ascontiguousarray(photo)],
        patch_size=PATCH,
        batch_size=n,
        size_range=size_range,
        augment=False,
    )
    (batch,) = _batches(ds, 1)
    clean = batch["clean"][..., 0]
    return (clean[:, :, -1] - clean[:, :, 0]).mean(axis=1)


def test_synthetic_size_range_sets_the_photo_long_side():
    # Long side 100: a 32-pixel patch spans a third of the photo (31/32 of it centre to centre).
    np.testing.assert_allclose(_extents((100, 100)), 0.32 * 31 / 32, atol=0.01)
    # Long side at most the photo's own: never upsampled, a patch spans 31 of 1000 pixels.
    np.testing.assert_allclose(_extents((1000, None)), 0.031, atol=0.002)
    np.testing.assert_allclose(_extents((2000, 4000)), 0.031, atol=0.002)
    # Long sides in [200, 500]: extents between 32/500 and 32/200, spread over the range.
    extents = _extents((200, 500), n=32)
    assert extents.min() >= 0.064 * 31 / 32 - 0.005 and extents.max() <= 0.16 * 31 / 32 + 0.005
    assert extents.max() - extents.min() > 0.05


def test_synthetic_size_range_is_checked():
    for bad in [(0, 10), (50, 10), (1.5, None), (None, 10), 7]:
        with pytest.raises(ValueError, match="size_range"):
            synthetic_dataset(_clean_images(), size_range=bad)


def test_synthetic_styles_draw_one_style_and_its_density_range_per_patch():
    # rain100l renders light rain (density below 1/3), rain100h heavy rain (above 2/3).
    ds = synthetic_dataset(_clean_images(), patch_size=PATCH, batch_size=24, styles=["rain100h"])
    assert _batches(ds, 1)[0]["density"].min() >= 2 / 3
    ds = synthetic_dataset(
        _clean_images(), patch_size=PATCH, batch_size=24, styles=("rain100l", "rain100h")
    )
    density = _batches(ds, 1)[0]["density"]
    assert np.all((density <= 1 / 3) | (density >= 2 / 3))
    assert (density <= 1 / 3).any() and (density >= 2 / 3).any()
    with pytest.raises(ValueError, match="styles"):
        synthetic_dataset(_clean_images(), styles=["drizzle"])
    with pytest.raises(ValueError, match="styles"):
        synthetic_dataset(_clean_images(), styles=[])


def test_synthetic_keep_veil_changes_the_targets_of_veiled_patches_only():
    def batch(keep_veil):
        ds = synthetic_dataset(
            _clean_images(), patch_size=PATCH, batch_size=16, styles=["heavy"], keep_veil=keep_veil
        )
        return _batches(ds, 1)[0]

    kept, removed = batch(True), batch(False)
    np.testing.assert_array_equal(kept["rainy"], removed["rainy"])
    np.testing.assert_array_equal(kept["density"], removed["density"])
    # Heavy rain (density above 2/3) always has a veil: it lifts every target.
    lift = (kept["clean"] - removed["clean"]).mean(axis=(1, 2, 3))
    assert np.all(lift > 0), lift
    with pytest.raises(ValueError, match="keep_veil"):
        synthetic_dataset(_clean_images(), keep_veil="yes")


def test_synthetic_stream_reads_the_clean_images_of_a_dataset_folder(rain13k):
    (batch,) = _batches(synthetic_dataset(rain13k, patch_size=PATCH, batch_size=3), 1)
    assert batch["clean"].shape == (3, PATCH, PATCH, 3)
    # The clean images of the fixture are below 128/255.
    assert batch["clean"].max() <= 128 / 255


def test_synthetic_stream_skips_unreadable_files_of_a_plain_folder(tmp_path):
    assert cv2.imwrite(str(tmp_path / "photo.png"), np.full((40, 60, 3), 51, np.uint8))
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    (batch,) = _batches(synthetic_dataset(tmp_path, patch_size=PATCH, batch_size=2), 1)
    np.testing.assert_allclose(batch["clean"], 0.2, atol=1e-6)


def test_synthetic_stream_rejects_bad_arguments():
    with pytest.raises(ValueError, match="density_range"):
        synthetic_dataset(_clean_images(), density_range=(0.5, 1.5))
    with pytest.raises(ValueError, match="H, W, 3"):
        synthetic_dataset([np.zeros((8, 8), np.float32)])
    with pytest.raises(ValueError, match="seed"):
        synthetic_dataset(_clean_images(), seed=-1)


# ----------------------------------------------------------------------------- model.fit targets


def test_training_pairs_are_keyed_like_the_model_outputs(rain13k):
    ds = paired_dataset(rain13k, patch_size=PATCH, batch_size=2)
    pairs = as_training_pairs(ds, outputs=("derained", "stages", "density", "rain"), stages=3)
    rainy, targets = next(iter(pairs))
    assert rainy.shape == (2, PATCH, PATCH, 3)
    assert targets["derained"].shape == (2, PATCH, PATCH, 3)
    assert targets["stages"].shape == (2, 3, PATCH, PATCH, 3)
    np.testing.assert_array_equal(targets["stages"][:, 1], targets["derained"])
    np.testing.assert_array_equal(targets["density"], [-1.0, -1.0])
    # "rain": [rainy | clean] on the channel axis, for losses that need both images.
    assert targets["rain"].shape == (2, PATCH, PATCH, 6)
    np.testing.assert_array_equal(targets["rain"][..., :3], rainy)
    np.testing.assert_array_equal(targets["rain"][..., 3:], targets["derained"])
    with pytest.raises(ValueError, match="stages"):
        as_training_pairs(ds, outputs=("stages",))
    with pytest.raises(ValueError, match="outputs"):
        as_training_pairs(ds, outputs=("mask",))


def test_training_pairs_feed_model_fit():
    inputs = keras.Input((None, None, 3))
    derained = keras.layers.Conv2D(3, 3, padding="same", name="derained")(inputs)
    model = keras.Model(inputs, {"derained": derained})
    model.compile(optimizer="adam", loss={"derained": "mse"})
    ds = synthetic_dataset(_clean_images(), patch_size=PATCH, batch_size=4)
    history = model.fit(as_training_pairs(ds), steps_per_epoch=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])


# ------------------------------------------------------- global stream: resume, shards, bad files

# Seven 24x30 pairs of constant colour: clean = 10 k + 5, rainy = 2 clean, for pair k (0-based).
N_FLAT = 7


@pytest.fixture
def flat(tmp_path: Path) -> Path:
    for k in range(N_FLAT):
        clean = np.full((24, 30, 3), 10 * k + 5, np.uint8)
        for folder, image in (("input", 2 * clean), ("target", clean)):
            (tmp_path / folder).mkdir(exist_ok=True)
            assert cv2.imwrite(str(tmp_path / folder / f"{k}.png"), image)
    return tmp_path


def _pair_of(batch: dict) -> list[int]:
    """The pair index k of each element of a batch of ``flat`` (from its clean colour)."""
    values = np.round(batch["clean"][:, 0, 0, 0] * 255).astype(int)
    assert np.all((values - 5) % 10 == 0)
    return list((values - 5) // 10)


@pytest.mark.slow
def test_each_epoch_is_a_permutation_drawn_from_seed_and_epoch(flat):
    ds = paired_dataset(flat, patch_size=16, batch_size=N_FLAT, seed=4)
    seen = [_pair_of(b) for b in _batches(ds, 3)]
    expected = [list(np.random.default_rng([4, e]).permutation(N_FLAT)) for e in range(3)]
    assert seen == expected
    ordered = paired_dataset(flat, patch_size=16, batch_size=5, shuffle=False)
    assert [_pair_of(b) for b in _batches(ordered, 2)] == [[0, 1, 2, 3, 4], [5, 6, 0, 1, 2]]


def test_a_resumed_paired_stream_equals_the_uninterrupted_one(flat):
    whole = _batches(paired_dataset(flat, patch_size=16, batch_size=4, seed=2), 6)
    resumed = _batches(paired_dataset(flat, patch_size=16, batch_size=4, seed=2, start_batch=4), 2)
    for a, b in zip(whole[4:], resumed, strict=True):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


@pytest.mark.slow
def test_paired_shards_concatenated_are_the_global_batches(flat):
    whole = _batches(paired_dataset(flat, patch_size=16, batch_size=6, seed=1), 3)
    shards = [
        _batches(
            paired_dataset(
                flat,
                patch_size=16,
                batch_size=6,
                seed=1,
                num_shards=3,
                shard_index=w,
                start_batch=1,
            ),
            2,
        )
        for w in range(3)
    ]
    for j in range(2):
        for key in ("rainy", "clean", "density"):
            joined = np.concatenate([shards[w][j][key] for w in range(3)])
            np.testing.assert_array_equal(joined, whole[j + 1][key])
    with pytest.raises(ValueError, match="not divisible by num_shards 4"):
        paired_dataset(flat, batch_size=6, num_shards=4)
    with pytest.raises(ValueError, match="shard_index"):
        paired_dataset(flat, batch_size=6, num_shards=2, shard_index=2)


def test_an_unrepeated_shard_keeps_its_share_of_each_batch(flat):
    options = {"patch_size": 16, "batch_size": 4, "repeat": False, "shuffle": False}
    shard = paired_dataset(flat, num_shards=2, shard_index=1, **options)
    # Global batches [0..3], [4..6]: shard 1 takes elements 2, 3 and 6.
    assert [_pair_of(b) for b in _batches(shard, 5)] == [[2, 3], [6]]


def test_bad_pairs_are_reported_once_and_replaced_by_the_next_pair(flat, caplog):
    (flat / "input" / "1.png").write_bytes(b"")  # zero bytes
    (flat / "input" / "2.png").write_text("a text file named .png")
    jpeg = cv2.imencode(".jpg", np.zeros((24, 30, 3), np.uint8))[1].tobytes()
    (flat / "input" / "4.png").write_bytes(jpeg[: len(jpeg) // 2])  # truncated JPEG
    assert cv2.imwrite(str(flat / "target" / "5.png"), np.zeros((24, 31, 3), np.uint8))
    ds = paired_dataset(flat, patch_size=16, batch_size=7, shuffle=False, seed=0)
    with caplog.at_level("WARNING", logger="tfderain.data.pipeline"):
        seen = [_pair_of(b) for b in _batches(ds, 3)]
    # Element i is pair i % 7, or the next good one: 1, 2 -> 3; 4, 5 -> 6.
    assert seen == [[0, 3, 3, 3, 6, 6, 6]] * 3
    causes = dict(ds.bad_pairs.items)
    assert sorted(causes) == ["1", "2", "4", "5"]
    assert "1.png: empty file" in causes["1"]
    assert "not a PNG, JPEG or BMP" in causes["2"]
    assert "truncated or corrupt" in causes["4"]
    assert "differs from its clean image" in causes["5"] and "30x24" in causes["5"]
    lines = [r.getMessage() for r in caplog.records if "skipping pair" in r.getMessage()]
    assert len(lines) == 4  # once each, over three epochs
    assert BAD_PAIRS.items  # also collected process-wide


@pytest.mark.slow
def test_side_by_side_pairs_are_split_in_their_order(tmp_path):
    clean = np.random.default_rng(0).integers(0, 128, (20, 20, 3), dtype=np.uint8)
    for name, left, right in (("a", 2 * clean, clean), ("b", clean, 2 * clean)):
        folder = tmp_path / ("Rain800" if name == "b" else "didmdn")
        folder.mkdir()
        assert cv2.imwrite(str(folder / "1.png"), np.concatenate([left, right], axis=1))
    for folder in ("didmdn", "Rain800"):
        ds = paired_dataset(tmp_path / folder, patch_size=16, batch_size=3, seed=1)
        for batch in _batches(ds, 2):
            np.testing.assert_allclose(batch["rainy"], 2 * batch["clean"], atol=1e-6)


def test_did_mdn_level_labels_reach_the_batches(tmp_path):
    for level, value in (("Rain_Light", 10), ("Rain_Heavy", 20)):
        folder = tmp_path / level / "train2018new"
        folder.mkdir(parents=True)
        assert cv2.imwrite(str(folder / "0.jpg"), np.full((16, 32, 3), value, np.uint8))
    ds = paired_dataset(tmp_path, patch_size=16, batch_size=2, shuffle=False, repeat=False)
    (batch,) = _batches(ds, 1)
    np.testing.assert_allclose(batch["density"], [LEVEL_DENSITY[0], LEVEL_DENSITY[2]])


def test_a_list_of_folders_is_one_stream(flat, tmp_path_factory):
    other = tmp_path_factory.mktemp("other")
    assert cv2.imwrite(str(other / "1.png"), np.full((24, 48, 3), 205, np.uint8))  # side by side
    ds = paired_dataset([flat, other], patch_size=16, batch_size=8, shuffle=False, repeat=False)
    (batch,) = _batches(ds, 1)
    assert _pair_of(batch) == [0, 1, 2, 3, 4, 5, 6, 20]


def test_synthetic_stream_resumes_and_shards_like_the_global_stream():
    images = _clean_images()
    whole = _batches(synthetic_dataset(images, patch_size=16, batch_size=4, seed=3), 3)
    resumed = _batches(
        synthetic_dataset(images, patch_size=16, batch_size=4, seed=3, start_batch=2), 1
    )
    np.testing.assert_array_equal(resumed[0]["rainy"], whole[2]["rainy"])
    halves = [
        _batches(
            synthetic_dataset(
                images,
                patch_size=16,
                batch_size=4,
                seed=3,
                num_shards=2,
                shard_index=w,
                start_batch=1,
            ),
            1,
        )[0]
        for w in (0, 1)
    ]
    for key in ("rainy", "clean", "density"):
        np.testing.assert_array_equal(np.concatenate([h[key] for h in halves]), whole[1][key])
    with pytest.raises(ValueError, match="not divisible"):
        synthetic_dataset(images, batch_size=4, num_shards=3)
