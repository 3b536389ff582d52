"""What every registered model must do, checked at its reduced config (``tiny=`` of its
registration): :func:`check_model` runs all of it for one registry name.

``tests/test_models_harness.py`` runs it for every name of :func:`tfderain.models.names`, so a
new architecture is checked as soon as it registers; its own test file then holds what is
particular to it (golden parity with the official code, its conversion, its quirks).
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
from pathlib import Path

import numpy as np

from tfderain import models, saving
from tfderain._keras import keras, tf
from tfderain.processing import Processor

#: Largest difference between a model's outputs before and after a ``.keras`` round trip
#: (the same weights and the same graph: only the order of float operations may differ).
ROUND_TRIP_ATOL = 1e-5


def package_classes(base: type, *extra_modules: str) -> set[type]:
    """Every subclass of ``base`` defined in the model modules (``tfderain.models.*``) and in
    ``extra_modules`` (e.g. ``"tfderain.export.rewrite"``)."""
    found = pkgutil.iter_modules(models.__path__, prefix="tfderain.models.")
    names = [module.name for module in found] + list(extra_modules)
    classes = set()
    for module in map(importlib.import_module, names):
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, base) and cls.__module__ == module.__name__:
                classes.add(cls)
    return classes


def tiny_spec(name: str) -> tuple[models.ModelSpec, models.Tiny]:
    """The registry entry of ``name`` and its reduced config (an error if it has none)."""
    spec = models.spec(name)
    assert spec.tiny is not None, f"{name}: declare a reduced config (tiny=) in its @register"
    return spec, spec.tiny


def images(height: int, width: int, seed: int = 0) -> np.ndarray:
    """One random float32 RGB image in [0, 1], ``[1, height, width, 3]``."""
    return np.random.default_rng(seed).random((1, height, width, 3)).astype(np.float32)


def run(model: keras.Model, x: np.ndarray) -> dict[str, np.ndarray]:
    """``model``'s outputs for ``x`` in inference mode, as numpy arrays by name."""
    out = model(tf.constant(x), training=False)
    assert isinstance(out, dict), f"{model.name}: outputs must be a dict, got {type(out).__name__}"
    return {key: np.asarray(value) for key, value in out.items()}


def check_build(name: str) -> keras.Model:
    """The model builds at its reduced config, remembers what it is and takes any height and
    width (``(None, None, 3)`` float inputs)."""
    spec, tiny = tiny_spec(name)
    assert tiny.patch_size % spec.multiple == 0, (name, tiny.patch_size, spec.multiple)
    model = models.build(name, **tiny.config)
    assert isinstance(model, keras.Model)
    found = models.identity(model)
    assert found is not None and found.arch == name
    assert dict(found.config) == models.full_config(spec.builder, tiny.config)
    assert len(model.inputs) == 1
    assert tuple(model.inputs[0].shape) == (None, None, None, 3), model.inputs[0].shape
    return model


def check_outputs(name: str, model: keras.Model) -> dict[str, np.ndarray]:
    """A dict output holding ``"derained"`` and exactly the spec's outputs; ``"derained"`` is an
    image of the input's size, every output finite."""
    spec, tiny = tiny_spec(name)
    assert "derained" in spec.outputs, spec.outputs
    size = tiny.patch_size
    out = run(model, images(size, size))
    assert set(out) == set(spec.outputs), (sorted(out), spec.outputs)
    assert out["derained"].shape == (1, size, size, 3), out["derained"].shape
    for key, value in out.items():
        assert np.isfinite(value).all(), f"{name}: output {key!r} is not finite"
    return out


def check_dynamic_size(name: str, model: keras.Model) -> None:
    """The model built once also runs at another size, a multiple of the spec's ``multiple``
    with a height other than its width; the derained image has the input's size."""
    spec, tiny = tiny_spec(name)
    height, width = tiny.patch_size, tiny.patch_size + spec.multiple
    out = run(model, images(height, width, seed=1))
    assert out["derained"].shape == (1, height, width, 3), out["derained"].shape


def check_save_load(name: str, model: keras.Model, folder: Path) -> None:
    """A ``.keras`` file (:mod:`tfderain.saving`) loads back as the same model: same
    architecture and config, equal outputs."""
    _, tiny = tiny_spec(name)
    path = saving.save_model(model, folder / f"{name}.keras")
    assert saving.read_metadata(path)["arch"] == name
    loaded = saving.load_model(path)
    config = models.identity(model).config
    assert models.identity(loaded).config == json.loads(json.dumps(config))  # tuples → lists
    x = images(tiny.patch_size, tiny.patch_size, seed=2)
    want, got = run(model, x), run(loaded, x)
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=0, atol=ROUND_TRIP_ATOL, err_msg=key)


def check_processor(name: str, model: keras.Model) -> None:
    """The processor comes from the spec (multiple, halo, output rule, density size); it pads
    an image of any size to the multiple and crops it back unchanged."""
    spec, tiny = tiny_spec(name)
    processor = spec.processor
    assert isinstance(processor, Processor)
    assert processor == models.spec_of(model).processor
    assert (processor.multiple, processor.halo) == (spec.multiple, spec.halo)
    assert (processor.output_rule, processor.density_size) == (spec.output_rule, spec.density_size)
    x = images(tiny.patch_size - 1, tiny.patch_size - 3, seed=3)  # not multiples (unless 1)
    padded = processor.pad(tf.constant(x))
    assert padded.shape[1] % spec.multiple == 0 and padded.shape[2] % spec.multiple == 0
    np.testing.assert_array_equal(processor.crop(padded, x.shape[1], x.shape[2]).numpy(), x)
    assert processor.to_uint8(x).dtype == tf.uint8


def check_model(name: str, folder: Path) -> None:
    """Every check above for the registered model ``name`` (``folder``: for its model file)."""
    model = check_build(name)
    check_outputs(name, model)
    check_dynamic_size(name, model)
    check_save_load(name, model, folder)
    check_processor(name, model)
