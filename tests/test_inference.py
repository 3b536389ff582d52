"""tfderain.inference: padding, tiling and blending, and batches of files."""

from __future__ import annotations

import numpy as np
import pytest

from tfderain import inference, io, models
from tfderain._keras import keras
from tfderain.inference import Derainer, blend_window, derain_array, derain_files, tile_starts

layers = keras.layers


def _rainy(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth gradient with texture, in [0, 1]."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.1, 0.7, w, dtype=np.float32)[None, :, None]
    return np.clip(ramp + 0.25 * rng.random((h, w, 3), dtype=np.float32), 0, 1)


@pytest.fixture(scope="module")
def prn_r():
    """A small PRN_r (2 stages, 8 channels, receptive radius 24) with seeded random weights; the
    output convolution is scaled down so that the results are mostly inside [0, 1]."""
    keras.utils.set_random_seed(0)
    model = models.build("prn_r", stages=2, channels=8)
    out = model.get_layer("conv")
    kernel, bias = out.get_weights()
    out.set_weights([kernel * 0.05, bias * 0.0])
    return model


def _conv_net(convs: int = 4) -> keras.Model:
    """``convs`` 3×3 convolutions plus a residual: receptive radius ``convs``."""
    keras.utils.set_random_seed(1)
    x = keras.Input((None, None, 3))
    h = x
    for _ in range(convs - 1):
        h = layers.Conv2D(8, 3, padding="same", activation="tanh")(h)
    h = layers.Conv2D(3, 3, padding="same")(h)
    return keras.Model(x, layers.Add()([x, h]))


def _multiple_of_8_net() -> keras.Model:
    """Three stride-2 convolutions and three upsamplings with a skip: needs H, W % 8 == 0."""
    keras.utils.set_random_seed(2)
    x = keras.Input((None, None, 3))
    h = x
    for _ in range(3):
        h = layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(h)
    for _ in range(3):
        h = layers.UpSampling2D()(h)
    h = layers.Conv2D(3, 3, padding="same")(h)
    return keras.Model(x, {"derained": layers.Add()([x, h])})


# ------------------------------------------------------------------------------- tiles and windows


@pytest.mark.parametrize(
    "length, tile, overlap, multiple", [(300, 96, 48, 1), (200, 96, 48, 8), (4000, 512, 128, 8)]
)
def test_tiles_cover_the_image_with_enough_overlap_on_the_multiple_grid(
    length, tile, overlap, multiple
):
    starts = tile_starts(length, tile, overlap, multiple)
    assert starts[0] == 0 and starts[-1] == length - tile
    assert all(s % multiple == 0 for s in starts)
    assert all(tile - (b - a) >= overlap for a, b in zip(starts, starts[1:], strict=False))


def test_tile_too_small_for_the_overlap_is_an_error():
    with pytest.raises(ValueError, match="too small"):
        tile_starts(300, 64, 64)


def test_blend_window_is_zero_at_inner_edges_and_full_at_the_image_border():
    halo = 16
    window = blend_window(96, halo, ramp_start=True, ramp_end=False)
    assert np.all(window[: halo // 2] == 0)
    assert np.all(window[halo // 2 + halo :] == 1)
    assert np.all(np.diff(window) >= 0)
    # Ramps of neighbours overlapping by exactly 2 × halo add up to one.
    rising = blend_window(2 * halo, halo, True, False)
    np.testing.assert_allclose(rising + rising[::-1], 1.0, atol=1e-6)


# ------------------------------------------------------------------------------------ derain_array


def test_tiled_result_matches_the_whole_image_run(prn_r):
    image = _rainy(200, 300)
    whole = derain_array(prn_r, image, halo=24)
    assert len(tile_starts(200, 96, 48)) > 1 and len(tile_starts(300, 96, 48)) > 1
    tiled = derain_array(prn_r, image, halo=24, tile=96, max_pixels=96 * 96, batch_size=3)
    assert tiled.shape == whole.shape == (200, 300, 3)
    assert np.mean((whole > 0) & (whole < 1)) > 0.9  # compare real values, not clipped ones
    assert np.abs(tiled - whole).max() < 1 / 255


def test_tiling_is_exact_when_the_halo_covers_twice_the_receptive_radius():
    model = _conv_net(convs=4)
    image = _rainy(90, 130, seed=3)
    whole = derain_array(model, image, halo=8)
    tiled = derain_array(model, image, halo=8, tile=40, max_pixels=1)
    np.testing.assert_allclose(tiled, whole, atol=2e-6)


def test_pads_to_the_model_multiple_and_crops_back():
    model = _multiple_of_8_net()
    image = _rainy(45, 61)
    with pytest.raises(Exception):  # noqa: B017 - the bare model cannot run this size
        model(image[None])
    out = derain_array(model, image, multiple=8, halo=4)
    assert out.shape == (45, 61, 3)
    # Inside the image, padding changes nothing far from the padded border.
    padded = np.pad(image, ((0, 3), (0, 3), (0, 0)), mode="reflect")
    direct = np.clip(model(padded[None])["derained"].numpy()[0], 0, 1)
    np.testing.assert_allclose(out, direct[:45, :61], atol=1e-6)
    # Tiny images and tiles on the multiple grid also work.
    assert derain_array(model, _rainy(1, 3), multiple=8).shape == (1, 3, 3)
    tiled = derain_array(model, image, multiple=8, halo=4, tile=20, max_pixels=1)
    assert tiled.shape == (45, 61, 3)


def test_output_is_clipped_to_the_unit_range():
    x = keras.Input((None, None, 3))
    model = keras.Model(x, {"derained": layers.Rescaling(4.0, offset=-1.0)(x)})
    out = derain_array(model, _rainy(20, 30))
    assert out.dtype == np.float32 and out.min() == 0.0 and out.max() == 1.0


def test_bad_arguments_are_value_errors(prn_r):
    with pytest.raises(ValueError, match="RGB"):
        derain_array(prn_r, np.zeros((4, 4)))
    with pytest.raises(ValueError, match="batch_size"):
        derain_array(prn_r, np.zeros((4, 4, 3)), batch_size=0)


# ---------------------------------------------------------------------------------------- Derainer


def test_derainer_uses_the_registry_spec_and_keeps_alpha_and_bit_depth(prn_r):
    derainer = Derainer(prn_r)
    assert (derainer.multiple, derainer.halo) == (1, models.spec("prn_r").halo)
    alpha = np.linspace(0, 1, 12 * 16, dtype=np.float32).reshape(12, 16)
    result = derainer.derain_image(io.Image(_rainy(12, 16), alpha=alpha, bit_depth=16))
    assert result.rgb.shape == (12, 16, 3) and result.bit_depth == 16
    np.testing.assert_array_equal(result.alpha, alpha)


@pytest.mark.parametrize(
    "shape, dtype", [((10, 12), np.uint8), ((10, 12, 4), np.uint16), ((10, 12, 3), np.float64)]
)
def test_derain_numpy_returns_the_input_shape_and_dtype(prn_r, shape, dtype):
    rng = np.random.default_rng(0)
    if np.issubdtype(dtype, np.integer):
        image = rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    else:
        image = rng.random(shape).astype(dtype)
    out = inference.derain_numpy(prn_r, image)
    assert out.shape == image.shape and out.dtype == image.dtype
    if shape[-1] == 4:
        np.testing.assert_array_equal(out[:, :, 3], image[:, :, 3])


# ------------------------------------------------------------------------------------ derain_files


@pytest.fixture(scope="module")
def derainer():
    return Derainer(_conv_net(convs=2), halo=4)


def _write_png(path, seed=0):
    io.write_image(path, _rainy(16, 20, seed))
    return path


def test_good_files_are_written_and_bad_ones_reported(tmp_path, derainer):
    src = tmp_path / "in"
    src.mkdir()
    _write_png(src / "a.png")
    _write_png(src / "c.png", seed=1)
    (src / "b.png").write_bytes(b"not an image")
    (src / "d.png").write_bytes((src / "a.png").read_bytes()[:-20])

    missing = str(tmp_path / "missing.jpg")
    report = derain_files([str(src), missing], str(tmp_path / "out"), derainer)

    assert report.written == [tmp_path / "out" / "a.png", tmp_path / "out" / "c.png"]
    assert all(io.read_image(p).rgb.shape == (16, 20, 3) for p in report.written)
    failed = dict(report.failed)
    assert set(failed) == {missing, str(src / "b.png"), str(src / "d.png")}
    assert failed[str(src / "b.png")] == "not an image or unsupported format"
    assert failed[str(src / "d.png")] == "truncated or corrupt image data"
    assert all("\n" not in cause for cause in failed.values())
    assert not report.ok
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c.png"]


def test_never_overwrites_an_input(tmp_path, derainer):
    path = _write_png(tmp_path / "rain.png")
    before = path.read_bytes()
    for output in (str(tmp_path), str(path)):
        report = derain_files([str(path)], output, derainer, overwrite=True)
        assert report.written == []
        assert "would overwrite the input" in report.failed[0][1]
    assert path.read_bytes() == before


def test_existing_outputs_need_overwrite(tmp_path, derainer):
    path = _write_png(tmp_path / "rain.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "rain.png").write_bytes(b"old")
    report = derain_files([str(path)], str(out), derainer)
    assert report.written == [] and "exists (use --overwrite)" in report.failed[0][1]
    assert (out / "rain.png").read_bytes() == b"old"
    report = derain_files([str(path)], str(out), derainer, overwrite=True)
    assert report.ok and report.written == [out / "rain.png"]
    assert io.read_image(out / "rain.png").rgb.shape == (16, 20, 3)


def test_single_input_to_a_file_path_suffixes_and_name_clashes(tmp_path, derainer):
    a = _write_png(tmp_path / "rain.png")
    report = derain_files([str(a)], str(tmp_path / "res" / "clean.jpg"), derainer)
    assert report.written == [tmp_path / "res" / "clean.jpg"]

    report = derain_files([str(a)], str(tmp_path / "res2") + "/", derainer, suffix="_derained")
    assert report.written == [tmp_path / "res2" / "rain_derained.png"]

    (tmp_path / "other").mkdir()
    b = _write_png(tmp_path / "other" / "rain.png")
    report = derain_files([str(a), str(b)], str(tmp_path / "both"), derainer)
    assert report.written == [tmp_path / "both" / "rain.png"]
    clash = tmp_path / "both" / "rain.png"
    assert report.failed == [(str(b), f"{clash} is also the output of {a}")]

    with pytest.raises(ValueError, match="unsupported output extension"):
        derain_files([str(a)], str(tmp_path / "clean.xyz"), derainer)
