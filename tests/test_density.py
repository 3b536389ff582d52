"""Rain density end to end: each model's decoder, ``estimate_density`` and ``tfderain density``.

The estimator itself (image forms, resizing, bounding) is tested in
``tests/test_density_estimation.py``.
"""

from __future__ import annotations

import gc
import math

import numpy as np
import pytest
from conftest import crdnet_golden_state_dict, torch_layout

import tfderain
from tfderain import cli, models
from tfderain._keras import keras
from tfderain.convert import convert, convert_state_dict, load_state_dict
from tfderain.models import codenet, crdnet, didmdn
from tfderain.saving import save_model

ATOL = 1e-4


def _release(model) -> None:
    del model
    keras.backend.clear_session()
    gc.collect()


# ---------------------------------------------------------------------------------- decoders


def test_every_density_aware_model_declares_its_decoder():
    for name in models.names():
        spec = models.spec(name)
        assert spec.density_aware == (spec.density_decoder is not None), name
        if spec.density_size is not None:
            assert spec.density_size % spec.multiple == 0, name
    assert models.spec("crdnet").density_size == 512
    assert models.spec("crdnet_anysize").density_size == 512
    assert models.spec("didmdn").density_size == 512
    assert models.spec("mcodenet").density_size is None


def test_codenet_rde_is_the_value_and_levels_split_between_the_paper_examples():
    # The paper's Fig. 1: light 0.4967, medium 0.6967, heavy 0.8600; a clear image 0.1617.
    assert codenet.density_estimate(np.float32(0.4967)) == pytest.approx((0.4967, 0))
    assert codenet.density_estimate(np.array([0.6967]))[1] == 1
    assert codenet.density_estimate(np.array(0.86))[1] == 2
    assert codenet.density_estimate(np.array(0.1617))[1] == 0
    assert [codenet.density_estimate(np.array(v))[1] for v in (0.5999, 0.6, 0.7799, 0.78)] == [
        0,
        1,
        1,
        2,
    ]


def test_crdnet_cumulative_codes_give_their_level_and_the_fraction_of_steps_reached():
    for index, name in enumerate(crdnet.DENSITY_LEVELS):
        value, level = crdnet.density_estimate(np.array(crdnet.DENSITY_LABELS[name], np.float32))
        assert models.DENSITY_LEVELS[level] == name
        assert value == pytest.approx((index + 1) / 3)
    # Nothing reached: the lightest level, value 0; scores beyond [0, 1] are clipped.
    assert crdnet.density_estimate(np.zeros(3)) == (0.0, 0)
    assert crdnet.density_estimate(np.array([1.7, 1.2, 3.0])) == (1.0, 2)
    # A broken code decodes by its consistent tail (here: light) and still counts every score.
    assert crdnet.density_estimate(np.array([0.9, 0.1, 0.8])) == pytest.approx((0.6, 0))
    with pytest.raises(ValueError, match="3 cumulative scores"):
        crdnet.density_estimate(np.zeros((1, 3)))


def test_didmdn_logits_give_the_most_likely_trained_class_and_the_expected_density():
    sure = 50.0
    assert didmdn.density_estimate(np.array([sure, 0, 0, 0])) == pytest.approx((1.0, 2))
    assert didmdn.density_estimate(np.array([0, sure, 0, 0])) == pytest.approx((0.5, 1))
    assert didmdn.density_estimate(np.array([0, 0, sure, 0])) == pytest.approx((0.0, 0))
    # The never-trained fourth logit plays no part.
    assert didmdn.density_estimate(np.array([0, 0, sure, 99])) == pytest.approx((0.0, 0))
    # Equal heavy and light: expected density 0.5 (ties resolve to the first class, heavy).
    assert didmdn.density_estimate(np.array([1.0, -sure, 1.0, 0]))[0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="4 density logits"):
        didmdn.density_estimate(np.zeros(3))


# -------------------------------------------------------------------------- API errors


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w, 3), dtype=np.float32)


def test_models_without_density_are_a_clear_error():
    prn = models.build("prn", stages=1, channels=4)
    with pytest.raises(ValueError, match="model 'prn' does not estimate rain density"):
        tfderain.estimate_density(_image(16, 16), model=prn)
    with pytest.raises(ValueError, match="model 'prenet' does not estimate rain density"):
        tfderain.estimate_density(_image(16, 16), model="prenet")  # before asking for weights


# --------------------------------------------------------------------- golden: CODE-Net, CLI


@pytest.fixture(scope="module")
def mcodenet_golden(golden):
    """The official rain1200 mCODE-Net and its golden input and RDE."""
    _, io, folder = golden("mcodenet")
    return convert("mcodenet", folder / "weights.pth"), io


