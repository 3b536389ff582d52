"""DID-MDN: official parameter counts, parity with the official PyTorch networks, its quirks."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import (
    assert_matches,
    assert_missing_key_reported,
    bn_channels,
    factored_weight,
    release_memory,
    torch_layout,
    trainable_params,
)

from tfderain import models
from tfderain._keras import keras
from tfderain.convert import (
    ConversionError,
    apply_state_dict,
    convert_state_dict,
    load_state_dict,
)
from tfderain.models.didmdn import (
    RESIDUE,
    DIDMDNDensityLabel,
    DIDMDNInstanceNorm,
    DIDMDNLabelMap,
    build_density_classifier,
    classifier_ignore_keys,
    classifier_key_map,
    density_label,
    density_names,
    merge_official_checkpoints,
    residue_key_map,
)

DERAIN_OFFICIAL = 372_839  # Dense_rain.parameters(), unused modules included
DERAIN_UNUSED = 7_603
DERAIN_PARAMS = DERAIN_OFFICIAL - DERAIN_UNUSED  # 365,236
CLASSIFIER_PARAMS = 65_501_084
RESIDUE_PARAMS = 103_609  # Dense_rain_residual without its 5,596 unused parameters
PIPELINE_PARAMS = DERAIN_PARAMS + CLASSIFIER_PARAMS + RESIDUE_PARAMS


@pytest.fixture(scope="module")
def derain_golden(golden):
    manifest, io, folder = golden("didmdn")
    return manifest, io, load_state_dict(folder / "weights.pth")


@pytest.fixture(scope="module")
def derain_model(derain_golden):
    """``didmdn_derain`` with the golden's label (the paper config apart from the label)."""
    _, io, sd = derain_golden
    assert float(io["label"]) == 2.0
    return convert_state_dict("didmdn_derain", sd, label=2)


@pytest.fixture(scope="module")
def classifier_golden(golden):
    """The classifier's state dict with ``dense_classifier.weight`` rebuilt as ``A @ B``."""
    manifest, io, folder = golden("didmdn_cls")
    sd = load_state_dict(folder / "weights.pth")
    factors = np.load(folder / "linear_factors.npz")
    key = "dense_classifier.weight"
    sd[key] = factored_weight(factors, key)
    assert sd[key].shape == (512, 127_896)
    return manifest, io, sd


# ------------------------------------------------------------------------- deraining network


@pytest.mark.slow
def test_derain_network_has_official_parameter_count(derain_golden, derain_model):
    manifest, _, _ = derain_golden
    assert manifest["param_count_paper_config"] == DERAIN_OFFICIAL
    assert trainable_params(derain_model) == DERAIN_PARAMS
    bn = bn_channels(derain_model)
    assert derain_model.count_params() == DERAIN_PARAMS + 2 * bn


def test_unused_official_modules_are_skipped_on_purpose(derain_golden):
    """The 7,603 parameters the official forward never uses are exactly the ignored keys."""
    manifest, _, sd = derain_golden
    ignored = models.spec("didmdn_derain").ignored_keys()
    assert sorted(p[:-1] for p in ignored) == sorted(manifest["unused_modules"])
    skipped = [k for k in sd if any(k.startswith(p) for p in ignored)]
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    sizes = [sd[k].size for k in skipped if not k.endswith(buffers)]
    assert sum(sizes) == DERAIN_UNUSED


@pytest.mark.slow
def test_derain_network_matches_official_outputs(derain_golden, derain_model):
    """``derained`` = (clean2 + 1) / 2, ``rain`` = residual / 2 of the official [-1, 1] outputs."""
    _, io, _ = derain_golden
    out = derain_model(io["input"], training=False)
    assert_matches(out["derained"].numpy() * 2 - 1, io["output"])
    assert_matches(out["rain"].numpy() * 2, io["residual"])
    scaled = keras.Model(derain_model.input, derain_model.get_layer("input_scale").output)
    np.testing.assert_allclose(scaled(io["input"]).numpy(), io["model_input"], atol=1e-6)


