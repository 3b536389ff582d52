"""TFLite export: every quantization mode is Flex-free, runs in LiteRT and matches Keras.

The model is a tiny PReNet (2 stages, 16 channels: its 3×3 16→16 kernels have 2,304 weights,
above the 1,024-element threshold under which dynamic-range quantization leaves a tensor float).
Error bounds, against the Keras output on a random 32×32 image (values are compared in [0, 1]
units; PSNR with peak 1):

* float32: same kernels up to summation order, max abs error ≤ 1e-4.
* float16 weights: relative weight error ≤ 2⁻¹¹ ≈ 5e-4, outputs of magnitude ≈ 1 → errors of a
  few 1e-4 → PSNR ≥ 50 dB (a 3e-3 RMS error).
* dynamic range (int8 weights, per-channel scales, activations quantized on the fly to int8 per
  batch): weight steps of max|w|/127 and activation steps of range/255 ≈ 0.005 → RMS error
  ≈ 1e-3 per tensor, summed over ~30 tensors in the chain → ≥ 35 dB.
* int8 (full integer): every activation is rounded to 8 bits of a calibrated range of about
  1.3 (step 0.005, RMS 0.0015 per tensor, ~30 tensors; the residual design keeps errors from
  compounding multiplicatively) → ≥ 30 dB (a 0.03 RMS error, ~8 output levels of 1/255).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from tfderain._keras import keras
from tfderain.export import ExportError, export_tflite
from tfderain.export.descriptor import KEYS, descriptor_path, read_descriptor
from tfderain.export.flatbuffer import is_flex_free, operators
from tfderain.export.options import QATSettings
from tfderain.export.runtime import TFLiteModel, keras_reference
from tfderain.export.tflite import qat_settings
from tfderain.metrics import psnr_float
from tfderain.models import build

TILE = 32


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(7)
    return build("prenet", stages=2, channels=16)


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).random((TILE, TILE, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    """path of each mode's export (created on first use, shared by the tests)."""
    folder = tmp_path_factory.mktemp("tflite")
    made = {}

    def get(quant: str, **options):
        key = (quant, tuple(sorted(options.items())))
        if key not in made:
            name = f"tiny_{quant}_{len(made)}.tflite"
            made[key] = export_tflite(model, folder / name, quant=quant, samples=4, **options)
        return made[key]

    return get


def test_float32_tile_matches_keras_within_1e4(exported, model, image):
    path = exported("none", tile=TILE)
    got = TFLiteModel(path).run(image)
    want = keras_reference(model)(image)
    assert set(got) == {"derained"}  # "stages" is not exported
    assert np.abs(got["derained"] - want["derained"]).max() <= 1e-4


