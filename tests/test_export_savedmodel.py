"""SavedModel export: signatures checked in a fresh process against the Keras models."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from tiny_models import TINY_MODELS

from tfderain import api, models
from tfderain._keras import keras, tf
from tfderain.export.savedmodel import METADATA, export_savedmodel, read_metadata
from tfderain.metrics import quantize_output

# Runs in a fresh interpreter: loads each SavedModel with tf.saved_model.load only (no tfderain),
# feeds the inputs of in.npz to every signature and stores outputs and error messages.
FRESH = r"""
import json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np
import tensorflow as tf

inputs = dict(np.load(sys.argv[1], allow_pickle=True))
dirs = json.loads(sys.argv[3])
out, report = {}, {}
for tag, path in dirs.items():
    sm = tf.saved_model.load(path)
    sigs = sm.signatures
    report[tag + ":signatures"] = sorted(sigs)
    report[tag + ":dtypes"] = sorted({v.dtype.name for v in sm.model_variables})
    for key, value in inputs.items():
        if not key.startswith(tag + ":"):
            continue
        sig = key.split(":")[1]
        try:
            res = sigs[sig](images=tf.constant(value))
        except tf.errors.InvalidArgumentError as exc:
            report[key] = "InvalidArgument: " + exc.message
            continue
        for name, tensor in res.items():
            out[key + ":" + name] = tensor.numpy()
