"""``export/android_assets.py`` writes what the Android app reads.

The names the app expects are read from its sources (``ModelAssets.kt`` constants, the Gradle
asset check, the Java ``ModelSpec`` key lists) and compared with what the exporter writes when it
is run, as a command, on a tiny model in a temporary folder.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from conftest import REPO, load_script

APP = REPO / "android_demo" / "app"
MODEL_ASSETS_KT = APP / "src" / "main" / "java" / "org" / "tfderain" / "demo" / "ModelAssets.kt"
MODEL_SPEC_JAVA = (
    REPO / "android_demo" / "core" / "src" / "main" / "java" / "org" / "tfderain" / "core"
) / "ModelSpec.java"


def _assets_module():
    return load_script("export/android_assets.py", "tfderain_android_assets")


def _kotlin_constants() -> dict[str, str]:
    text = MODEL_ASSETS_KT.read_text()
    return dict(re.findall(r'const val (\w+) = "([^"]*)"', text))


def _java_string_list(name: str) -> list[str]:
    text = MODEL_SPEC_JAVA.read_text()
    match = re.search(rf"{name}\s*=.*?asList\((.*?)\)\);", text, re.S)
    assert match, f"{name} not found in {MODEL_SPEC_JAVA.name}"
    return re.findall(r'"([^"]+)"', match.group(1))


def _java_constant(name: str) -> str:
    match = re.search(rf'String {name} = "([^"]+)"', MODEL_SPEC_JAVA.read_text())
    assert match, name
    return match.group(1)


def test_app_constants_match_the_exporter():
    assets = _assets_module()
    kt = _kotlin_constants()
    assert kt["SPEC_FILE"] == assets.DESCRIPTOR_FILE == "model_spec.json"
    # The exporter's default output is the app's assets/<MODELS_DIR>.
    assert APP / "src" / "main" / "assets" / kt["MODELS_DIR"] == assets.DEFAULT_OUT
    for prefix in ("INT8", "FP16", "PRENET", "DENSITY"):
        variant, file = kt[f"{prefix}_VARIANT"], kt[f"{prefix}_FILE"]
        assert variant in assets.VARIANTS, variant
        assert assets.VARIANTS[variant][1] == file
    assert assets.VARIANTS[kt["INT8_VARIANT"]][2] == "qat"
    assert assets.VARIANTS[kt["FP16_VARIANT"]][2] == "fp16"
    assert assets.VARIANTS[kt["PRENET_VARIANT"]][:3:2] == ("prenet", "qat")
    # The app's default is the first required variant; the optional ones are the switches.
    assert list(assets.DEFAULT_VARIANTS) == [kt["INT8_VARIANT"], kt["FP16_VARIANT"]]
    assert set(assets.OPTIONAL_VARIANTS.values()) == {kt["PRENET_VARIANT"], kt["DENSITY_VARIANT"]}


def test_the_app_default_is_the_bundled_default_model_quantization_aware_trained():
    from tfderain import models, presets

    assets = _assets_module()
    default = assets.DEFAULT_VARIANTS[0]
    arch, _, quant = assets.VARIANTS[default]
    assert (arch, quant) == (presets.get(presets.DEFAULT).arch, "qat")
    assert assets.PACKAGED[arch] == presets.DEFAULT
    # Its weights are the bundled default model's, found through the presets (no --weights-dir).
    model = assets._model_for(default, None)
    assert models.identity(model).source["preset"] == presets.get(presets.DEFAULT).name
    assert assets.VARIANTS[assets.DEFAULT_VARIANTS[1]][0] == arch


def test_gradle_requires_the_descriptors_the_app_requires():
    gradle = (APP / "build.gradle.kts").read_text()
    block = re.search(r"val requiredModelSpecs = listOf\((.*?)\)", gradle, re.S).group(1)
    required = re.findall(r'"([^"]+)"', block)
    kt = _kotlin_constants()
    expected = [
        f"{kt['MODELS_DIR']}/{kt[v]}/{kt['SPEC_FILE']}" for v in ("INT8_VARIANT", "FP16_VARIANT")
    ]
    assert required == expected
    assert "export/android_assets.py" in gradle  # the failure message names the command


def _tiny_rainunet(path):
    from tfderain import models
    from tfderain._keras import keras
    from tfderain.saving import save_model

    keras.utils.set_random_seed(0)
    save_model(models.build("rainunet", **models.spec("rainunet").tiny.config), path)
    return path


def _export_tiny(tmp_path, variant: str, *options: str) -> tuple[Path, Path, dict]:
    """``variant`` exported from a tiny RainUNet by the asset exporter at tile 104 (rainunet's
    halo is 48 and its multiple 8: the smallest tile above the overlap); returns the tiny model's
    file, the models folder and the variant's descriptor."""
    tiny = _tiny_rainunet(tmp_path / "tiny.keras")
    out = tmp_path / "assets" / "models"
    args = ["--out", str(out), "--weights", str(tiny), "--variants", variant, "--tile", "104"]
    assert _assets_module().main(args + list(options)) == 0
    descriptor = json.loads((out / variant / _kotlin_constants()["SPEC_FILE"]).read_text())
    return tiny, out, descriptor


