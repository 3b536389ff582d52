"""Shared pytest fixtures and test helpers."""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest

# Reference material (goldens, small datasets, checkpoints) lives next to the repository.
SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"
#: The repository, for the scripts outside the package (``export/``, ``benchmarks/``, …).
REPO = Path(__file__).resolve().parents[1]


def load_script(relative: str, name: str):
    """Import the script at ``REPO / relative`` as module ``name`` (registered in
    ``sys.modules``, where dataclasses look their module up)."""
    spec = importlib.util.spec_from_file_location(name, REPO / relative)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """Path of ``../shared``; skips when it is missing, except with ``CI=true`` where it fails."""
    if not SHARED_DIR.is_dir():
        reason = f"shared reference data not found at {SHARED_DIR}"
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(f"{reason} (required when CI=true)")
        pytest.skip(reason)
    return SHARED_DIR


@pytest.fixture(scope="session")
def golden(shared_dir):
    """``golden(name)`` → (manifest dict, io.npz arrays, folder) of ``../shared/golden/<name>``."""

    def load(name: str):
        folder = shared_dir / "golden" / name
        manifest = json.loads((folder / "manifest.json").read_text())
        io = dict(np.load(folder / "io.npz")) if (folder / "io.npz").exists() else {}
        return manifest, io, folder

    return load


# --------------------------------------------------------------------------- helpers
#
# Plain functions shared by the model tests (``from conftest import ...``). They import tfderain
# (TensorFlow) only when called.


def assert_matches(actual, expected, atol: float = 1e-4, **kwargs) -> None:
    """Parity with an official output: equal to within ``atol``, no relative tolerance."""
    np.testing.assert_allclose(actual, expected, rtol=0, atol=atol, **kwargs)


