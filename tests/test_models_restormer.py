"""Restormer: paper-config parameter count, parity with the official PyTorch code, its quirks."""

from __future__ import annotations

import pickle
import pickletools
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    assert_matches,
    assert_missing_key_reported,
    assert_transformer_unet_config_errors,
)

from tfderain import models
from tfderain._keras import keras
from tfderain.convert import (
    apply_state_dict,
    config_from_state_dict,
    convert_state_dict,
    load_state_dict,
)
from tfderain.models.blocks import (
    BiasFreeLayerNorm,
    GatedGELU,
    PixelShuffle,
    PixelUnshuffle,
    TransposedAttention,
)

PAPER_PARAMS = 26_126_644
GOLDENS = ("restormer", "restormer_bf")
#: Official constructor kwarg → builder kwarg (``inp/out_channels`` are fixed at 3).
KWARGS = {
    "dim": "dim",
    "num_blocks": "num_blocks",
    "num_refinement_blocks": "num_refinement_blocks",
    "heads": "heads",
    "ffn_expansion_factor": "ffn_expansion_factor",
    "bias": "bias",
    "LayerNorm_type": "layer_norm",
}
SMALL = {"dim": 8, "num_blocks": (1, 2, 1, 1), "num_refinement_blocks": 2, "heads": (1, 2, 2, 4)}


@pytest.mark.slow
def test_paper_config_has_official_parameter_count():
    # Every Keras weight is a torch parameter (no BatchNorm statistics in this network).
    assert models.build("restormer").count_params() == PAPER_PARAMS


@pytest.fixture(scope="module")
def converted(golden):
    """``name`` → (model converted from the golden checkpoint alone, its state dict)."""
    result = {}
    for name in GOLDENS:
        _, _, folder = golden(name)
        state_dict = load_state_dict(folder / "weights.pth")
        result[name] = convert_state_dict("restormer", state_dict), state_dict
    return result


@pytest.mark.slow
@pytest.mark.parametrize("name", GOLDENS)
def test_matches_official_outputs_for_both_layer_norm_types(name, golden, converted):
    manifest, io, _ = golden(name)
    model, _ = converted[name]
    # The whole constructor config, including the LayerNorm type, comes from the checkpoint.
    official = manifest["constructor_kwargs"]
    expected = {ours: official[theirs] for theirs, ours in KWARGS.items()}
    assert {k: dict(models.identity(model).config)[k] for k in expected} == expected
    assert model.count_params() == manifest["param_count_this_config"]
    assert_matches(model(io["input"], training=False)["derained"].numpy(), io["output"])


def _wrap_as_published(source: Path, target: Path, prefix: str = "module.") -> None:
    """Rewrite a zip ``.pth`` holding a bare state dict as ``{"params": {prefix + key: …}}``.

    The pickle is edited opcode by opcode (no torch needed): every string that is a state-dict
    key gets ``prefix``, and the original object becomes the value of a new one-entry dict.
    """
    keys = set(load_state_dict(source))
    with zipfile.ZipFile(source) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    pkl_name = next(name for name in members if name.endswith("/data.pkl"))
    data = members[pkl_name]
    ops = list(pickletools.genops(data))
    assert ops[0][0].name == "PROTO" and ops[-1][0].name == "STOP"
    body = bytearray()
    for (op, arg, pos), (_, _, end) in zip(ops[1:-1], ops[2:], strict=True):
        if op.name == "BINUNICODE" and arg in keys:
            text = (prefix + arg).encode()
            body += pickle.BINUNICODE + struct.pack("<I", len(text)) + text
        else:
            body += data[pos:end]
    wrapper = pickle.EMPTY_DICT + pickle.BINUNICODE + struct.pack("<I", 6) + b"params"
    members[pkl_name] = data[: ops[1][2]] + wrapper + bytes(body) + pickle.SETITEM + pickle.STOP
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
        for name, payload in members.items():
            archive.writestr(name, payload)


