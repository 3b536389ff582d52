"""PReNet family: paper-config parameter counts and parity with the official PyTorch code."""

from __future__ import annotations

import numpy as np
import pytest

from tfderain import models
from tfderain.convert import convert, convert_state_dict, load_state_dict

VARIANTS = {"prenet": 168_963, "prenet_r": 94_979, "prn": 95_107, "prn_r": 21_123}


@pytest.mark.parametrize("name, count", VARIANTS.items())
def test_paper_config_has_official_parameter_count(name, count):
    assert models.build(name).count_params() == count


@pytest.mark.parametrize("name", VARIANTS)
def test_matches_official_outputs_final_and_per_stage(name, golden):
    manifest, io, folder = golden(name)
    model = convert_state_dict(name, load_state_dict(folder / "weights.pth"))
    out = model(io["input"], training=False)
    assert manifest["param_count_this_config"] == model.count_params()
    np.testing.assert_allclose(out["derained"].numpy(), io["output"], rtol=0, atol=1e-4)
    stages = out["stages"].numpy()
    assert stages.shape == (1, 6, *io["input"].shape[1:])
    np.testing.assert_allclose(stages[0], io["stages"], rtol=0, atol=1e-4)


def test_official_legacy_checkpoint_reproduces_golden(golden):
    _, io, folder = golden("prenet")
    model = convert("prenet", folder / "official.pth")
    out = model(io["input"], training=False)["derained"].numpy()
    np.testing.assert_allclose(out, io["output"], rtol=0, atol=1e-4)


def test_stages_share_weights():
    model = models.build("prn_r", stages=3, channels=4)
    # One conv0, one residual block, one output conv: sharing means no per-stage copies.
    assert sorted(w.name.split("/")[0] for w in model.weights if "kernel" in w.name) == [
        "conv",
        "conv0",
        "res_conv1_a",
        "res_conv1_b",
    ]


def test_dynamic_spatial_size():
    model = models.build("prenet", stages=2, channels=8)
    for shape in [(1, 17, 23, 3), (2, 40, 8, 3)]:
        out = model(np.zeros(shape, np.float32))
        assert out["derained"].shape == shape
        assert out["stages"].shape == (shape[0], 2, *shape[1:])


def test_single_stage_equals_stage_one_of_longer_network():
    """Stage t depends only on stages ≤ t: truncating the recurrence keeps earlier outputs."""
    rng = np.random.default_rng(0)
    long = models.build("prenet", stages=3, channels=8)
    short = models.build("prenet", stages=1, channels=8)
    short.set_weights(long.get_weights())
    x = rng.random((1, 16, 16, 3), dtype=np.float32)
    np.testing.assert_allclose(
        short(x)["derained"].numpy(), long(x)["stages"].numpy()[:, 0], atol=1e-6
    )


def test_invalid_config_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown config key"):
        models.build("prenet", recurrent_iter=6)
    with pytest.raises(ValueError, match="positive"):
        models.build("prenet", stages=0)
    with pytest.raises(ValueError, match="unknown model 'prenett'"):
        models.build("prenett")