@pytest.mark.slow
def test_exported_descriptor_has_exactly_the_keys_the_core_reads(tmp_path):
    assets = _assets_module()
    kt = _kotlin_constants()
    variant = kt["FP16_VARIANT"]
    _, out, descriptor = _export_tiny(tmp_path, variant, "--quant", "none")
    folder = out / variant
    tflite = folder / kt["FP16_FILE"]

    assert list(descriptor) == _java_string_list("KEYS")
    for tensor in descriptor["inputs"] + descriptor["outputs"]:
        assert list(tensor) == _java_string_list("TENSOR_KEYS")
    assert descriptor["format"] == _java_constant("FORMAT")
    assert [t["name"] for t in descriptor["inputs"]] == [_java_constant("INPUT_RAINY")]
    assert [t["name"] for t in descriptor["outputs"]] == [_java_constant("OUTPUT_DERAINED")]
    assert _java_constant("OUTPUT_DENSITY") in assets.OUTPUT_NAMES

    # Values from the registry and the request, independently of the exporter.
    assert descriptor["file"] == tflite.name
    assert descriptor["sha256"] == hashlib.sha256(tflite.read_bytes()).hexdigest()
    assert descriptor["model"] == "rainunet"
    assert descriptor["config"]["levels"] == 2 and descriptor["config"]["widths"] == [4, 8, 8]
    assert descriptor["tile"] == {"height": 104, "width": 104}
    assert (descriptor["multiple"], descriptor["halo"], descriptor["overlap"]) == (8, 48, 96)
    assert descriptor["quantization"] == "none"
    assert descriptor["value_range"] == [0.0, 1.0]
    assert descriptor["inputs"][0]["shape"] == [1, 104, 104, 3]
    assert (
        descriptor["inputs"][0]["dtype"] == "float32"
        and descriptor["inputs"][0]["quantization"] is None
    )
    assert descriptor["outputs"][0]["shape"] == [1, 104, 104, 3]
    assert sorted(p.name for p in folder.iterdir()) == sorted([tflite.name, kt["SPEC_FILE"]])