@pytest.mark.slow
def test_mcodenet_estimate_is_the_official_rde(mcodenet_golden):
    model, io = mcodenet_golden
    result = tfderain.estimate_density(io["input"][0], model=model)
    rde = float(io["rde"][0])  # mean of the first CA's weights, official forward
    assert result.model == "mcodenet"
    assert result.value == pytest.approx(rde, abs=ATOL)
    # 0.497: below 0.6, the midpoint of the paper's light (0.4967) and medium (0.6967) examples.
    assert result.level == "light"


@pytest.mark.slow
def test_cli_prints_file_value_and_level_and_skips_bad_files(mcodenet_golden, tmp_path, capsys):
    from tfderain import io as tio

    model, io = mcodenet_golden
    weights = save_model(model, tmp_path / "mcodenet.keras")
    # The golden input is an 8-bit crop, so the PNG holds exactly the same pixels.
    image = tio.write_image(tmp_path / "rain.png", io["input"][0])
    broken = tmp_path / "broken.png"
    broken.write_bytes(image.read_bytes()[:100])

    code = cli.main(["density", str(image), str(broken), "--weights", str(weights)])
    out, err = capsys.readouterr()
    assert code == 1
    (line,) = out.splitlines()
    path, value, level = line.split("\t")
    assert path == str(image)
    assert float(value) == pytest.approx(float(io["rde"][0]), abs=2 * ATOL)
    assert level == "light"
    assert f"tfderain: skipped {broken}: " in err
    assert "Traceback" not in err


def test_cli_with_a_model_that_estimates_no_density_exits_2(tmp_path, capsys):
    code = cli.main(["density", str(tmp_path / "any.png"), "--model", "prenet"])
    _, err = capsys.readouterr()
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "tfderain: error: model 'prenet' does not estimate rain density" in err


# ------------------------------------------------------------------ golden: CRDNet, DID-MDN


@pytest.mark.slow
def test_crdnet_estimate_decodes_the_official_cumulative_scores(golden):
    manifest, io, sd = crdnet_golden_state_dict(golden)
    model = convert_state_dict("crdnet", sd)

    result = tfderain.estimate_density(io["input"][0], model=model)  # already 512×512
    other = tfderain.estimate_density(io["input"][0, :321, :481], model=model)  # resized
    _release(model)

    scores = io["density"][0]  # official [0.498, 0.412, 0.543]
    np.testing.assert_allclose(result.raw, scores, rtol=0, atol=ATOL)
    # Cumulative code read from the light end: light ≥ 0.5 reached, medium < 0.5 not: light.
    assert scores[2] >= 0.5 > scores[1]
    assert result.level == "light"
    assert result.value == pytest.approx(np.clip(scores, 0, 1).sum() / 3, abs=ATOL)
    assert 0 <= other.value <= 1 and other.level in models.DENSITY_LEVELS


@pytest.mark.slow
def test_didmdn_estimate_reads_the_official_classifier_logits(golden):
    """The pipeline with the golden classifier and deraining weights; the residue network's
    last convolution is zero, so ``tanh(0) = 0`` and the classifier sees the golden input."""
    _, _, derain_folder = golden("didmdn")
    _, io, cls_folder = golden("didmdn_cls")
    classifier = load_state_dict(cls_folder / "weights.pth")
    factors = np.load(cls_folder / "linear_factors.npz")
    key = "dense_classifier.weight"
    classifier[key] = factors[f"{key}.A"] @ factors[f"{key}.B"]
    residue_net = didmdn.build_residue_network()
    residue = torch_layout(residue_net, didmdn.residue_key_map())
    residue["refine3.weight"] = np.zeros_like(residue["refine3.weight"])
    residue["refine3.bias"] = np.zeros_like(residue["refine3.bias"])
    merged = didmdn.merge_official_checkpoints(
        load_state_dict(derain_folder / "weights.pth"), classifier, residue
    )
    del classifier, residue_net
    model = convert_state_dict("didmdn", merged)
    del merged

    result = tfderain.estimate_density(io["input"][0], model=model)  # the 512×512 golden input
    _release(model)

    logits = io["density_logits"][0]  # official [-0.0016, 0.0228, -0.0437, -0.0589]
    np.testing.assert_allclose(result.raw, logits, rtol=0, atol=ATOL)
    # Classes heavy, medium, light: medium has the largest of the three trained logits.
    assert result.level == "medium"
    weights = [math.exp(v) for v in logits[:3]]
    expected = (weights[0] * 1.0 + weights[1] * 0.5 + weights[2] * 0.0) / sum(weights)
    assert result.value == pytest.approx(expected, abs=ATOL)


def test_cli_without_a_model_names_the_presets_that_estimate_density(tmp_path, capsys):
    """The bundled default derains only: ``tfderain density photo.jpg`` says which named trained
    models can estimate density, rather than blaming a model the user never chose."""
    code = cli.main(["density", str(tmp_path / "any.png")])
    _, err = capsys.readouterr()
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "density needs a density-aware model (--model)" in err
    assert "mcodenet:rain1200" in err and "prenet" not in err
