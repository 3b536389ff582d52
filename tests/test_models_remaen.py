"""ReMAEN: paper-config parameter count, parity with the official TensorFlow 1 code, quirks."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_matches

from tfderain import models
from tfderain._keras import keras, tf
from tfderain.convert import ConversionError, convert_state_dict
from tfderain.convert.mapping import apply_state_dict, layers_with_weights
from tfderain.models.remaen import (
    ReMAENBatchToSpace,
    ReMAENSpaceToBatch,
    load_official_checkpoint,
    state_dict_from_tf,
)

#: Official parameter count of the paper config (channel_dim=32, 3 stages).
PAPER_PARAMS = 495_771


def _table(stages: int) -> dict[str, str]:
    return dict(models.spec("remaen").key_table(stages=stages))


def tf_variables(model: keras.Model) -> dict[str, np.ndarray]:
    """The official TF variables a model corresponds to (Keras and TF share the layouts)."""
    table = _table(dict(models.identity(model).config)["stages"])
    variables = {}
    for layer_name, scope in table.items():
        kernel, bias = model.get_layer(layer_name).get_weights()
        variables[f"{scope}/weights"] = kernel
        variables[f"{scope}/biases"] = bias
    return variables


@pytest.fixture(scope="module")
def small():
    """A small randomly initialised ReMAEN and its weights as official TF variables."""
    model = models.build("remaen", stages=2, channels=8)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.1, w.shape).astype(np.float32) for w in model.weights])
    return model, tf_variables(model)


@pytest.mark.slow
def test_paper_config_has_official_parameter_count():
    model = models.build("remaen")
    assert model.count_params() == PAPER_PARAMS
    # 69 convolution/FC layers, each one official weights/biases pair: sharing across stages,
    # dilation rates and GRUs (SE blocks) leaves no per-use copies.
    assert len(layers_with_weights(model)) == 69


@pytest.mark.slow
def test_remaen_matches_official_outputs(golden):
    manifest, io, folder = golden("remaen")
    assert manifest["param_count_paper_config"] == PAPER_PARAMS
    model = convert_state_dict("remaen", load_official_checkpoint(folder / "weights.npz"))
    assert model.count_params() == manifest["param_count_this_config"]
    # The official network reads BGR (cv2.imread); the converted model reads and writes RGB.
    out = model(np.ascontiguousarray(io["input"][..., ::-1]), training=False)
    assert_matches(out["derained"].numpy()[..., ::-1], io["output"])
    assert_matches(out["rain"].numpy()[..., ::-1], io["residual"])
    assert out["stages"].shape == (1, 3, 64, 96, 3)
    np.testing.assert_array_equal(out["stages"][:, -1], out["derained"])

    # Keeping the official BGR order reproduces the golden without any channel swap.
    bgr = load_official_checkpoint(folder / "weights.npz", bgr_to_rgb=False)
    apply_state_dict(model, bgr, _table(stages=3))
    out = model(io["input"], training=False)
    assert_matches(out["derained"].numpy(), io["output"])
    assert_matches(out["rain"].numpy(), io["residual"])


@pytest.mark.slow
def test_official_variables_round_trip_through_the_key_table(small):
    model, variables = small
    assert models.spec("remaen").infer_config(state_dict_from_tf(variables)) == {"channels": 8}
    x = np.random.default_rng(1).random((1, 19, 26, 3), dtype=np.float32)
    want = model(x)
    trained = model.get_weights()
    try:
        model.set_weights([np.zeros_like(w) for w in trained])
        apply_state_dict(model, state_dict_from_tf(variables, bgr_to_rgb=False), _table(stages=2))
        got = model(x)
        for key in ("derained", "rain", "stages"):
            np.testing.assert_array_equal(got[key], want[key])
        # Converting to RGB is exactly a channel permutation of the input and the outputs.
        apply_state_dict(model, state_dict_from_tf(variables), _table(stages=2))
        got = model(np.ascontiguousarray(x[..., ::-1]))
        for key in ("derained", "rain", "stages"):
            np.testing.assert_allclose(got[key].numpy()[..., ::-1], want[key], atol=1e-6, rtol=0)
    finally:
        model.set_weights(trained)


@pytest.mark.slow
def test_tf_checkpoint_reader_skips_optimizer_slots(small, tmp_path):
    _, variables = small
    extra = {"global_step": np.array(7, np.int64), "beta1_power": np.array(0.9, np.float32)}
    extra.update({f"{k}/Adam": np.zeros_like(v) for k, v in variables.items()})
    names = sorted({**variables, **extra})
    tensors = [{**variables, **extra}[n] for n in names]
    prefix = str(tmp_path / "ReMAEN")
    tf.raw_ops.SaveV2(
        prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names), tensors=tensors
    )
    state = load_official_checkpoint(prefix)
    expected = state_dict_from_tf(variables)
    assert sorted(state) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(state[key], value)


@pytest.mark.slow
def test_missing_key_is_reported(small):
    model, variables = small
    state = state_dict_from_tf(variables)
    key = "derainNet/ReMAEN/responding_path/SEBlock/fully_connected_1.bias"
    del state[key]
    with pytest.raises(ConversionError, match=f"1 problem.*missing key '{key}'"):
        apply_state_dict(model, state, _table(stages=2))
    # One stage has no GRU hidden-state convolutions: a recurrent checkpoint does not fit it.
    with pytest.raises(ConversionError, match="unexpected key .*conv_hz.weight"):
        convert_state_dict("remaen", state_dict_from_tf(variables), stages=1)


@pytest.mark.parametrize("rate", [2, 3])
def test_shared_kernel_dilation_equals_atrous_convolution(rate):
    """space-to-batch → rate-1 conv → batch-to-space == 'same' conv dilated by ``rate``."""
    rng = np.random.default_rng(rate)
    x = rng.random((2, 13, 17, 4), dtype=np.float32)
    conv = keras.layers.Conv2D(5, 3, padding="same")
    inp = keras.Input((None, None, 4))
    y = ReMAENBatchToSpace(rate)([conv(ReMAENSpaceToBatch(rate)(inp)), inp])
    got = keras.Model(inp, y)(x).numpy()
    kernel, bias = conv.get_weights()
    want = tf.nn.conv2d(x, kernel, 1, "SAME", dilations=rate).numpy() + bias
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    layer = ReMAENSpaceToBatch(rate, name="s2b")
    assert ReMAENSpaceToBatch.from_config(layer.get_config()).rate == rate


@pytest.mark.slow
def test_dynamic_spatial_size(small):
    model, _ = small
    shape = (2, 17, 23, 3)  # odd sizes: not multiples of the dilation rates 2 and 3
    out = model(np.zeros(shape, np.float32))
    assert out["derained"].shape == shape
    assert out["rain"].shape == shape
    assert out["stages"].shape == (shape[0], 2, *shape[1:])


def test_invalid_config_is_a_clear_error():
    with pytest.raises(ValueError, match="channels >= 4"):
        models.build("remaen", channels=2)
    with pytest.raises(ValueError, match="stages >= 1"):
        models.build("remaen", stages=0)