@pytest.mark.slow
def test_published_params_wrapper_and_module_prefix_convert(golden, converted, tmp_path):
    _, _, folder = golden("restormer")
    wrapped = tmp_path / "deraining.pth"
    _wrap_as_published(folder / "weights.pth", wrapped)
    state_dict = load_state_dict(wrapped)
    reference, reference_sd = converted["restormer"]
    assert sorted(state_dict) == sorted(reference_sd)
    model = convert_state_dict("restormer", state_dict)
    for ours, theirs in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.slow
def test_missing_key_is_reported(converted):
    model, state_dict = converted["restormer"]
    table = models.spec("restormer").key_table(**dict(models.identity(model).config))
    assert_missing_key_reported(
        lambda sd: apply_state_dict(model, sd, table),
        state_dict,
        "decoder_level1.0.attn.temperature",
    )


@pytest.fixture(scope="module")
def small_model():
    """A small model with biases whose encoder levels differ in block count."""
    return models.build("restormer", bias=True, **SMALL)


@pytest.mark.slow
def test_decoder_level1_runs_at_twice_dim_without_channel_reduction(small_model):
    names = {layer.name for layer in small_model.layers}
    assert {"reduce_chan_level3", "reduce_chan_level2"} <= names
    assert "reduce_chan_level1" not in names
    # Decoder level l repeats encoder level l's block count (here 1, 2, 1).
    assert {"decoder_level2_1_attn", "decoder_level3_0_attn", "refinement_1_attn"} <= names
    assert "decoder_level3_1_attn" not in names and "decoder_level1_1_attn" not in names
    dim = SMALL["dim"]
    for layer in ("decoder_level1_0_ffn_add", "refinement_1_ffn_add"):
        assert small_model.get_layer(layer).output.shape[-1] == 2 * dim
    assert small_model.get_layer("output").kernel.shape == (3, 3, 2 * dim, 3)
    # `bias` reaches blocks, reductions and output, never the embedding or the resamplers.
    assert small_model.get_layer("output").use_bias
    assert small_model.get_layer("refinement_0_attn_qkv").use_bias
    for layer in ("patch_embed_proj", "down1_2_body_0", "up2_1_body_0"):
        assert not small_model.get_layer(layer).use_bias


@pytest.mark.slow
def test_checkpoint_with_biases_is_recognised_and_dual_pixel_refused(converted):
    _, state_dict = converted["restormer_bf"]
    assert config_from_state_dict("restormer", state_dict)["bias"] is False
    with_bias = {**state_dict, "output.bias": np.zeros(3, np.float32)}
    assert config_from_state_dict("restormer", with_bias)["bias"] is True
    dual_pixel = {**state_dict, "skip_conv.weight": np.zeros((16, 8, 1, 1), np.float32)}
    with pytest.raises(ValueError, match="dual-pixel"):
        config_from_state_dict("restormer", dual_pixel)


@pytest.mark.slow
def test_dynamic_spatial_size_multiple_of_eight(small_model):
    assert models.spec("restormer").multiple == 8
    for shape in [(1, 64, 96, 3), (2, 16, 24, 3)]:
        out = small_model(np.random.default_rng(2).random(shape, dtype=np.float32))
        assert out["derained"].shape == shape


def test_shared_blocks_serialize_under_package_tfderain():
    for layer in (
        BiasFreeLayerNorm(name="ln"),
        TransposedAttention(2, name="mdta"),
        GatedGELU(name="gate"),
        PixelShuffle(2, name="shuffle"),
        PixelUnshuffle(2, name="unshuffle"),
    ):
        config = keras.layers.serialize(layer)
        assert config["registered_name"] == f"tfderain>{type(layer).__name__}"
        restored = keras.layers.deserialize(config)
        assert type(restored) is type(layer)
        assert restored.get_config() == layer.get_config()


def test_invalid_config_is_a_clear_error():
    assert_transformer_unet_config_errors("restormer", norm_arg="layer_norm")
