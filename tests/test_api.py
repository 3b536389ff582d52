"""tfderain's public API: ``tfderain.derain`` in a loop loads and traces a model once."""

from __future__ import annotations

import numpy as np

import tfderain
from tfderain import api, inference, saving
from tfderain.models import build


def test_derain_in_a_loop_loads_the_weights_and_traces_the_network_once(tmp_path, monkeypatch):
    path = saving.save_model(build("prn_r", stages=2, channels=4), tmp_path / "tiny.keras")
    loads = []
    real_load = api.load_model
    monkeypatch.setattr(api, "load_model", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    rng = np.random.default_rng(0)
    sizes = [(40, 56), (33, 47), (64, 64), (17, 90), (40, 56), (25, 31)]
    for height, width in sizes:
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        out = tfderain.derain(image, model="prn_r", weights=path)
        assert out.shape == image.shape and out.dtype == np.uint8
    assert len(loads) == 1
    model = api.resolve_model("prn_r", path)
    traced = inference._COMPILED[model]  # the tf.function inference runs the model with
    # Dynamic batch, height and width: one trace serves every size (TF would warn of
    # retracing from the fifth).
    assert traced.experimental_get_tracing_count() == 1


def test_a_rewritten_file_is_loaded_again(tmp_path):
    path = tmp_path / "tiny.keras"
    saving.save_model(build("prn_r", stages=2, channels=4), path)
    first = api.resolve_model("prn_r", path)
    assert api.resolve_model("prn_r", path) is first
    saving.save_model(build("prn_r", stages=2, channels=8), path)
    second = api.resolve_model("prn_r", path)
    assert second is not first and second.count_params() != first.count_params()
