"""Official checkpoints → Keras: config inference, strict loading, self-describing files."""

from __future__ import annotations

import numpy as np
import pytest

from tfderain import load_model, models
from tfderain.convert import ConversionError, convert, convert_state_dict, load_state_dict
from tfderain.saving import ModelFileError, save_model

OFFICIAL_PRENET = {
    "PReNet6": "prenet",
    "PReNet6_r": "prenet_r",
    "PRN6": "prn",
    "PRN6_r": "prn_r",
}


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["Rain100H", "Rain100L", "Rain1400"])
@pytest.mark.parametrize("folder, arch", OFFICIAL_PRENET.items())
def test_every_official_prenet_checkpoint_converts(shared_dir, dataset, folder, arch):
    path = shared_dir / "weights/PReNet/logs" / dataset / folder / "net_latest.pth"
    model = convert(arch, path)
    assert model.count_params() == models.build(arch).count_params()


@pytest.mark.slow
def test_real_rain_checkpoints_convert(shared_dir):
    for path in sorted((shared_dir / "weights/PReNet/logs/real").glob("*.pth")):
        convert("prenet_real", path)


@pytest.mark.slow
def test_strict_loading_lists_missing_and_unexpected_keys(golden):
    _, _, folder = golden("prenet")
    state = load_state_dict(folder / "weights.pth")
    broken = {k: v for k, v in state.items() if not k.startswith("conv_i.")}
    broken["extra.weight"] = np.zeros(3, np.float32)
    with pytest.raises(ConversionError) as info:
        convert_state_dict("prenet", broken)
    message = str(info.value)
    assert "missing key 'conv_i.0.weight'" in message
    assert "missing key 'conv_i.0.bias'" in message
    assert "unexpected key 'extra.weight'" in message
    assert "\n" not in message


@pytest.mark.slow
def test_shape_mismatch_is_reported(golden):
    _, _, folder = golden("prenet")
    state = dict(load_state_dict(folder / "weights.pth"))
    state["conv.0.weight"] = np.zeros((3, 32, 5, 5), np.float32)
    with pytest.raises(ConversionError, match="shape mismatch for 'conv.0.weight'"):
        convert_state_dict("prenet", state)


def test_wrong_architecture_is_reported(golden):
    _, _, folder = golden("prn")
    with pytest.raises(ConversionError, match="missing key 'conv_i.0.weight'"):
        convert("prenet", folder / "weights.pth")


def test_channels_inferred_and_stages_overridable(golden):
    _, io, folder = golden("prn_r")
    model = convert("prn_r", folder / "weights.pth", stages=2)
    assert dict(models.identity(model).config) == {"stages": 2, "channels": 32}
    out = model(io["input"])["derained"].numpy()
    np.testing.assert_allclose(out, io["stages"][1:2], atol=1e-4)


@pytest.mark.slow
def test_saved_keras_file_is_self_describing(golden, tmp_path):
    _, io, folder = golden("prenet")
    path = save_model(convert("prenet", folder / "weights.pth"), tmp_path / "prenet.keras")
    assert [p.name for p in tmp_path.iterdir()] == ["prenet.keras"]
    model = load_model(path)
    assert models.identity(model).arch == "prenet"
    out = model(io["input"])["derained"].numpy()
    np.testing.assert_allclose(out, io["output"], atol=1e-4)


def test_load_model_errors_name_the_file(tmp_path):
    bogus = tmp_path / "bogus.keras"
    bogus.write_bytes(b"not a zip")
    with pytest.raises(ModelFileError, match="bogus.keras"):
        load_model(bogus)
    with pytest.raises(ModelFileError, match="missing.keras: no such model file"):
        load_model(tmp_path / "missing.keras")
    with pytest.raises(ValueError, match="needs the architecture name"):
        load_model(tmp_path / "net.pth")