np.savez(sys.argv[2], **out)
print(json.dumps(report))
"""


def _build(name: str, seed: int, policy: str = "float32") -> keras.Model:
    keras.utils.set_random_seed(seed)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        return models.build(name, **TINY_MODELS[name][0])
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _reference(model: keras.Model, rgb: np.ndarray, multiple: int) -> dict[str, np.ndarray]:
    """Keras outputs for an ``[N, H, W, 3]`` float batch: numpy reflect-pad, run, crop, clip."""
    h, w = rgb.shape[1:3]
    padded = np.pad(rgb, ((0, 0), (0, -h % multiple), (0, -w % multiple), (0, 0)), mode="reflect")
    out = model(tf.constant(padded, tf.float32), training=False)
    derained = np.clip(out["derained"].numpy()[:, :h, :w], 0.0, 1.0)
    result = {"derained": derained}
    if "density" in out:
        result["density"] = out["density"].numpy()
    return result


def _png(rgb: np.ndarray) -> bytes:
    bgr = rgb[..., ::-1] if rgb.ndim == 3 and rgb.shape[2] == 3 else rgb
    if rgb.ndim == 3 and rgb.shape[2] == 4:
        bgr = rgb[..., [2, 1, 0, 3]]
    ok, data = cv2.imencode(".png", np.ascontiguousarray(bgr))
    assert ok
    return data.tobytes()


def _decode_png(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)[..., ::-1]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """Three exports (pcnet: multiple 4, round; codenet: density; prenet: built under
    mixed_float16, truncate, versioned layout over an existing version) run in a new process."""
    root = tmp_path_factory.mktemp("savedmodels")
    rng = np.random.default_rng(0)
    pcnet = _build("pcnet", 1)
    codenet = _build("codenet", 2)
    prenet = _build("prenet", 3, policy="mixed_float16")
    stale = root / "prenet" / "1"
    stale.mkdir(parents=True)
    (stale / "stale.txt").write_text("old version")
    dirs = {
        "pcnet": export_savedmodel(pcnet, root / "pcnet"),
        "codenet": export_savedmodel(codenet, root / "codenet"),
        "prenet": export_savedmodel(prenet, root / "prenet", version=1, overwrite=True),
    }

    gray = rng.integers(0, 256, (21, 30), dtype=np.uint8)
    rgba = rng.integers(0, 256, (29, 17, 4), dtype=np.uint8)
    photo = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    photo = cv2.GaussianBlur(photo, (5, 5), 0)  # JPEG-friendly content
    ok, jpeg = cv2.imencode(".jpg", photo[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    encoded = [_png(photo), jpeg.tobytes(), _png(gray), _png(rgba)]
    inputs = {
        "pcnet:serving_default": rng.random((2, 37, 53, 3), dtype=np.float32),
        "pcnet:serving_default:tiny": rng.random((1, 1, 2, 3), dtype=np.float32),
        "pcnet:derain_uint8": rng.integers(0, 256, (2, 37, 53, 3), dtype=np.uint8),
        "pcnet:derain_image_bytes": np.array(encoded, dtype=object),
        "pcnet:derain_image_bytes:scalar": np.array(encoded[0], dtype=object),
        "pcnet:serving_default:channels": np.zeros((1, 8, 8, 4), np.float32),
        "pcnet:serving_default:rank": np.zeros((8, 8, 3), np.float32),
        "pcnet:derain_uint8:empty": np.zeros((1, 0, 8, 3), np.uint8),
        "pcnet:derain_image_bytes:garbage": np.array([b"not an image"], dtype=object),
        "pcnet:derain_image_bytes:rank": np.array([[encoded[0]]], dtype=object),
        "codenet:serving_default": rng.random((2, 37, 53, 3), dtype=np.float32),
        "codenet:derain_image_bytes": np.array(encoded[:2], dtype=object),
        "prenet:serving_default": rng.random((1, 37, 53, 3), dtype=np.float32),
        "prenet:derain_uint8": rng.integers(0, 256, (1, 37, 53, 3), dtype=np.uint8),
    }
    in_path, out_path = root / "in.npz", root / "out.npz"
    np.savez(in_path, **inputs)
    paths = json.dumps({k: str(v) for k, v in dirs.items()})
    proc = subprocess.run(
        [sys.executable, "-c", FRESH, str(in_path), str(out_path), paths],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    outputs = dict(np.load(out_path, allow_pickle=True))
    keras_models = {"pcnet": pcnet, "codenet": codenet, "prenet": prenet}
    return {
        "dirs": dirs,
        "root": root,
        "inputs": inputs,
        "outputs": outputs,
        "report": report,
        "models": keras_models,
        "images": {"photo": photo, "jpeg": jpeg.tobytes(), "gray": gray, "rgba": rgba},
    }


# ------------------------------------------------------------------------- fresh-process checks


@pytest.mark.slow
def test_float_signature_matches_keras_on_odd_sizes(fresh):
    model = fresh["models"]["pcnet"]
    for key in ("pcnet:serving_default", "pcnet:serving_default:tiny"):
        x = fresh["inputs"][key]
        got = fresh["outputs"][f"{key}:derained"]
        assert got.dtype == np.float32 and got.shape == x.shape
        np.testing.assert_allclose(got, _reference(model, x, 4)["derained"], atol=1e-5)
        assert got.min() >= 0.0 and got.max() <= 1.0


@pytest.mark.slow
def test_uint8_signature_rounds_like_the_official_scripts(fresh):
    x = fresh["inputs"]["pcnet:derain_uint8"]
    got = fresh["outputs"]["pcnet:derain_uint8:derained"]
    ref = _reference(fresh["models"]["pcnet"], x.astype(np.float32) / 255.0, 4)["derained"]
    expected = quantize_output(ref, "B")  # pcnet's registry rule is "round"
    assert got.dtype == np.uint8 and got.shape == x.shape
    diff = np.abs(got.astype(int) - expected.astype(int))
    assert diff.max() <= 1
    assert (diff == 0).mean() > 0.999


@pytest.mark.slow
def test_image_bytes_signature_decodes_png_jpeg_gray_and_rgba(fresh):
    images = fresh["images"]
    jpeg_rgb = tf.io.decode_jpeg(images["jpeg"], channels=3).numpy()
    sources = [
        images["photo"],
        jpeg_rgb,
        np.repeat(images["gray"][:, :, None], 3, axis=2),
        images["rgba"][:, :, :3],
    ]
    got = fresh["outputs"]["pcnet:derain_image_bytes:derained_bytes"]
    assert got.shape == (4,)
    for rgb, png in zip(sources, got, strict=True):
        out = _decode_png(png)
        ref = _reference(fresh["models"]["pcnet"], rgb[None].astype(np.float32) / 255, 4)
        expected = quantize_output(ref["derained"][0], "B")
        assert out.shape == rgb.shape
        assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1
    scalar = fresh["outputs"]["pcnet:derain_image_bytes:scalar:derained_bytes"]
    assert scalar.shape == ()
    assert np.array_equal(_decode_png(scalar.item()), _decode_png(got[0]))


@pytest.mark.slow
def test_bad_inputs_fail_with_clear_invalid_argument_errors(fresh):
    report = fresh["report"]
    expected = {
        "pcnet:serving_default:channels": "3 (RGB) channels",
        "pcnet:serving_default:rank": "rank 4",
        "pcnet:derain_uint8:empty": "height and width of at least 1",
        "pcnet:derain_image_bytes:garbage": "Unknown image file format",
        "pcnet:derain_image_bytes:rank": "scalar or [N] string tensor",
    }
    for key, words in expected.items():
        assert report[key].startswith("InvalidArgument: ") and words in report[key], report[key]


@pytest.mark.slow
def test_density_aware_model_also_returns_its_density(fresh):
    model = fresh["models"]["codenet"]
    x = fresh["inputs"]["codenet:serving_default"]
    ref = _reference(model, x, 1)
    np.testing.assert_allclose(
        fresh["outputs"]["codenet:serving_default:derained"], ref["derained"], atol=1e-5
    )
    density = fresh["outputs"]["codenet:serving_default:density"]
    assert density.shape == (2,)
    np.testing.assert_allclose(density, ref["density"], atol=1e-5)
    # The registry decoder reads each row as estimate_density reads the model's output.
    spec = models.spec("codenet")
    for image, row in zip(x, density, strict=True):
        value, level = spec.density_decoder(row)
        estimate = api.DensityEstimator(model).estimate(image)
        assert value == pytest.approx(estimate.value, abs=1e-5)
        assert models.DENSITY_LEVELS[level] == estimate.level
    assert fresh["outputs"]["codenet:derain_image_bytes:density"].shape == (2,)
    meta = read_metadata(fresh["dirs"]["codenet"])
    assert meta["density"]["decoder"] == "tfderain.models.codenet.density_estimate"


@pytest.mark.slow
def test_mixed_precision_model_is_exported_in_float32_with_truncation(fresh):
    mixed = fresh["models"]["prenet"]
    assert fresh["report"]["prenet:dtypes"] == ["float32"]
    clean = models.build("prenet", **TINY_MODELS["prenet"][0])
    clean.set_weights([np.asarray(w, np.float32) for w in mixed.get_weights()])
    x = fresh["inputs"]["prenet:serving_default"]
    np.testing.assert_allclose(
        fresh["outputs"]["prenet:serving_default:derained"],
        _reference(clean, x, 1)["derained"],
        atol=1e-5,
    )
    u8 = fresh["inputs"]["prenet:derain_uint8"]
    expected = quantize_output(_reference(clean, u8.astype(np.float32) / 255, 1)["derained"], "A")
    diff = np.abs(fresh["outputs"]["prenet:derain_uint8:derained"].astype(int) - expected)
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999


@pytest.mark.slow
def test_export_writes_metadata_and_the_versioned_layout_atomically(fresh):
    root = fresh["root"]
    version_dir = root / "prenet" / "1"
    assert fresh["dirs"]["prenet"] == version_dir
    assert (version_dir / "saved_model.pb").is_file()
    assert not (version_dir / "stale.txt").exists()  # overwrite replaced the old version whole
    leftovers = [p.name for p in [*root.iterdir(), *(root / "prenet").iterdir()]]
    assert not [n for n in leftovers if n.startswith(".")], leftovers
    meta = json.loads((root / "pcnet" / "assets.extra" / METADATA).read_text())
    assert meta["arch"] == "pcnet"
    assert meta["config"]["n_feat"] == TINY_MODELS["pcnet"][0]["n_feat"]
    assert meta["multiple"] == 4 and meta["quantize"] == "round"
    assert sorted(meta["signatures"]) == sorted(fresh["report"]["pcnet:signatures"])
    assert sorted(meta["signatures"]) == ["derain_image_bytes", "derain_uint8", "serving_default"]
    assert meta["signatures"]["derain_uint8"]["inputs"]["images"]["dtype"] == "uint8"
    assert meta["tfderain_version"]
    assert read_metadata(version_dir)["quantize"] == "truncate"


def test_export_refuses_to_overwrite_and_unregistered_models(tmp_path):
    target = tmp_path / "sm"
    target.mkdir()
    model = _build("prenet", 0)
    with pytest.raises(FileExistsError, match="already exists"):
        export_savedmodel(model, target)
    with pytest.raises(ValueError, match="version must be"):
        export_savedmodel(model, tmp_path / "base", version=-1)
    plain = keras.Model(model.inputs, model.outputs)
    with pytest.raises(ValueError, match="only models built by tfderain"):
        export_savedmodel(plain, tmp_path / "plain")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sm"]


@pytest.mark.slow
def test_where_the_weights_came_from_travels_into_both_exports(tmp_path):
    """A preset's name, source sha256 and license note (the model identity's source) are written
    into the SavedModel's tfderain.json and the TFLite file's descriptor."""
    from tfderain.export import export_tflite
    from tfderain.export.descriptor import descriptor_path, read_descriptor

    source = {"preset": "prn_r:example", "source_sha256": "ab" * 32, "license": "no license"}
    model = models.with_source(models.build("prn_r", stages=1, channels=2), **source)
    assert read_metadata(export_savedmodel(model, tmp_path / "sm"))["source"] == source
    tflite = export_tflite(model, tmp_path / "m.tflite", quant="none", tile=32)
    assert read_descriptor(descriptor_path(tflite))["source"] == source
    plain = export_tflite(
        models.build("prn_r", stages=1, channels=2), tmp_path / "p.tflite", tile=32
    )
    assert "source" not in read_descriptor(descriptor_path(plain))