def factored_weight(factors, key: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """A golden weight too large to ship, stored as exact factors: ``W = A @ B``.

    ``factors`` holds ``{key}.A`` and ``{key}.B``; the product is reshaped to ``shape`` if given.
    """
    weight = factors[f"{key}.A"] @ factors[f"{key}.B"]
    return weight if shape is None else weight.reshape(shape)


def assert_missing_key_reported(load, state_dict, key: str) -> None:
    """``load`` of ``state_dict`` without ``key`` raises a ConversionError naming that key."""
    from tfderain.convert import ConversionError

    incomplete = dict(state_dict)
    del incomplete[key]
    with pytest.raises(ConversionError, match=re.escape(f"missing key '{key}'")):
        load(incomplete)


def assert_mismatch_reported(load, state_dict, key: str) -> None:
    """``load`` of ``state_dict`` with a misshapen ``key`` raises a ConversionError naming it."""
    from tfderain.convert import ConversionError

    differing = dict(state_dict)
    differing[key] = np.array([0.1], np.float32)
    with pytest.raises(ConversionError, match=re.escape(key)):
        load(differing)


def paper_config_outputs(golden, arch: str, params: int) -> tuple[dict, dict]:
    """Convert ``arch``'s golden checkpoint and run it on the golden input: (io arrays, outputs).

    Asserts that the checkpoint is the paper config and has ``params`` parameters.
    """
    from tfderain import models
    from tfderain.convert import convert_state_dict, load_state_dict

    manifest, io, folder = golden(arch)
    model = convert_state_dict(arch, load_state_dict(folder / "weights.pth"))
    assert dict(models.identity(model).config) == models.full_config(models.spec(arch).builder, {})
    assert model.count_params() == manifest["param_count_this_config"] == params
    return io, {k: v.numpy() for k, v in model(io["input"], training=False).items()}


def assert_transformer_unet_config_errors(arch: str, norm_arg: str) -> None:
    """Clear errors of a Restormer-style U-Net builder: heads, LayerNorm type, odd ``dim``."""
    from tfderain import models

    with pytest.raises(ValueError, match="not a multiple of 3 heads"):
        models.build(arch, dim=8, heads=(1, 2, 3, 4))
    with pytest.raises(ValueError, match=f"{norm_arg} must be one of"):
        models.build(arch, dim=8, **{norm_arg: "Plain"})
    with pytest.raises(ValueError, match="dim even"):
        models.build(arch, dim=7)


def trainable_params(model) -> int:
    """A model's parameter count as torch's ``parameters()`` gives it.

    BatchNorm running statistics are buffers in torch but non-trainable weights in Keras, which
    ``count_params()`` would include.
    """
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def bn_channels(model) -> int:
    """Channels normalised by the model's BatchNormalization layers."""
    from tfderain._keras import keras

    return sum(
        layer.gamma.shape[0]
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    )


def dead_relu_model(size: int):
    """A small random network with a ReLU that is zero everywhere (its input bias is -100).

    ``x + conv1×1(concat(x, relu(conv1×1(dead_relu(conv3×3(x))))))``: in practice such a tensor
    is the squeeze convolution of a channel attention with few channels. Its calibrated 8-bit
    range is about [0, 1e-6], which int8 kernels cannot requantize from.
    """
    from tfderain._keras import keras

    layers = keras.layers
    keras.utils.set_random_seed(23)
    x = keras.Input((size, size, 3))
    dead = layers.Conv2D(2, 3, padding="same", activation="relu", bias_initializer="zeros")
    h = dead(layers.Conv2D(4, 3, padding="same")(x))
    h = layers.Conv2D(4, 1, activation="relu")(h)
    model = keras.Model(x, layers.Add()([x, layers.Conv2D(3, 1)(layers.Concatenate()([x, h]))]))
    kernel, bias = dead.get_weights()
    dead.set_weights([kernel, bias - 100.0])
    return model


def invoke_tflite(interpreter, image: np.ndarray) -> np.ndarray:
    """The first output of a LiteRT ``interpreter`` (tensors allocated) on the batch ``image``."""
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def release_memory() -> None:
    """Free the memory of large models the caller no longer references."""
    from tfderain._keras import keras

    keras.backend.clear_session()
    gc.collect()


def torch_layout(model, table) -> dict[str, np.ndarray]:
    """State dict in the official layout from a Keras model's weights (inverse conversion)."""
    from tfderain._keras import keras

    sd = {}
    for layer_name, prefix in table.items():
        layer = model.get_layer(layer_name)
        if isinstance(layer, keras.layers.BatchNormalization):
            suffixes = ("weight", "bias", "running_mean", "running_var")
        else:
            suffixes = ("weight", "bias")
        for suffix, value in zip(suffixes, layer.get_weights(), strict=False):
            sd[f"{prefix}.{suffix}"] = value.transpose(3, 2, 0, 1) if value.ndim == 4 else value
    return sd


#: The CRDNet golden's classifier weights too large to ship, stored as exact factors W = A @ B.
CRDNET_FACTORED = {
    "classfy.classfier.0.weight": (4096, 16384),
    "classfy.classfier.2.weight": (1000, 4096),
    "classfy.classfier.4.weight": (3, 1000),
    "classfy.features.20.weight": (512, 256, 3, 3),
    "classfy.features.24.weight": (1024, 512, 3, 3),
}


def crdnet_golden_state_dict(golden) -> tuple[dict, dict, dict]:
    """CRDNet golden ``(manifest, io, state dict)``, the factored weights rebuilt as ``A @ B``."""
    from tfderain.convert import load_state_dict

    manifest, io, folder = golden("crdnet")
    sd = load_state_dict(folder / "weights.pth")
    factors = np.load(folder / "linear_factors.npz")
    assert sorted(CRDNET_FACTORED) == sorted(manifest["linear_factors_rule"]["factored_weights"])
    for key, shape in CRDNET_FACTORED.items():
        sd[key] = factored_weight(factors, key, shape)
    return manifest, io, sd


@pytest.fixture(scope="module")
def readme_inputs(shared_dir, tmp_path_factory):
    """The small files the README commands run on (tests/readme_commands.py), made once per
    test file, each only when a command asks for it."""
    import readme_commands

    return readme_commands.Inputs(shared_dir, tmp_path_factory.mktemp("inputs"))