@pytest.mark.slow
def test_the_default_int8_variant_takes_raw_bytes_and_is_scored_as_the_app_tiles(
    shared_dir, tmp_path, capsys
):
    """The app's default variant, from a tiny RainUNet with a short QAT fine-tune: uint8 input of
    scale 1/255 and zero point 0 (the app feeds raw RGB bytes), uint8 output; then
    ``android_demo/tools/score_assets.py`` scores it against its float model through the app's
    tiles, and the float model's score is that of ``tfderain.inference`` with the same tiling."""
    from tfderain import evaluation, models
    from tfderain.data.layouts import find_pairs
    from tfderain.inference import Derainer
    from tfderain.saving import load_model

    kt = _kotlin_constants()
    variant = kt["INT8_VARIANT"]
    tiny, out, descriptor = _export_tiny(tmp_path, variant, "--qat-steps", "2")
    assert descriptor["file"] == kt["INT8_FILE"] and descriptor["quantization"] == "qat"
    rainy, derained = descriptor["inputs"][0], descriptor["outputs"][0]
    assert rainy["dtype"] == derained["dtype"] == "uint8"
    assert rainy["quantization"]["zero_point"] == 0
    assert rainy["quantization"]["scale"] == pytest.approx(1 / 255)

    score = load_script("android_demo/tools/score_assets.py", "tfderain_score_assets")
    data = shared_dir / "data" / "Rain100H-20"
    capsys.readouterr()
    code = score.main(
        ["--data", str(data), "--models", str(out), "--images", "1", "--keras", str(tiny)]
    )
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[:2] == score.HEADER.splitlines()
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert cells[0] == variant and cells[5] == "1"
    float_psnr, file_psnr, difference = (float(c) for c in cells[2:5])
    assert difference == pytest.approx(file_psnr - float_psnr, abs=0.0011)

    model = load_model(tiny)
    derainer = Derainer(model, tile=104, max_pixels=0)
    pairs = list(find_pairs(data))[:1]
    assert float_psnr == pytest.approx(evaluation.mean_psnr(derainer, pairs), abs=0.01)
    assert models.identity(model).arch == "rainunet"


def test_a_tile_smaller_than_the_overlap_is_refused(tmp_path, capsys):
    assets = _assets_module()
    code = assets.main(
        ["--out", str(tmp_path), "--variants", "prenet_fp16", "--quant", "none", "--tile", "64"]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "prenet_fp16: tile 64x64 must be a multiple of 1 and exceed the overlap of 128" in err
    assert not any(tmp_path.iterdir())


def test_a_descriptor_that_does_not_match_its_model_is_reported(tmp_path):
    assets = _assets_module()
    tflite = tmp_path / "m.tflite"
    tflite.write_bytes(b"not really a model")
    descriptor = {k: None for k in ("format", "spec_version", "model", "config")}
    (tmp_path / "model_spec.json").write_text(json.dumps(descriptor))
    with pytest.raises(assets.AssetError, match=r"model_spec\.json: missing key\(s\) .*tile"):
        assets.check_descriptor(tmp_path / "model_spec.json", tflite)


def test_the_official_weights_are_the_presets_copies_in_the_weights_folder(shared_dir, tmp_path):
    from tfderain import models

    assets = _assets_module()
    model = assets._model_for("prenet_fp16", shared_dir / "weights")
    assert models.identity(model).source["preset"] == assets.OFFICIAL["prenet"]
    model = assets._model_for("prenet_int8", tmp_path)  # no copy: the packaged 16-channel PReNet
    assert models.identity(model).config["channels"] == 16
    with pytest.raises(assets.AssetError, match="needs the upstream file of mcodenet:rain1200"):
        assets._model_for("mcodenet_fp16", tmp_path)


def test_weights_of_an_architecture_no_chosen_variant_has_are_refused(tmp_path, capsys):
    assets = _assets_module()
    tiny = _tiny_rainunet(tmp_path / "tiny.keras")
    out = tmp_path / "out"
    code = assets.main(["--out", str(out), "--weights", str(tiny), "--variants", "prenet_fp16"])
    assert code == 2
    err = capsys.readouterr().err
    assert "a 'rainunet' model, but none of the variants prenet_fp16 is one" in err
    assert not out.exists()


def test_the_scorer_names_a_missing_test_set_or_variant_in_one_line(shared_dir, tmp_path, capsys):
    score = load_script("android_demo/tools/score_assets.py", "tfderain_score_assets")
    assert score.main(["--data", str(tmp_path / "none"), "--models", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == f"score_assets: {tmp_path / 'none'}: not a directory"
    data = str(shared_dir / "data" / "Rain100L-3")
    assert score.main(["--data", data, "--models", str(tmp_path), "--variants", "nope"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"{tmp_path}: no model_spec.json for nope"
