"""SPAIR (implemented from the paper): size, shapes, mask guidance, saving and training.

There is no official checkpoint, so there is no parity test; the parameter count is checked
against an independent count from the convolution formulas of the declared architecture.
"""

from __future__ import annotations

import numpy as np
import pytest

from tfderain import models, saving
from tfderain._keras import keras, tf
from tfderain.models.spair import SPAIRSpatialFeatureModulator

SMALL = {"width": 8, "blocks": 1, "loc_width": 4, "loc_blocks": 1}
GUIDED_LEVELS = (1, 2, 3)


# ------------------------------------------------------------------- independent param count


def _conv(k: int, cin: int, cout: int) -> int:
    return k * k * cin * cout + cout


def _up(cin: int, cout: int) -> int:  # 2×2 stride-2 transposed convolution
    return 4 * cin * cout + cout


def _rb(w: int) -> int:
    return 2 * _conv(3, w, w)


def _unet_body(w: int, b: int) -> int:
    """Embedding, encoder (3 levels, 2 downsamplings), 2 upsamplings: what both U-Nets share."""
    n = _conv(3, 3, w)
    n += b * (_rb(w) + _rb(2 * w) + _rb(4 * w))
    n += _conv(3, w, 2 * w) + _conv(3, 2 * w, 4 * w)
    n += _up(4 * w, 2 * w) + _up(2 * w, w)
    return n


def _netl(lw: int, lb: int) -> int:
    decoder = lb * (_rb(2 * lw) + _rb(lw))
    return _unet_body(lw, lb) + decoder + _conv(3, lw, 1)


def _dgb(c: int, g: int) -> int:
    fuse = _conv(1, c + g, c)
    dense = _rb(c)
    sparse = 2 * _conv(3, c, c)
    attention = _conv(1, c, 1) + _conv(1, c, c // 4) + _conv(1, c // 4, c)
    return fuse + dense + sparse + attention


def _netr(w: int, b: int, lw: int) -> int:
    decoder = sum(_dgb(w * 2**i, lw * 2**i) + b * _rb(w * 2**i) for i in range(3))
    return _unet_body(w, b) + decoder + _conv(3, w, 3)


@pytest.mark.slow
def test_default_config_parameter_count_matches_hand_count():
    model = models.build("spair")
    assert _netl(16, 1) == 154_145 and _netr(32, 2, 16) == 2_504_030  # as in the docstring
    assert model.count_params() == _netl(16, 1) + _netr(32, 2, 16) == 2_658_175
    assert not model.non_trainable_weights
    netl = sum(int(np.prod(w.shape)) for w in model.weights if w.name.startswith("netl_"))
    assert netl == _netl(16, 1)


@pytest.mark.slow
def test_reduced_config_parameter_count_matches_hand_count():
    model = models.build("spair", **SMALL)
    assert model.count_params() == _netl(4, 1) + _netr(8, 1, 4)


# ------------------------------------------------------------------------------ forward pass


@pytest.fixture(scope="module")
def small():
    return models.build("spair", **SMALL)


@pytest.mark.slow
def test_dynamic_size_forward_shapes_and_ranges(small):
    rng = np.random.default_rng(0)
    for shape in [(1, 32, 48, 3), (2, 20, 12, 3)]:
        x = rng.random(shape, dtype=np.float32)
        out = small(x)
        assert set(out) == {"derained", "rain"}
        assert out["derained"].shape == shape
        assert out["rain"].shape == (*shape[:3], 1)
        mask = out["rain"].numpy()
        assert np.all((mask >= 0) & (mask <= 1))
        assert np.all(np.isfinite(out["derained"].numpy()))
    spec = models.spec("spair")
    assert spec.multiple == 4 and spec.outputs == ("derained", "rain")


def test_has_no_official_checkpoint_key_map():
    assert models.spec("spair").key_map is None
    with pytest.raises(ValueError, match="no official checkpoint"):
        models.spec("spair").key_table()


# -------------------------------------------------------------------------- mask guidance


def _force_mask(model: keras.Model, value: float) -> None:
    """Make NetL's mask head output the constant 0 (value < 0.5) or 1, whatever the image."""
    head = model.get_layer("netl_mask")
    kernel, bias = head.get_weights()
    head.set_weights([np.zeros_like(kernel), np.full_like(bias, 1e3 if value > 0.5 else -1e3)])


def _guided_probe(model: keras.Model) -> keras.Model:
    """Sub-model exposing, per decoder level, the SFM in/out and the SC and DGA gate outputs."""
    outputs = {"derained": model.output["derained"], "rain": model.output["rain"]}
    for level in GUIDED_LEVELS:
        name = f"netr_dgb{level}"
        outputs[f"{level}_fuse"] = model.get_layer(f"{name}_fuse").output
        outputs[f"{level}_sfm"] = model.get_layer(f"{name}_sfm").output
        outputs[f"{level}_sc"] = model.get_layer(f"{name}_sc_gate").output
        outputs[f"{level}_dga"] = model.get_layer(f"{name}_dga_gate").output
    return keras.Model(model.input, outputs)


def _guided_layers(model: keras.Model) -> list[keras.layers.Layer]:
    return [
        layer
        for layer in model.layers
        if layer.weights and ("_sc_" in layer.name or "_dga_" in layer.name)
    ]


@pytest.mark.slow
def test_zero_mask_switches_the_guided_branches_off():
    model = models.build("spair", **SMALL)
    _force_mask(model, 0.0)
    probe = _guided_probe(model)
    x = np.random.default_rng(1).random((1, 16, 24, 3), dtype=np.float32)
    out = {k: v.numpy() for k, v in probe(x).items()}
    assert np.all(out["rain"] == 0)
    for level in GUIDED_LEVELS:
        assert np.all(out[f"{level}_sc"] == 0)
        assert np.all(out[f"{level}_dga"] == 0)
        np.testing.assert_array_equal(out[f"{level}_sfm"], out[f"{level}_fuse"])
    # So the sparse-convolution and attention weights cannot change the result.
    rng = np.random.default_rng(2)
    for layer in _guided_layers(model):
        layer.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in layer.weights])
    np.testing.assert_array_equal(model(x)["derained"].numpy(), out["derained"])


