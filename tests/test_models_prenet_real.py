"""PReNet's real-rain network (official ``Generator_lstm``): parameter count, parity with the
official outputs of both released real-rain checkpoints, and why it must be chosen by name."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_matches

from tfderain import models
from tfderain.convert import convert

#: Golden outputs of each real-rain checkpoint: (checkpoint path relative to the golden folder,
#: final-output key, per-stage key). ``official.pth`` is the released ``logs/real/PReNet2.pth``.
CHECKPOINTS = {
    "PReNet2": ("official.pth", "output", "stages"),
    "PReNet2 (zip re-save)": ("weights.pth", "output", "stages"),
    "PReNet1": ("../../weights/PReNet/logs/real/PReNet1.pth", "output_prenet1", "stages_prenet1"),
}


def test_paper_config_has_official_parameter_count(golden):
    manifest, _, _ = golden("prenet_real")
    model = models.build("prenet_real")
    assert model.count_params() == manifest["param_count_paper_config"] == 168_963


def test_defaults_are_test_real_py_settings(golden):
    manifest, _, _ = golden("prenet_real")
    spec = models.spec("prenet_real")
    config = models.full_config(spec.builder, {})
    assert config == {"stages": manifest["paper_config_kwargs"]["recurrent_iter"], "channels": 32}
    assert spec.outputs == ("derained", "stages")
    assert spec.output_rule == "truncate"  # test_real.py saves np.uint8(255 * out)


@pytest.mark.slow
@pytest.mark.parametrize("checkpoint", CHECKPOINTS)
def test_official_checkpoints_reproduce_final_and_per_stage_outputs(checkpoint, golden):
    _, io, folder = golden("prenet_real")
    path, final_key, stages_key = CHECKPOINTS[checkpoint]
    model = convert("prenet_real", folder / path)
    assert dict(models.identity(model).config) == {"stages": 4, "channels": 32}
    out = model(io["input"], training=False)
    assert_matches(out["derained"].numpy(), io[final_key])
    stages = out["stages"].numpy()
    assert stages.shape == (1, 4, *io["input"].shape[1:])
    assert_matches(stages[0], io[stages_key])


def test_the_same_checkpoint_run_as_prenet_gives_a_different_image(golden):
    """The checkpoint loads into ``prenet`` without complaint (same keys and shapes), but that
    wiring computes another function: the architecture can only be chosen by name."""
    _, io, folder = golden("prenet_real")
    wrong = convert("prenet", folder / "official.pth", stages=4)
    error = np.abs(wrong(io["input"], training=False)["derained"].numpy() - io["output"]).max()
    assert error > 0.1


def test_lstm_follows_the_residual_blocks_and_output_has_no_global_residual():
    """With every weight zero except the output convolution's bias, ``h = o·tanh(c)`` stays zero,
    so each stage's estimate is exactly that bias: no rainy input is added back."""
    model = models.build("prenet_real", stages=2, channels=4)
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])
    bias = np.array([0.1, 0.2, 0.3], np.float32)
    model.get_layer("conv").bias.assign(bias)
    x = np.random.default_rng(0).random((1, 8, 12, 3), dtype=np.float32)
    out = model(x)
    np.testing.assert_array_equal(out["stages"].numpy(), np.broadcast_to(bias, (1, 2, 8, 12, 3)))
    # Each stage's output convolution reads that stage's LSTM h (PReNet: the last ResBlock).
    conv = model.get_layer("conv")
    reads = [conv.get_input_at(t)._keras_history.layer.name for t in range(2)]
    assert reads == ["stage1_lstm_h", "stage2_lstm_h"]
