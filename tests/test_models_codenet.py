"""CODE-Net and mCODE-Net: paper-config parameter counts and parity with the official code."""

from __future__ import annotations

import numpy as np
import pytest

from tfderain import models
from tfderain._keras import keras
from tfderain.convert import (
    ConversionError,
    apply_state_dict,
    config_from_state_dict,
    convert_state_dict,
    load_state_dict,
)

PAPER_PARAMS = {"codenet": 1_350_401, "mcodenet": 802_158}
OFFICIAL_MCODENET = ["rain12", "rain1200", "real", "test1000"]
ITERATIONS = 25


def _probe(model: keras.Model, cas: list[str]) -> keras.Model:
    """``model`` plus the attention vectors of every call of the named CAs."""
    outputs = dict(model.output)
    for ca in cas:
        for k in range(ITERATIONS + 1):
            outputs[f"{ca}/{k}"] = model.get_layer(f"scn_{ca}_attention{k}").output
    return keras.Model(model.input, outputs)


def _attention(outputs: dict, ca: str) -> np.ndarray:
    """``(calls, channels)`` attention vectors of one CA for batch item 0."""
    return np.stack([outputs[f"{ca}/{k}"][0, 0, 0] for k in range(ITERATIONS + 1)])


@pytest.fixture(scope="module")
def paper_models() -> dict[str, keras.Model]:
    """Each variant built once with the paper defaults (building takes seconds)."""
    return {name: models.build(name) for name in PAPER_PARAMS}


def _load(model: keras.Model, name: str, state: dict) -> None:
    """What :func:`convert_state_dict` does, reusing an already built paper-config model."""
    config = dict(models.identity(model).config)
    assert config_from_state_dict(name, state).items() <= config.items()
    apply_state_dict(model, state, models.spec(name).key_table(**config))


def _run(model: keras.Model, cas: list[str], x: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in _probe(model, cas)(x, training=False).items()}


@pytest.fixture(scope="module")
def codenet_run(golden, paper_models):
    manifest, io, folder = golden("codenet")
    _load(paper_models["codenet"], "codenet", load_state_dict(folder / "weights.pth"))
    return manifest, io, _run(paper_models["codenet"], ["RW1"], io["input"])


@pytest.fixture(scope="module")
def mcodenet_run(golden, shared_dir, paper_models):
    # The golden was made with the official rain1200 checkpoint: load that file directly.
    manifest, io, _ = golden("mcodenet")
    state = load_state_dict(shared_dir / "weights/CODE-Net/mCODENET-rain1200.pth")
    _load(paper_models["mcodenet"], "mcodenet", state)
    cas = [f"RW{s}_1" for s in (1, 2, 3)]
    return manifest, io, _run(paper_models["mcodenet"], cas, io["input"])


@pytest.mark.slow
@pytest.mark.parametrize("name, count", PAPER_PARAMS.items())
def test_paper_config_has_official_parameter_count(paper_models, name, count):
    assert paper_models[name].count_params() == count