def test_descriptor_has_exactly_the_shared_schema(exported, model):
    path = exported("none", tile=TILE)
    descriptor = json.loads(descriptor_path(path).read_text())
    assert descriptor_path(path).name == path.stem + ".json"
    assert list(descriptor) == list(KEYS)
    assert descriptor["format"] == "tfderain-model-spec" and descriptor["spec_version"] == 1
    assert descriptor["model"] == "prenet" and descriptor["config"] == {"stages": 2, "channels": 16}
    assert descriptor["file"] == path.name
    assert descriptor["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert descriptor["quantization"] == "none"
    assert descriptor["tile"] == {"height": TILE, "width": TILE}
    # PReNet's registry entry: any size (multiple 1), halo 64.
    assert (descriptor["multiple"], descriptor["halo"], descriptor["overlap"]) == (1, 64, 128)
    assert descriptor["value_range"] == [0.0, 1.0]
    assert descriptor["inputs"] == [
        {
            "name": "rainy",
            "index": 0,
            "shape": [1, TILE, TILE, 3],
            "dtype": "float32",
            "quantization": None,
        }
    ]
    assert [o["name"] for o in descriptor["outputs"]] == ["derained"]
    assert descriptor["outputs"][0]["shape"] == [1, TILE, TILE, 3]
    assert read_descriptor(descriptor_path(path)) == descriptor


def test_fp16_dynamic_size_runs_at_any_size(exported, model):
    path = exported("fp16", tile=None)
    descriptor = read_descriptor(descriptor_path(path))
    assert descriptor["tile"] is None
    assert descriptor["inputs"][0]["shape"] == [1, -1, -1, 3]
    rgb = np.random.default_rng(1).random((40, 24, 3)).astype(np.float32)
    got = TFLiteModel(path).run(rgb)["derained"]
    assert got.shape == (40, 24, 3)
    assert psnr_float(got, keras_reference(model)(rgb)["derained"]) >= 50


def test_dynamic_range_stores_int8_weights(exported, model, image):
    float_size = exported("none", tile=TILE).stat().st_size
    path = exported("dynamic", tile=TILE)
    # Most of the file is 3x3x16x16 float kernels; as int8 they take a quarter of the bytes.
    assert path.stat().st_size < 0.6 * float_size
    got = TFLiteModel(path).run(image)["derained"]
    assert psnr_float(got, keras_reference(model)(image)["derained"]) >= 35


@pytest.mark.slow
def test_int8_with_uint8_io_takes_raw_bytes(exported, model, image):
    path = exported("int8", tile=TILE, uint8_io=True)
    descriptor = read_descriptor(descriptor_path(path))
    rainy = descriptor["inputs"][0]
    assert rainy["dtype"] == "uint8"
    # The input range covers [0, 1] (a black and a white calibration pixel); PReNet's converter
    # widens it, since the input is concatenated with stage estimates that share its scale.
    scale, zero = rainy["quantization"]["scale"], rainy["quantization"]["zero_point"]
    assert 0 <= zero <= 255 and -zero * scale <= 0.0 and (255 - zero) * scale >= 1.0
    assert descriptor["outputs"][0]["dtype"] == "uint8"
    assert descriptor["outputs"][0]["quantization"]["scale"] > 0
    got = TFLiteModel(path).run(image)["derained"]
    assert psnr_float(got, keras_reference(model)(image)["derained"]) >= 30


@pytest.mark.parametrize(
    "quant, options",
    [
        ("none", {"tile": TILE}),
        ("fp16", {"tile": None}),
        ("dynamic", {"tile": TILE}),
        ("int8", {"tile": TILE, "uint8_io": True}),
    ],
)
def test_every_file_is_flex_free(exported, quant, options):
    ops = operators(exported(quant, **options))
    assert "CONV_2D" in ops
    assert is_flex_free(ops), ops


@pytest.fixture(scope="module")
def tiny_pcnet():
    return build("pcnet", n_feat=4, num_crb=0, num_rcab=0)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("arch", "options", "tile", "want"),
    [
        # PCNet has no recipe: the exporter's 200 steps of 4 patches of 128×128
        ("pcnet", {}, (TILE, TILE), (200, (4, TILE, TILE, 3))),  # a smaller tile: whole
        ("pcnet", {}, None, (200, (4, 128, 128, 3))),
        ("pcnet", {"qat_batch_size": 1}, (TILE, TILE), (200, (1, TILE, TILE, 3))),
        ("pcnet", {"qat_patch_size": 16}, (TILE, TILE), (200, (4, 16, 16, 3))),
        ("pcnet", {"qat_patch_size": 30}, None, (200, (4, 28, 28, 3))),  # multiple of 4
        # PReNet's recipe: 600 steps of 1 patch of 256×256; what is given wins
        ("prenet", {}, None, (600, (1, 256, 256, 3))),
        ("prenet", {}, (TILE, TILE), (600, (1, TILE, TILE, 3))),
        ("prenet", {"qat_steps": 5, "qat_batch_size": 2}, None, (5, (2, 256, 256, 3))),
        ("prenet", {"qat_patch_size": 64}, None, (600, (1, 64, 64, 3))),
    ],
)
def test_qat_fine_tunes_the_asked_or_recipe_steps_and_batches(
    arch, options, tile, want, model, tiny_pcnet, tmp_path, monkeypatch
):
    # Fewer patches is how a model of many full-resolution iterations (mCODE-Net) fits in
    # memory; larger ones see more context per patch (PReNet: 1 of 256×256, REPORT runs 21-24).
    from tfderain.export import qat

    seen = []

    def finetune(qmodel, pairs, *, steps, **kwargs):
        seen.append((steps, tuple(next(iter(pairs))["rainy"].shape)))
        raise InterruptedError  # the sizes are all this test needs

    monkeypatch.setattr(qat, "finetune", finetune)
    chosen = {"prenet": model, "pcnet": tiny_pcnet}[arch]
    with pytest.raises(InterruptedError):
        export_tflite(chosen, tmp_path / "m.tflite", quant="qat", tile=tile, **options)
    assert seen == [want]
    assert not (tmp_path / "m.tflite").exists()


