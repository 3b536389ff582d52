"""PCNet: paper-config parameter count, parity with the official PyTorch code, its shared PReLU."""

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
from tfderain.convert import convert_state_dict, load_state_dict

PAPER_PARAMS = 627_462
_CRB_KEY = re.compile(r"model\.crm\.body\.(\d+)\.")


def _one_crb_state_dict(folder):
    """The golden checkpoint cut down to its first CRB (a valid ``num_crb=1`` PCNet)."""
    sd = load_state_dict(folder / "weights.pth")
    return {k: v for k, v in sd.items() if not (m := _CRB_KEY.match(k)) or m.group(1) == "0"}


@pytest.mark.slow
def test_paper_config_has_official_parameter_count():
    # The network-wide PReLU is one Keras layer, so it is counted once, like parameters().
    assert models.build("pcnet").count_params() == PAPER_PARAMS


@pytest.mark.slow
def test_matches_official_outputs(golden):
    io, out = paper_config_outputs(golden, "pcnet", PAPER_PARAMS)
    # Outputs are small (|x| <= 0.04) in this fixture, hence the tight tolerance.
    assert_matches(out["derained"], io["output"], atol=1e-5)
    assert_matches(out["rain"], io["rain_image"], atol=1e-5)


@pytest.mark.slow
def test_one_prelu_is_shared_network_wide():
    num_crb, num_rcab = 2, 2
    model = models.build("pcnet", n_feat=8, num_crb=num_crb, num_rcab=num_rcab)
    prelus = [layer for layer in model.layers if type(layer).__name__ == "PReLU"]
    # One shared `act` plus the own PReLU of every attention gate (CA per block, CA_B, CA_R, RRB).
    assert len(prelus) == 1 + num_crb * (num_rcab + 2) + 1
    act = model.get_layer("act")
    # UP_B, UP_R and, per CRB, act1, lfsfb.act2 and the middle activation of each block.
    assert len(act.inbound_nodes) == 2 + num_crb * (2 + num_rcab)
    assert [w.shape for w in act.weights] == [(1, 1, 1)]


def test_truncated_checkpoint_config_is_inferred_and_converts(golden):
    _, _, folder = golden("pcnet")
    state = _one_crb_state_dict(folder)
    model = convert_state_dict("pcnet", state)
    assert dict(models.identity(model).config)["num_crb"] == 1
    assert dict(models.identity(model).config)["num_rcab"] == 3
    # The shared `act`: official PCNet hands one PReLU to each CRB's act1 (and every RCAB body).
    slope = state["model.crm.body.0.act1.weight"].item()
    assert model.get_layer("act").get_weights()[0].item() == pytest.approx(slope)


def test_missing_or_inconsistent_keys_are_reported(golden):
    _, _, folder = golden("pcnet")
    sd = _one_crb_state_dict(folder)
    convert = partial(convert_state_dict, "pcnet")
    assert_missing_key_reported(convert, sd, "model.crm.body.0.CA_R.conv_du.2.weight")
    assert_mismatch_reported(convert, sd, "model.crm.body.0.act1.weight")


@pytest.mark.slow
def test_dynamic_spatial_size_multiple_of_four():
    assert models.spec("pcnet").multiple == 4
    model = models.build("pcnet", **models.spec("pcnet").tiny.config)
    for shape in [(1, 64, 96, 3), (2, 36, 20, 3)]:
        out = model(np.zeros(shape, np.float32))
        assert out["derained"].shape == shape
        assert out["rain"].shape == shape


def test_invalid_config_is_a_clear_error():
    with pytest.raises(ValueError, match="odd"):
        models.build("pcnet", kernel_size=4)
    with pytest.raises(ValueError, match="reduction"):
        models.build("pcnet", n_feat=2, reduction=4)
    with pytest.raises(ValueError, match="unknown config key"):
        models.build("pcnet", in_c=3)