@pytest.mark.slow
def test_batchnorm_train_mode_matches_official_test_protocol(derain_golden):
    """The official test runs BatchNorm on the statistics of the single test image."""
    _, io, sd = derain_golden
    model = convert_state_dict("didmdn_derain", sd, label=2, batchnorm_train_mode=True)
    assert not [x for x in model.layers if isinstance(x, keras.layers.BatchNormalization)]
    # Each image uses its own statistics: a second image in the batch changes nothing.
    other = np.flip(io["input"], axis=2)
    out = model(np.concatenate([io["input"], other]), training=False)
    derained, rain = out["derained"].numpy()[:1], out["rain"].numpy()[:1]
    assert_matches(derained * 2 - 1, io["output_trainmode_bn"])
    assert_matches(rain * 2, io["residual_trainmode_bn"])


@pytest.mark.slow
def test_missing_key_is_reported(derain_golden, derain_model):
    _, _, sd = derain_golden
    spec = models.spec("didmdn_derain")
    table, ignore = spec.key_table(), spec.ignored_keys()
    assert_missing_key_reported(
        lambda incomplete: apply_state_dict(derain_model, incomplete, table, ignore),
        sd,
        "dense2.dense_block4.bn2.running_var",
    )


@pytest.mark.slow
def test_each_stream_repeats_one_side_map_five_times(derain_model):
    """Official forward: x11 … x51 all come from ``conv11``; ``conv21 … conv61`` are unused."""
    names = {layer.name for layer in derain_model.layers}
    for stream in ("dense0", "dense1", "dense2"):
        assert f"{stream}_conv21" not in names
        inputs = derain_model.get_layer(f"{stream}_out").input
        side = derain_model.get_layer(f"{stream}_conv11_up").output
        assert len(inputs) == 7 and all(t is side for t in inputs[1:6])
    assert len(derain_model.get_layer("dense2_trans_block1_conv1").weights) == 1  # no bias


@pytest.mark.slow
def test_label_is_a_constant_map_of_its_raw_value(derain_model):
    x = np.zeros((2, 64, 96, 3), np.float32)
    probe = keras.Model(derain_model.input, derain_model.get_layer("label_map").output)
    np.testing.assert_array_equal(probe(x).numpy(), np.full((2, 64, 96, 8), 2.0, np.float32))
    layer = DIDMDNLabelMap.from_config(DIDMDNLabelMap(8, 1).get_config())
    assert (layer.channels, layer.label) == (8, 1.0)
    assert DIDMDNDensityLabel.from_config(DIDMDNDensityLabel(0).get_config()).offset == 0
    assert DIDMDNInstanceNorm.from_config(DIDMDNInstanceNorm().get_config()).epsilon == 1e-5


@pytest.mark.slow
def test_dynamic_spatial_size(derain_model):
    assert models.spec("didmdn_derain").multiple == 32
    assert models.spec("didmdn").multiple == 32
    for shape in [(1, 64, 96, 3), (2, 32, 160, 3)]:
        out = derain_model(np.random.default_rng(0).random(shape, dtype=np.float32))
        assert out["derained"].shape == shape and out["rain"].shape == shape
        derained = out["derained"].numpy()
        assert derained.min() >= 0.0 and derained.max() <= 1.0


def test_invalid_config_is_a_clear_error():
    with pytest.raises(ValueError, match="label must be a number"):
        models.build("didmdn_derain", label=None)
    with pytest.raises(ValueError, match="label_offset must be an integer"):
        models.build("didmdn", label_offset=1.5)
    with pytest.raises(ConversionError, match="does not look like 'didmdn'"):
        convert_state_dict("didmdn", {"conv_refin.weight": np.zeros((47, 47, 3, 3))})


# -------------------------------------------------------------- pipeline and density classifier