@pytest.mark.slow
def test_codenet_matches_official_outputs_density_and_attention(codenet_run):
    manifest, io, out = codenet_run
    assert manifest["param_count_this_config"] == PAPER_PARAMS["codenet"]
    np.testing.assert_allclose(out["derained"], io["output"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(out["density"], io["rde"], rtol=0, atol=1e-4)
    weights = _attention(out, "RW1")
    np.testing.assert_allclose(weights[-1], io["ca_first_final"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(weights.mean(-1), io["ca_first_mean_per_iter"], rtol=0, atol=1e-4)


@pytest.mark.slow
def test_mcodenet_rain1200_matches_official_outputs_density_and_attention(mcodenet_run):
    manifest, io, out = mcodenet_run
    assert manifest["param_count_this_config"] == PAPER_PARAMS["mcodenet"]
    np.testing.assert_allclose(out["derained"], io["output"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(out["density"], io["rde"], rtol=0, atol=1e-4)
    weights = np.stack([_attention(out, f"RW{s}_1") for s in (1, 2, 3)])  # (3, 26, 96)
    np.testing.assert_allclose(weights[:, -1], io["ca_first_final"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(weights[:, -1].mean(-1), io["rde_scales"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(weights.mean(-1), io["ca_first_mean_per_iter"], rtol=0, atol=1e-4)


def test_golden_checkpoints_are_the_official_rain1200_weights(golden, shared_dir):
    """``official.pth`` (legacy format) and ``weights.pth`` hold the tested rain1200 weights."""
    _, _, folder = golden("mcodenet")
    official = load_state_dict(shared_dir / "weights/CODE-Net/mCODENET-rain1200.pth")
    for file in ("official.pth", "weights.pth"):
        state = load_state_dict(folder / file)
        assert sorted(state) == sorted(official)
        for key, value in state.items():
            np.testing.assert_array_equal(value, official[key], err_msg=f"{file}: {key}")


@pytest.mark.slow
@pytest.mark.parametrize("dataset", OFFICIAL_MCODENET)
def test_every_official_mcodenet_checkpoint_converts_and_runs(
    shared_dir, paper_models, mcodenet_run, dataset
):
    # Runs after the golden forward (``mcodenet_run``), so reloading the shared model is safe.
    model = paper_models["mcodenet"]
    _load(
        model, "mcodenet", load_state_dict(shared_dir / f"weights/CODE-Net/mCODENET-{dataset}.pth")
    )
    x = np.random.default_rng(0).random((1, 16, 24, 3), dtype=np.float32)
    out = model(x, training=False)
    assert out["derained"].shape == x.shape
    assert np.isfinite(out["derained"].numpy()).all()
    assert 0.0 < float(out["density"].numpy()[0]) < 1.0


@pytest.mark.parametrize(
    "name, config",
    [
        ("codenet", {"channels": 8, "code_channels": 16, "reduction": 4, "iterations": 3}),
        (
            "mcodenet",
            {
                "channels": 6,
                "code_channels": 8,
                "reduction": 4,
                "iterations": 3,
                "kernel_sizes": (3, 5),
            },
        ),
    ],
)
def test_dynamic_spatial_size_and_one_density_per_image(name, config):
    model = models.build(name, **config)
    assert models.spec(name).multiple == 1
    for shape in [(1, 64, 96, 3), (2, 17, 23, 3)]:
        out = model(np.random.default_rng(1).random(shape, dtype=np.float32))
        assert out["derained"].shape == shape
        assert out["density"].shape == (shape[0],)


REDUCED = {
    "codenet": {"channels": 6, "code_channels": 8, "reduction": 2, "iterations": 2},
    "mcodenet": {
        "channels": 6,
        "code_channels": 8,
        "reduction": 2,
        "iterations": 4,
        "kernel_sizes": (3, 5),
    },
}


def _official_state(model: keras.Model, name: str) -> dict[str, np.ndarray]:
    """``model``'s weights under the official state-dict keys and layouts (inverse of convert)."""
    state = {}
    for layer_name, prefix in (
        models.spec(name).key_table(**dict(models.identity(model).config)).items()
    ):
        layer = model.get_layer(layer_name)
        (value,) = layer.get_weights()
        if hasattr(layer, "torch_param"):
            state[f"{prefix}.{layer.torch_param}"] = value
        else:
            state[f"{prefix}.weight"] = value.transpose(3, 2, 0, 1)  # HWIO -> OIHW
    return state


@pytest.mark.parametrize("name", REDUCED)
def test_config_is_inferred_from_a_reduced_checkpoint(name):
    """Widths, CA reduction, kernel sizes and (mCODE-Net) iterations come from the shapes."""
    source = models.build(name, **REDUCED[name])
    rng = np.random.default_rng(3)
    source.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in source.weights])
    state = _official_state(source, name)
    expected = dict(REDUCED[name])
    overrides = {}
    if name == "codenet":  # one scalar T for all iterations: the count is not in the weights
        overrides["iterations"] = expected.pop("iterations")
    assert config_from_state_dict(name, state) == expected
    model = convert_state_dict(name, state, **overrides)
    assert dict(models.identity(model).config) == REDUCED[name]
    for got, want in zip(model.get_weights(), source.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)


def test_missing_key_is_reported():
    state = _official_state(models.build("codenet", **REDUCED["codenet"]), "codenet")
    del state["scn.T"]
    with pytest.raises(ConversionError, match="missing key 'scn.T'"):
        convert_state_dict("codenet", state, iterations=2)


def test_reweighting_blocks_and_thresholds_are_shared_across_iterations():
    model = models.build("mcodenet", channels=4, code_channels=8, reduction=4, iterations=5)
    owners = sorted({w.name.split("/")[0] for w in model.weights})
    # 3 extractor/output convs, 3 × (D, DT, T, two CAs with two 1×1 convs each).
    assert len(owners) == 3 + 3 * (3 + 4)
    thresholds = model.get_layer("scn_T2").get_weights()[0]
    assert thresholds.shape == (6,)  # one entry for the initial codes, one per iteration


def test_invalid_config_is_a_clear_error():
    with pytest.raises(ValueError, match="positive"):
        models.build("codenet", iterations=0)
    with pytest.raises(ValueError, match="odd"):
        models.build("mcodenet", kernel_sizes=(3, 4))
