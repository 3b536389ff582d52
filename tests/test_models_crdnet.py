"""CRDNet: official parameter counts, parity with the official PyTorch modules, its quirks."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from conftest import (
    assert_matches,
    assert_missing_key_reported,
    bn_channels,
    crdnet_golden_state_dict,
    release_memory,
    trainable_params,
)

from tfderain import models
from tfderain._keras import keras
from tfderain.convert import (
    apply_state_dict,
    config_from_state_dict,
    convert_state_dict,
)
from tfderain.models.crdnet import (
    DENSITY_LABELS,
    DENSITY_LEVELS,
    LOW_BACKGROUND_LAYER,
    CRDNetAdaptiveAvgPool,
    decode_density,
    merge_official_checkpoints,
)

DERAIN_PARAMS = 904_546
CLASSIFIER_PARAMS = 77_510_275
PAPER_PARAMS = 78_414_821
CROP = (slice(None), slice(192, 320), slice(192, 320))


@pytest.fixture(scope="module")
def golden_state_dict(golden):
    """``weights.pth`` completed with the five weights rebuilt from ``linear_factors.npz``."""
    return crdnet_golden_state_dict(golden)


def _run_with_low_background(model, x):
    probe = keras.Model(
        model.input, {**model.output, "low": model.get_layer(LOW_BACKGROUND_LAYER).output}
    )
    return {k: v.numpy() for k, v in probe(x, training=False).items()}


@pytest.fixture(scope="module")
def paper_run(golden_state_dict):
    """Counts and golden-input outputs of the converted paper config, which is then released.

    The 78 M-parameter model takes several seconds to build (mostly initialising the
    16384→4096 Linear layer) and ~0.3 GB, so it is built once and not kept alive.
    """
    _, io, sd = golden_state_dict
    model = convert_state_dict("crdnet", sd)
    run = {
        "config": dict(models.identity(model).config),
        "trainable": trainable_params(model),
        "count_params": model.count_params(),
        "bn_channels": bn_channels(model),
        "outputs": _run_with_low_background(model, io["input"]),
    }
    del model
    release_memory()
    return run


@pytest.fixture(scope="module")
def derain_model():
    """The paper config without the classifier; tests may overwrite its weights."""
    return models.build("crdnet", density=False)


def _load_derain_only(model, state_dict):
    spec = models.spec("crdnet")
    table, ignore = spec.key_table(density=False), spec.ignored_keys(density=False)
    apply_state_dict(model, state_dict, table, ignore=ignore)


@pytest.mark.slow
def test_paper_config_has_official_parameter_count(paper_run):
    assert paper_run["config"] == models.full_config(models.spec("crdnet").builder, {})
    assert paper_run["trainable"] == PAPER_PARAMS
    assert paper_run["count_params"] == PAPER_PARAMS + 2 * paper_run["bn_channels"]


@pytest.mark.slow
def test_deraining_path_parameter_count(derain_model):
    assert trainable_params(derain_model) == DERAIN_PARAMS
    assert PAPER_PARAMS - DERAIN_PARAMS == CLASSIFIER_PARAMS


@pytest.mark.slow
def test_matches_official_outputs(golden_state_dict, paper_run):
    manifest, io, _ = golden_state_dict
    assert manifest["param_count_paper_config"] == PAPER_PARAMS
    out = paper_run["outputs"]
    assert_matches(out["derained"], io["output"])
    assert_matches(out["density"], io["density"])
    assert_matches(out["rain"][CROP], io["rain_high_crop"])
    assert_matches(out["low"][CROP], io["low_background_crop"])
    assert decode_density(out["density"]).tolist() == [1]  # [0.50, 0.41, 0.54] → light


@pytest.mark.slow
def test_anysize_variant_equals_paper_at_512_and_runs_at_other_sizes(golden_state_dict):
    _, io, sd = golden_state_dict
    model = convert_state_dict("crdnet_anysize", sd)
    assert trainable_params(model) == PAPER_PARAMS
    out = model(io["input"], training=False)
    assert_matches(out["derained"].numpy(), io["output"])
    assert_matches(out["density"].numpy(), io["density"])
    assert models.spec("crdnet_anysize").multiple == 128
    other = model(io["input"][:, :128, :384], training=False)  # features 1×3 → pooled 4×4
    assert other["derained"].shape == (1, 128, 384, 3)
    assert other["density"].shape == (1, 3)
    assert np.isfinite(other["density"].numpy()).all()


@pytest.mark.slow
def test_derain_only_model_from_the_four_official_files(golden_state_dict, derain_model):
    """The official checkpoints are per module and unprefixed; without ``classfy``: derain-only."""
    _, io, sd = golden_state_dict
    per_module = {
        part: {k[len(part) + 1 :]: v for k, v in sd.items() if k.startswith(f"{part}.")}
        for part in ("stage1", "stage2", "refine")
    }
    merged = merge_official_checkpoints(**per_module)
    assert config_from_state_dict("crdnet", merged) == {"density": False}
    assert config_from_state_dict("crdnet", sd) == {"density": True}
    _load_derain_only(derain_model, merged)
    out = derain_model(io["input"], training=False)
    assert_matches(out["derained"].numpy(), io["output"])
    # A derain-only model skips the classifier's keys of a full checkpoint on purpose.
    _load_derain_only(derain_model, sd)


@pytest.mark.slow
def test_missing_key_is_reported(golden_state_dict, derain_model):
    _, _, sd = golden_state_dict
    load = partial(_load_derain_only, derain_model)
    assert_missing_key_reported(load, sd, "stage2.ddecode3.bn.running_var")


@pytest.mark.slow
def test_rain_branch_encoders_share_one_decoder(derain_model):
    for k in range(3):
        for part in ("conv1", "bn", "conv2"):
            assert len(derain_model.get_layer(f"stage1_deconv_3_{k}_{part}").inbound_nodes) == 3
    decoder_weights = [w for w in derain_model.weights if w.name.startswith("stage1_deconv")]
    assert len(decoder_weights) == 3 * (2 + 4 + 2)  # one set: conv1, bn, conv2 per block


@pytest.mark.slow
def test_blocks_have_one_batchnorm_and_no_activation_after_conv2(derain_model):
    """The official builders re-register ``bn``/``relu``: conv1 → bn → relu → conv2 → pool."""
    block = [
        layer.name for layer in derain_model.layers if layer.name.startswith("stage2_encode1_")
    ]
    assert block == [f"stage2_encode1_{p}" for p in ("conv1", "bn", "relu", "conv2", "Maxpool")]
    assert derain_model.get_layer("stage2_encode1_conv2").activation.__name__ == "linear"
    bns = [x for x in derain_model.layers if isinstance(x, keras.layers.BatchNormalization)]
    assert bns and all(layer.epsilon == 1e-5 for layer in bns)


@pytest.mark.slow
def test_dynamic_spatial_size_derain_only(derain_model):
    assert models.spec("crdnet").multiple == 512  # the classifier of the paper config
    for shape in [(1, 64, 96, 3), (2, 32, 160, 3)]:
        out = derain_model(np.zeros(shape, np.float32))
        assert out["derained"].shape == shape
        assert out["rain"].shape == (*shape[:3], 9)


def test_adaptive_pool_uses_torch_bins_and_is_identity_on_4x4():
    rng = np.random.default_rng(0)
    pool = CRDNetAdaptiveAvgPool(4)
    x = rng.random((2, 4, 4, 5), dtype=np.float32)
    np.testing.assert_array_equal(pool(x).numpy(), x)
    x = rng.random((1, 6, 3, 2), dtype=np.float32)
    # torch AdaptiveAvgPool2d((4, 4)) bins for 6: [0,2) [1,3) [3,5) [4,6); for 3: [0,1) [0,2)
    # [1,3) [2,3).
    rows = [(0, 2), (1, 3), (3, 5), (4, 6)]
    cols = [(0, 1), (0, 2), (1, 3), (2, 3)]
    expected = np.array(
        [[x[0, a:b, c:d].mean(axis=(0, 1)) for c, d in cols] for a, b in rows], np.float32
    )
    np.testing.assert_allclose(pool(x).numpy()[0], expected, rtol=0, atol=1e-6)
    assert CRDNetAdaptiveAvgPool.from_config(pool.get_config()).grid == 4


def test_cumulative_density_labels_decode_to_levels():
    labels = np.array([DENSITY_LABELS[name] for name in DENSITY_LEVELS], np.float32)
    assert decode_density(labels).tolist() == [1, 2, 3]
    assert decode_density([0.1, 0.2, 0.3]) == 0
    assert decode_density([0.9, 0.1, 0.8]) == 1  # inconsistent: only the tail counts
    with pytest.raises(ValueError, match="last axis 3"):
        decode_density([0.0, 1.0])