@pytest.fixture(scope="module")
def pipeline_run(derain_golden, classifier_golden, derain_model):
    """The paper-config pipeline loaded from three merged checkpoints, run on the classifier
    golden's 512×512 input.

    The residue checkpoint is the model's own random residue network in the official layout,
    with a zero ``refine3``: its output is ``tanh(0) = 0``, so the classifier sees exactly the
    golden's input. The 66 M-parameter model takes several seconds and ~0.6 GB; it is built
    once and released.
    """
    _, _, derain_sd = derain_golden
    _, io, cls_sd = classifier_golden
    spec = models.spec("didmdn")
    model = models.build("didmdn")
    residue = keras.Model(model.input, model.get_layer("residue_residual").output)
    assert trainable_params(residue) == RESIDUE_PARAMS
    residue_sd = torch_layout(model, residue_key_map())
    residue_sd["refine3.weight"] = np.zeros_like(residue_sd["refine3.weight"])
    residue_sd["refine3.bias"] = np.zeros_like(residue_sd["refine3.bias"])
    residue_sd.update({f"{m}.weight": np.zeros(1, np.float32) for m in RESIDUE.unused})
    merged = merge_official_checkpoints(derain_sd, cls_sd, residue_sd)
    apply_state_dict(model, merged, spec.key_table(), spec.ignored_keys())

    probe_layers = {
        "residue": "classifier_resize",
        "pooled": "classifier_pool",
        "flat": "classifier_flatten",
        "hidden": "classifier_dense_classifier",
        "label_map": "label_map",
    }
    # The probe stops before the deraining network (the costly part at 512×512).
    probe = keras.Model(
        model.input,
        {
            "density": model.output["density"],
            **{k: model.get_layer(v).output for k, v in probe_layers.items()},
        },
    )
    derain_layers = [layer.name for layer in derain_model.layers if layer.weights]
    run = {
        "config": dict(models.identity(model).config),
        "trainable": trainable_params(model),
        "outputs": {k: v.numpy() for k, v in probe(io["input"], training=False).items()},
        "small": {k: v.shape for k, v in model(np.zeros((2, 64, 96, 3), np.float32)).items()},
        "derain_weights_equal": all(
            all(
                np.array_equal(a, b)
                for a, b in zip(
                    model.get_layer(n).get_weights(),
                    derain_model.get_layer(n).get_weights(),
                    strict=True,
                )
            )
            for n in derain_layers
        ),
    }
    del probe, residue, model
    release_memory()
    return run


@pytest.mark.slow
def test_pipeline_has_official_parameter_count(pipeline_run, classifier_golden):
    manifest, _, _ = classifier_golden
    assert manifest["param_count_paper_config"] == CLASSIFIER_PARAMS
    assert pipeline_run["config"] == models.full_config(models.spec("didmdn").builder, {})
    assert pipeline_run["trainable"] == PIPELINE_PARAMS
    assert models.spec("didmdn").density_aware


@pytest.mark.slow
def test_classifier_matches_official_outputs(pipeline_run, classifier_golden):
    _, io, _ = classifier_golden
    out = pipeline_run["outputs"]
    assert_matches(out["residue"], io["input"] * 2 - 1, atol=1e-6)
    assert_matches(out["pooled"], io["pooled_features"])
    assert_matches(out["flat"], io["flat_features"])
    assert_matches(out["hidden"], io["hidden"])
    assert_matches(out["density"], io["density_logits"])


@pytest.mark.slow
def test_pipeline_feeds_argmax_plus_one_to_the_deraining_network(pipeline_run):
    """test.py: label = argmax(softmax(logits)) + 1; here argmax is 1 (medium), so label 2."""
    out = pipeline_run["outputs"]
    assert density_label(out["density"]).tolist() == [2]
    assert density_names(out["density"]) == ["medium"]
    np.testing.assert_array_equal(out["label_map"], np.full_like(out["label_map"], 2.0))
    # The deraining layers carry the same names and weights as ``didmdn_derain``'s.
    assert pipeline_run["derain_weights_equal"]
    small = pipeline_run["small"]
    assert small == {"derained": (2, 64, 96, 3), "rain": (2, 64, 96, 3), "density": (2, 4)}


@pytest.mark.slow
def test_classifier_batchnorm_train_mode_matches_official_test_protocol(classifier_golden):
    _, io, sd = classifier_golden
    model = build_density_classifier(batchnorm_train_mode=True)
    apply_state_dict(model, sd, classifier_key_map(), classifier_ignore_keys(True))
    probe = keras.Model(
        model.input,
        [model.get_layer(n).output for n in ("classifier_flatten", "classifier_dense_classifier")]
        + [model.output],
    )
    flat, hidden, logits = (t.numpy() for t in probe(io["input"] * 2 - 1, training=False))
    del model
    release_memory()
    assert_matches(flat, io["flat_features_trainmode_bn"])
    assert_matches(hidden, io["hidden_trainmode_bn"])
    assert_matches(logits, io["density_logits_trainmode_bn"])


def test_density_helpers():
    logits = np.array([[3.0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 9]])
    assert density_label(logits).tolist() == [1, 3, 4]
    assert density_label(logits, label_offset=0).tolist() == [0, 2, 3]
    assert density_names(logits) == ["heavy", "light", "unused"]
    with pytest.raises(ValueError, match="last axis 4"):
        density_label([0.0, 1.0, 2.0])
