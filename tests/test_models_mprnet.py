"""MPRNet: paper-config parameter count, parity with the official PyTorch code, its quirks."""

from __future__ import annotations

import re
from functools import partial

import numpy as np
import pytest
from conftest import (
    assert_matches,
    assert_mismatch_reported,
    assert_missing_key_reported,
    paper_config_outputs,
)

from tfderain import models
from tfderain.convert import apply_state_dict, convert_state_dict, load_state_dict
from tfderain.models.mprnet import MPRNetHalves
from tfderain.pth import unwrap_state_dict

PAPER_PARAMS = 3_637_249
SMALL = {"n_feat": 8, "scale_unetfeats": 4, "scale_orsnetfeats": 4, "num_cab": 1}
_ORB_BLOCK = re.compile(r"stage3_orsnet\.orb\d\.body\.(\d+)\.")


@pytest.fixture(scope="module")
def small_model():
    return models.build("mprnet", **SMALL)


@pytest.fixture(scope="module")
def one_cab(golden):
    """The golden checkpoint cut down to one CAB per ORB (a valid ``num_cab=1`` MPRNet), and the
    model converted from it after wrapping it the way published checkpoints are saved."""
    _, _, folder = golden("mprnet")
    cut = {}
    for key, value in load_state_dict(folder / "weights.pth").items():
        block = _ORB_BLOCK.match(key)
        if block and block.group(1) == "8":  # the ORB's final conv follows its CABs
            key = key.replace(".body.8.", ".body.1.")
        elif block and block.group(1) != "0":
            continue
        cut[key] = value
    published = {
        "epoch": 250,
        "state_dict": {f"module.{key}": value for key, value in cut.items()},
        "optimizer": {"state": {0: {"exp_avg": np.zeros(3, np.float32)}}, "param_groups": []},
    }
    unwrapped = unwrap_state_dict(published)
    assert unwrapped.keys() == cut.keys()
    return cut, convert_state_dict("mprnet", unwrapped)


@pytest.mark.slow
def test_paper_config_has_official_parameter_count():
    model = models.build("mprnet")
    # The network-wide PReLU is one Keras layer, so it is counted once, like parameters().
    assert model.count_params() == PAPER_PARAMS


@pytest.mark.slow
def test_matches_official_outputs(golden):
    io, out = paper_config_outputs(golden, "mprnet", PAPER_PARAMS)
    stages = out["stages"]
    assert stages.shape == (1, 3, *io["input"].shape[1:])
    assert_matches(out["derained"], io["output"])
    # stages are in stage order; the official forward returns [stage3, stage2, stage1].
    for i, name in enumerate(["stage1", "stage2", "output"]):
        assert_matches(stages[:, i], io[name], err_msg=name)


@pytest.mark.slow
def test_published_checkpoint_layout_converts(one_cab):
    """Published checkpoints: `{"state_dict": ...}` holding `module.`-prefixed keys."""
    sd, model = one_cab
    assert dict(models.identity(model).config)["num_cab"] == 1
    # The network-wide PReLU: official MPRNet passes one `act` to every CAB (body = conv, act,
    # conv), so the checkpoint stores its slope once per use; any copy is the value.
    slope = sd["shallow_feat1.1.body.1.weight"].item()
    assert model.get_layer("act").get_weights()[0].item() == pytest.approx(slope)
    np.testing.assert_array_equal(
        model.get_layer("stage3_orsnet_orb2_body_1").get_weights()[0],
        sd["stage3_orsnet.orb2.body.1.weight"].transpose(2, 3, 1, 0),
    )


@pytest.mark.slow
def test_missing_or_inconsistent_keys_are_reported(one_cab):
    sd, model = one_cab
    spec, config = models.spec("mprnet"), dict(models.identity(model).config)
    table, ignore = spec.key_table(**config), spec.ignored_keys(**config)
    assert_missing_key_reported(
        lambda missing: apply_state_dict(model, missing, table, ignore=ignore),
        sd,
        "stage2_encoder.csff_dec2.weight",
    )
    convert = partial(convert_state_dict, "mprnet")
    assert_mismatch_reported(convert, sd, "stage3_orsnet.orb3.body.0.body.1.weight")


@pytest.mark.slow
def test_one_prelu_is_shared_network_wide_and_patches_share_weights(small_model):
    prelus = [layer for layer in small_model.layers if type(layer).__name__ == "PReLU"]
    assert [p.name for p in prelus] == ["act"]
    assert [w.shape for w in prelus[0].weights] == [(1, 1, 1)]
    # Every CAB call: stage 1 runs 1 + 6 CABs on 4 quarters and 8 on 2 halves, stage 2 runs
    # 1 + 6 on 2 halves and 8 once, stage 3 runs 1 + 3 ORBs of num_cab.
    assert len(prelus[0].inbound_nodes) == 4 * 7 + 2 * 8 + 2 * 7 + 8 + 1 + 3 * SMALL["num_cab"]
    assert len(small_model.get_layer("stage1_encoder_encoder_level1_0_body_0").inbound_nodes) == 4
    assert len(small_model.get_layer("stage1_decoder_decoder_level1_0_body_0").inbound_nodes) == 2
    assert len(small_model.get_layer("stage2_encoder_csff_enc3").inbound_nodes) == 2
    # One Keras layer per official module: the key table covers every weighted layer once.
    table = models.spec("mprnet").key_table(**dict(models.identity(small_model).config))
    weighted = [layer.name for layer in small_model.layers if layer.weights]
    assert sorted(weighted) == sorted(table)


@pytest.mark.slow
def test_stage1_restores_top_and_bottom_halves_separately(small_model):
    """Stage 1 never looks across the middle row; stage 2 decodes the whole image at once."""
    rng = np.random.default_rng(0)
    x = rng.random((1, 32, 48, 3), dtype=np.float32)
    y = x.copy()
    y[:, 16:] = rng.random((1, 16, 48, 3), dtype=np.float32)
    a, b = small_model(x)["stages"].numpy(), small_model(y)["stages"].numpy()
    np.testing.assert_allclose(a[:, 0, :16], b[:, 0, :16], rtol=0, atol=1e-6)
    assert np.abs(a[:, 1, :16] - b[:, 1, :16]).max() > 1e-4


@pytest.mark.slow
def test_dynamic_spatial_size_multiple_of_eight(small_model):
    assert models.spec("mprnet").multiple == 8
    for shape in [(1, 64, 96, 3), (2, 40, 24, 3)]:
        out = small_model(np.zeros(shape, np.float32))
        assert out["derained"].shape == shape
        assert out["stages"].shape == (shape[0], 3, *shape[1:])
    # 44 = 4 (mod 8): a 22-row half loses a row in the U-Net's second downsampling.
    with pytest.raises(Exception, match="Incompatible shapes"):
        small_model(np.zeros((1, 44, 24, 3), np.float32))


def test_halves_split_like_torch_int_division():
    layer = MPRNetHalves.from_config(MPRNetHalves(axis=2, name="split").get_config())
    top, bottom = layer(np.zeros((1, 3, 5, 1), np.float32))
    assert top.shape == (1, 3, 2, 1) and bottom.shape == (1, 3, 3, 1)


def test_invalid_config_is_a_clear_error():
    with pytest.raises(ValueError, match="odd"):
        models.build("mprnet", kernel_size=4)
    with pytest.raises(ValueError, match="reduction"):
        models.build("mprnet", n_feat=2, reduction=4)
    with pytest.raises(ValueError, match="non-negative"):
        models.build("mprnet", num_cab=-1)
    with pytest.raises(ValueError, match="unknown config key"):
        models.build("mprnet", in_c=3)
