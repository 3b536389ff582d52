"""DTPNet: paper-config parameter count, parity with the official PyTorch code, its quirks."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import (
    assert_matches,
    assert_missing_key_reported,
    assert_transformer_unet_config_errors,
)

from tfderain import models
from tfderain.convert import (
    apply_state_dict,
    config_from_state_dict,
    convert_state_dict,
    load_state_dict,
)
from tfderain.models.blocks import BiasFreeLayerNorm, PixelShuffle, PixelUnshuffle

PAPER_PARAMS = 45_246_322
#: The golden's constructor kwargs that the builder takes (``use_GPU`` only moves tensors).
BUILDER_KWARGS = ("recurrent_iter", "dim", "num_blocks", "num_refinement_blocks", "heads")
SMALL = {"dim": 8, "num_blocks": (1, 2, 1, 3), "num_refinement_blocks": 1, "heads": (1, 2, 2, 4)}


def _torch_pixel_shuffle(x: np.ndarray, r: int) -> np.ndarray:
    """NHWC reference of torch ``pixel_shuffle``: out[c, h·r+i, w·r+j] = in[c·r²+i·r+j, h, w]."""
    n, h, w, cr2 = x.shape
    c = cr2 // (r * r)
    x = x.reshape(n, h, w, c, r, r).transpose(0, 1, 4, 2, 5, 3)
    return x.reshape(n, h * r, w * r, c)


@pytest.mark.slow
def test_paper_config_has_official_parameter_count():
    # Every Keras weight is a torch parameter (no BatchNorm statistics in this network).
    assert models.build("dtpnet").count_params() == PAPER_PARAMS


@pytest.fixture(scope="module")
def golden_model(golden):
    """The golden checkpoint converted with the golden's builder kwargs, and its state dict."""
    manifest, io, folder = golden("dtpnet")
    state_dict = load_state_dict(folder / "weights.pth")
    kwargs = {k: manifest["constructor_kwargs"][k] for k in BUILDER_KWARGS}
    return convert_state_dict("dtpnet", state_dict, **kwargs), state_dict


@pytest.fixture(scope="module")
def small_model():
    """A small BiasFree model whose encoder levels all differ in block count from level 2."""
    return models.build("dtpnet", recurrent_iter=2, layer_norm_type="BiasFree", **SMALL)


@pytest.mark.slow
def test_matches_official_outputs_final_and_coarse_prediction(golden, golden_model):
    manifest, io, _ = golden("dtpnet")
    model, state_dict = golden_model
    # The reduced golden config is also recovered from the checkpoint alone.
    inferred = config_from_state_dict("dtpnet", state_dict)
    expected = {k: manifest["constructor_kwargs"][k] for k in BUILDER_KWARGS[1:]}
    assert {k: inferred[k] for k in expected} == expected
    assert model.count_params() == manifest["param_count_this_config"]
    out = model(io["input"], training=False)
    assert_matches(out["derained"].numpy(), io["output"])
    stages = out["stages"].numpy()
    iterations = manifest["constructor_kwargs"]["recurrent_iter"]
    assert stages.shape == (1, 1 + iterations, *io["input"].shape[1:])
    assert_matches(stages[:, 0], io["pred1"])
    np.testing.assert_array_equal(stages[:, -1], out["derained"].numpy())


@pytest.mark.slow
def test_missing_key_is_reported(golden_model):
    model, state_dict = golden_model
    table = models.spec("dtpnet").key_table(**dict(models.identity(model).config))
    # The second block of a decoder level exists because every decoder level has num_blocks[1].
    assert_missing_key_reported(
        lambda sd: apply_state_dict(model, sd, table), state_dict, "conv3_2_HSI.1.attn.temperature"
    )


@pytest.mark.slow
def test_decoder_levels_have_num_blocks_1_and_resamplers_are_shared(small_model):
    names = {layer.name for layer in small_model.layers}
    for stack in ("conv4_3_HSI", "conv3_2_HSI", "conv2_1_HSI"):
        assert {f"{stack}_1_attn", f"{stack}_0_attn"} <= names
        assert f"{stack}_2_attn" not in names
    assert "conv4_L_2_attn" in names and "conv1_2_1_attn" not in names
    # Each upsampler lifts the decoder path and, for the coupling, the encoder's level input.
    for up in ("up4_3", "up3_2", "up2_1"):
        assert len(small_model.get_layer(f"{up}_body_0").inbound_nodes) == 2
    assert len(small_model.get_layer("patch_embed_transform2").inbound_nodes) == 2
    # Layer 3 shares its weights across the recurrent iterations.
    assert len(small_model.get_layer("conv0_0").inbound_nodes) == 2
    assert len(small_model.get_layer("conv_i").inbound_nodes) == 2


def test_pixel_shuffle_layers_follow_torch_channel_order():
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 12)).astype(np.float32)
    shuffled = PixelShuffle(2)(x).numpy()
    np.testing.assert_array_equal(shuffled, _torch_pixel_shuffle(x, 2))
    np.testing.assert_array_equal(PixelUnshuffle(2)(shuffled).numpy(), x)


@pytest.mark.slow
def test_bias_free_layer_norm_variant(small_model):
    x = np.random.default_rng(1).standard_normal((1, 4, 4, 6)).astype(np.float32) + 3.0
    norm = BiasFreeLayerNorm()
    norm.build(x.shape)
    weight = np.linspace(0.5, 1.5, 6).astype(np.float32)
    norm.set_weights([weight])
    expected = x / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * weight  # scaled, not centred
    np.testing.assert_allclose(norm(x).numpy(), expected, rtol=1e-5, atol=1e-5)
    table = models.spec("dtpnet").key_table(**dict(models.identity(small_model).config))
    layer = small_model.get_layer("outc_0_norm2_body")
    assert isinstance(layer, BiasFreeLayerNorm)
    assert table["outc_0_norm2_body"] == "outc.0.norm2.body"
    assert [w.shape for w in layer.weights] == [(8,)]  # a scale, no shift


def test_bias_free_checkpoint_is_recognised(golden):
    _, _, folder = golden("dtpnet")
    state_dict = load_state_dict(folder / "weights.pth")
    bias_free = {k: v for k, v in state_dict.items() if not k.endswith(".body.bias")}
    assert config_from_state_dict("dtpnet", bias_free)["layer_norm_type"] == "BiasFree"
    assert config_from_state_dict("dtpnet", state_dict)["layer_norm_type"] == "WithBias"


@pytest.mark.slow
def test_dynamic_spatial_size_multiple_of_eight(small_model):
    assert models.spec("dtpnet").multiple == 8
    for shape in [(1, 64, 96, 3), (2, 16, 24, 3)]:
        out = small_model(np.random.default_rng(2).random(shape, dtype=np.float32))
        assert out["derained"].shape == shape
        assert out["stages"].shape == (shape[0], 3, *shape[1:])


def test_invalid_config_is_a_clear_error():
    assert_transformer_unet_config_errors("dtpnet", norm_arg="layer_norm_type")
    with pytest.raises(ValueError, match="recurrent_iter must be positive"):
        models.build("dtpnet", dim=8, recurrent_iter=0)