def test_qat_settings_come_from_the_arguments_the_recipe_or_the_defaults(model):
    # Expected values: the recipes measured in export/REPORT.md (PReNet: runs 23-24) and
    # export/README.md (mCODE-Net's memory), and the exporter's documented defaults (200 steps
    # of 4 patches of 128×128).
    assert qat_settings("pcnet") == QATSettings(steps=200, batch_size=4, patch_size=128)
    assert qat_settings("prenet") == QATSettings(steps=600, batch_size=1, patch_size=256)
    assert qat_settings(model) == qat_settings("prenet")  # a built model: its registry entry
    assert qat_settings("prn") == QATSettings()  # the recipe is PReNet's own
    # mCODE-Net: one patch per step (about 5 GB of activations per 128×128 patch)
    assert qat_settings("mcodenet") == QATSettings(batch_size=1)
    assert qat_settings("prenet", steps=10, patch_size=64) == QATSettings(10, 1, 64)
    assert qat_settings("pcnet", batch_size=1) == QATSettings(200, 1, 128)
    # the patch side: at most the tile's smaller side, rounded down to the multiple (PCNet: 4)
    assert qat_settings("prenet", tile=(32, 48)).patch_size == 32
    assert qat_settings("pcnet", patch_size=30).patch_size == 28
    assert qat_settings("pcnet", tile=(100, 60)).patch_size == 60
    with pytest.raises(ExportError, match="qat_batch_size must be at least 1, got 0"):
        qat_settings("pcnet", batch_size=0)


def test_bad_arguments_are_one_line_errors(model, tiny_pcnet, tmp_path):
    with pytest.raises(ExportError, match="must end in .tflite"):
        export_tflite(model, tmp_path / "m.bin")
    with pytest.raises(ExportError, match="unknown quantization 'int4'"):
        export_tflite(model, tmp_path / "m.tflite", quant="int4")
    with pytest.raises(ExportError, match="uint8 I/O needs an integer model"):
        export_tflite(model, tmp_path / "m.tflite", quant="fp16", uint8_io=True)
    with pytest.raises(ExportError, match="layers kept in float32 need quant='qat', not 'int8'"):
        export_tflite(model, tmp_path / "m.tflite", quant="int8", qat_keep_float=["conv"])
    with pytest.raises(ExportError, match="seed must be a non-negative integer, got -1"):
        export_tflite(model, tmp_path / "m.tflite", quant="int8", seed=-1)
    with pytest.raises(ExportError, match="qat_batch_size must be at least 1, got 0"):
        export_tflite(model, tmp_path / "m.tflite", quant="qat", qat_batch_size=0)
    with pytest.raises(ExportError, match="qat_patch_size must be at least 1 for 'prenet', got 0"):
        export_tflite(model, tmp_path / "m.tflite", quant="qat", qat_patch_size=0)
    with pytest.raises(ExportError, match="qat_steps must be a non-negative integer, got -2"):
        export_tflite(model, tmp_path / "m.tflite", quant="qat", qat_steps=-2)
    with pytest.raises(ExportError, match="multiples of 4 for 'pcnet'"):
        export_tflite(tiny_pcnet, tmp_path / "m.tflite", tile=(30, 32))
    with pytest.raises(ExportError, match="qat_patch_size must be at least 4 for 'pcnet', got 3"):
        export_tflite(tiny_pcnet, tmp_path / "m.tflite", quant="qat", qat_patch_size=3)
    with pytest.raises(ExportError, match="no readable images"):
        export_tflite(model, tmp_path / "m.tflite", quant="int8", tile=8, representative=tmp_path)
    assert not list(tmp_path.glob("*.tflite"))