@pytest.mark.slow
def test_full_mask_engages_the_guided_branches():
    model = models.build("spair", **SMALL)
    _force_mask(model, 1.0)
    x = np.random.default_rng(1).random((1, 16, 24, 3), dtype=np.float32)
    before = model(x)["derained"].numpy()
    out = {k: v.numpy() for k, v in _guided_probe(model)(x).items()}
    assert np.all(out["rain"] == 1)
    for level in GUIDED_LEVELS:
        assert np.abs(out[f"{level}_sc"]).max() > 0
    rng = np.random.default_rng(2)
    for layer in _guided_layers(model):
        layer.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in layer.weights])
    assert np.abs(model(x)["derained"].numpy() - before).max() > 1e-3


def test_sfm_gives_degraded_region_the_clean_statistics():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 8, 10, 5)).astype(np.float32)
    x[..., :4, :, :] = 3.0 * x[..., :4, :, :] + 2.0  # degraded rows: other mean and spread
    mask = np.zeros((2, 8, 10, 1), np.float32)
    mask[:, :4] = 1.0
    y = SPAIRSpatialFeatureModulator()([tf.constant(x), tf.constant(mask)]).numpy()
    np.testing.assert_array_equal(y[:, 4:], x[:, 4:])  # clean region untouched
    clean = x[:, 4:].reshape(2, -1, 5)
    degraded = y[:, :4].reshape(2, -1, 5)
    np.testing.assert_allclose(degraded.mean(1), clean.mean(1), atol=1e-4)
    np.testing.assert_allclose(degraded.std(1), clean.std(1), rtol=1e-3)


@pytest.mark.slow
def test_mask_threshold_binarizes_the_guidance_but_not_the_output():
    model = models.build("spair", **SMALL, mask_threshold=0.5)
    head = model.get_layer("netl_mask")
    kernel, bias = head.get_weights()
    head.set_weights([kernel * 50.0, bias])  # a spread of mask values on both sides of 0.5
    probe = keras.Model(
        model.input, [model.output["rain"], model.get_layer("mask_binarize").output]
    )
    x = np.random.default_rng(4).random((1, 16, 16, 3), dtype=np.float32)
    soft, hard = (t.numpy() for t in probe(x))
    np.testing.assert_array_equal(hard, (soft > 0.5).astype(np.float32))
    assert 0 < hard.mean() < 1
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model(x)["derained"])
    grads = tape.gradient(loss, head.trainable_weights)
    assert all(g is not None and np.abs(g.numpy()).max() > 0 for g in grads)


def test_invalid_config_is_a_clear_error():
    with pytest.raises(ValueError, match="positive"):
        models.build("spair", width=0)
    with pytest.raises(ValueError, match="mask_threshold"):
        models.build("spair", mask_threshold=1.5)


# --------------------------------------------------------------------------- save and train


@pytest.mark.slow
def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    model = models.build("spair", **SMALL, mask_threshold=0.4)
    x = np.random.default_rng(5).random((1, 16, 20, 3), dtype=np.float32)
    path = saving.save_model(model, tmp_path / "spair.keras")
    loaded = saving.load_model(path)
    expected, got = model(x), loaded(x)
    for key in ("derained", "rain"):
        np.testing.assert_array_equal(got[key].numpy(), expected[key].numpy())


@pytest.mark.slow
def test_three_fit_steps_lower_the_mse_on_a_fixed_batch():
    keras.utils.set_random_seed(0)
    model = models.build("spair", **SMALL)
    rng = np.random.default_rng(6)
    rainy = rng.random((4, 32, 32, 3), dtype=np.float32)
    clean = np.clip(rainy - 0.2 * rng.random((4, 32, 32, 3), dtype=np.float32), 0, 1)

    def mse() -> float:
        return float(np.mean((model(rainy)["derained"].numpy() - clean) ** 2))

    before = mse()
    # Eager steps: tracing the training graph would cost more than the three steps themselves.
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss={"derained": "mse"}, run_eagerly=True)
    history = model.fit(
        rainy, {"derained": clean}, batch_size=4, epochs=3, verbose=0, shuffle=False
    )
    assert len(history.history["loss"]) == 3
    assert mse() < before