def test_cli_export_tflite_parses_every_option():
    from tfderain.cli import build_parser, cmd_export_tflite

    args = build_parser().parse_args(
        [
            "export",
            "tflite",
            "--model",
            "prenet",
            "--weights",
            "w.pth",
            "--quant",
            "qat",
            "--dynamic",
            "--qat-steps",
            "5",
            "--qat-data",
            "pairs",
            "--qat-loss",
            "l2",
            "--uint8-io",
            "--seed",
            "3",
            "-o",
            "m.tflite",
        ]
    )
    assert args.run is cmd_export_tflite
    assert (args.quant, args.dynamic, args.qat_steps, args.qat_data, args.uint8_io) == (
        "qat",
        True,
        5,
        "pairs",
        True,
    )
    assert args.representative == "synthetic" and args.output == "m.tflite"
    assert args.qat_loss == "l2" and args.qat_target == "teacher" and args.seed == 3


def test_cli_export_tflite_passes_the_seed_and_qat_sizes_to_the_exporter(
    monkeypatch, tmp_path, capsys
):
    import tfderain.api
    import tfderain.export
    from tfderain.cli import main

    given = {}

    def fake_export(model, path, options):
        given.update(dataclasses.asdict(options))
        Path(path).write_bytes(b"tflite")
        return Path(path)

    monkeypatch.setattr(tfderain.api, "resolve_model", lambda model, weights: model)
    monkeypatch.setattr(tfderain.export, "export_tflite", fake_export)
    out = tmp_path / "m.tflite"
    assert main(["export", "tflite", "--model", "prenet", "--quant", "int8", "-o", str(out)]) == 0
    assert given["seed"] == 0 and given["quant"] == "int8"
    # QAT sizes not given stay None: the exporter takes the model's recipe
    sizes = ("qat_steps", "qat_batch_size", "qat_patch_size")
    assert [given[k] for k in sizes] == [None, None, None]
    argv = ["--seed", "7", "--qat-steps", "9", "--qat-batch-size", "2", "--qat-patch-size", "64"]
    assert main(["export", "tflite", "--model", "prenet", *argv, "-o", str(out)]) == 0
    assert given["seed"] == 7 and [given[k] for k in sizes] == [9, 2, 64]
    assert "QAT" not in capsys.readouterr().out  # int8 and float exports do not fine-tune
    # a QAT export says how long a fine-tune it runs: the recipe's sizes, or the given ones
    assert main(["export", "tflite", "--model", "prenet", "--quant", "qat", "-o", str(out)]) == 0
    assert "QAT fine-tune: 600 steps of 1 patch of 256×256" in capsys.readouterr().out
    argv = ["--quant", "qat", "--qat-batch-size", "2", "--qat-steps", "5", "-o", str(out)]
    assert main(["export", "tflite", "--model", "pcnet", *argv]) == 0
    assert "QAT fine-tune: 5 steps of 2 patches of 128×128" in capsys.readouterr().out


@pytest.mark.parametrize("seed", ["-1", "two"])
def test_cli_a_bad_seed_is_rejected_before_the_model_loads(seed, monkeypatch, capsys):
    import tfderain.api
    from tfderain.cli import main

    def no_load(model, weights):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(tfderain.api, "resolve_model", no_load)
    with pytest.raises(SystemExit) as info:
        main(["export", "tflite", "--model", "prenet", "--seed", seed, "-o", "m.tflite"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --seed: expected a non-negative integer, got '{seed}'" in err


def test_cli_tile_and_dynamic_exclude_each_other(capsys):
    from tfderain.cli import main

    with pytest.raises(SystemExit) as info:
        main(["export", "tflite", "--model", "prenet", "--tile", "64", "--dynamic", "-o", "m"])
    assert info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_cli_export_without_weights_is_a_one_line_error(tmp_path, capsys):
    from tfderain.cli import main

    code = main(["export", "tflite", "--model", "prenet", "-o", str(tmp_path / "m.tflite")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tfderain: error:") and "needs weights" in err and "\n" not in err
