"""The public Python API, re-exported by :mod:`tfderain`."""

from __future__ import annotations

import dataclasses
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from tfderain import io, models, presets, processing

#: The bundled default model (trained by tfderain on synthetic rain; see the README).
DEFAULT_MODEL = "default"
#: Density estimation downscales larger images of models without a fixed density input size.
DEFAULT_DENSITY_MAX_PIXELS = processing.DENSITY_MAX_PIXELS


def list_models() -> list[str]:
    """Names of all registered architectures."""
    return models.names()


def build_model(name: str, **config: Any):
    """Build the registered architecture ``name`` (random weights); ``config`` overrides defaults.

    Every builder's defaults are the paper configuration.
    """
    return models.build(name, **config)


def default_model_path() -> Path:
    """Path of the bundled default model file."""
    return Path(str(resources.files("tfderain") / "weights" / "default.keras"))


def load_model(path: str | os.PathLike, arch: str | None = None, **overrides: Any):
    """Load a model file.

    Args:
        path: a tfderain ``.keras`` file (self-describing), an official PyTorch checkpoint
            (``.pth``/``.pt``/``.pth.tar``), which then needs ``arch``, or a preset name
            (``"prenet:rain100h"``, see :mod:`tfderain.presets`; downloaded on first use).
        arch: registry name; required for official checkpoints, checked against ``.keras`` files.
        overrides: config values that the checkpoint's shapes cannot tell (e.g. ``stages``);
            official checkpoints only.
    """
    from tfderain import saving

    if presets.is_preset_name(path):
        if overrides:
            raise ValueError(f"preset {path}: config overrides apply to official checkpoints only")
        return saving.load_model(_preset_file(path, arch))
    path = Path(path)
    if path.suffix == ".keras":
        if overrides:
            raise ValueError(f"{path}: config overrides apply to official checkpoints only")
        meta = saving.read_metadata(path)
        if arch is not None and arch != meta["arch"]:
            raise ValueError(f"{path}: holds a {meta['arch']!r} model, not {arch!r}")
        return saving.load_model(path)
    if arch is None:
        raise ValueError(f"{path}: an official checkpoint needs the architecture name (arch=...)")
    from tfderain.convert import convert

    return convert(arch, path, **overrides)


def _preset_file(name: str, arch: str | None) -> Path:
    """The cached ``.keras`` file of preset ``name`` (downloaded and converted on first use),
    after checking that it holds ``arch`` when one is asked for."""
    preset = presets.get(name)
    if arch is not None and arch != preset.arch:
        raise ValueError(f"preset {name}: holds a {preset.arch!r} model, not {arch!r}")
    return presets.resolve(name)


#: Models loaded by :func:`resolve_model`, most recently used last (a few, for loops that
#: derain many images with the same weights).
_RESOLVED: OrderedDict[tuple, Any] = OrderedDict()
_RESOLVED_KEPT = 4


def _load_once(path: str | os.PathLike, arch: str | None):
    """:func:`load_model`, remembered for the same file (path, size and modification time), so
    that ``derain(image)`` in a loop loads the weights and traces the network once."""
    if presets.is_preset_name(path):
        path, arch = _preset_file(path, arch), None
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        return load_model(path, arch=arch)  # the loader names the problem
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, arch)
    if key in _RESOLVED:
        _RESOLVED.move_to_end(key)
        return _RESOLVED[key]
    model = load_model(path, arch=arch)
    _RESOLVED[key] = model
    while len(_RESOLVED) > _RESOLVED_KEPT:
        _RESOLVED.popitem(last=False)
    return model


def resolve_model(model: Any = None, weights: str | os.PathLike | None = None):
    """A Keras model from the forms the CLI and :func:`derain` accept.

    ``model`` may be a ``keras.Model`` (used as is), ``None``/``"default"`` (the bundled default),
    a preset name (``"prenet:rain100h"``) or a registry name, in which case ``weights``
    (``.keras``, official ``.pth`` or a preset name) is required. The same file is loaded once:
    later calls return the same model (do not train it; use :func:`load_model` for a model of
    your own).
    """
    if model is not None and not isinstance(model, str):
        return model
    if weights is not None:
        arch = None if model in (None, DEFAULT_MODEL) else model
        return _load_once(weights, arch)
    if model in (None, DEFAULT_MODEL):
        return _load_once(default_model_path(), None)
    if presets.is_preset_name(model):
        return _load_once(model, None)
    models.spec(model)  # unknown names fail here with the list of known ones
    raise ValueError(
        f"model {model!r} needs weights: an official checkpoint (.pth) or a converted .keras file"
    )


def model_spec(model) -> models.ModelSpec:
    """The registry entry a loaded model was built from (:func:`tfderain.models.spec_of`)."""
    return models.spec_of(model)


def derain(
    image: np.ndarray, model: Any = None, weights: str | os.PathLike | None = None, **options: Any
) -> np.ndarray:
    """Derain one image of any size.

    Args:
        image: ``(H, W, 3)`` RGB, either uint8/uint16 or float in [0, 1]; ``(H, W)`` grayscale
            and ``(H, W, 4)`` RGBA are accepted (alpha is passed through).
        model: a ``keras.Model``, a registry name (with ``weights``) or ``None`` for the default.
        weights: ``.keras`` or official ``.pth`` file for ``model``.
        options: tiling options of :func:`tfderain.inference.derain_array`.

    Returns:
        The derained image, same shape and dtype as ``image`` (floats clipped to [0, 1]).
    """
    from tfderain import inference

    net = resolve_model(model, weights)
    return inference.derain_numpy(net, image, spec=model_spec(net), **options)


# -------------------------------------------------------------------------------- rain density


@dataclass(frozen=True)
class Density:
    """The rain density of one image, as estimated by a density-aware model.

    Attributes:
        value: continuous density in [0, 1] on the estimating model's own scale (0 is the
            lightest rain it expresses); values of different models are not comparable.
        level: ``"light"``, ``"medium"`` or ``"heavy"``.
        model: registry name of the estimating model.
        raw: the model's ``"density"`` output for the image (CODE-Net: the RDE; CRDNet: the
            3 cumulative scores; DID-MDN: the 4 logits).
    """

    value: float
    level: str
    model: str
    raw: np.ndarray = field(compare=False, repr=False)


def density_spec(model: Any) -> models.ModelSpec:
    """The registry entry of a density-aware model (a name, a loaded model or its entry).

    Raises:
        ValueError: ``"model X does not estimate rain density"`` for any other model.
    """
    if presets.is_preset_name(model):
        model = presets.get(model).arch
    spec = models.spec(model) if isinstance(model, str) else model
    if not isinstance(spec, models.ModelSpec):
        spec = model_spec(model)
    if spec.density_decoder is None:
        raise ValueError(f"model {spec.name!r} does not estimate rain density; {density_models()}")
    return spec


def density_models() -> str:
    """One line naming the architectures and presets that estimate rain density."""
    aware = [n for n in models.names() if models.spec(n).density_decoder is not None]
    named = [n for n in presets.names() if presets.get(n).arch in aware]
    return (
        f"density-aware models: {', '.join(aware)}; trained ones by name: {', '.join(named)} "
        f"(e.g. --model {named[0]})"
        if named
        else f"density-aware models: {', '.join(aware)}"
    )


class DensityEstimator:
    """A density-aware model ready to estimate the rain density of many images.

    Only the part of the network that the ``"density"`` output depends on is run (for CRDNet
    and DID-MDN the deraining network is skipped). Each image is prepared as its model expects:

    * Models with a fixed density input size (the registry's ``density_size``: 512 for CRDNet,
      whose classifier's Linear layer needs 512×512, and DID-MDN, whose official pipeline resizes
      every image to 512×512) get the **whole image resized** to that square (bilinear,
      antialiased when shrinking, like the official PIL resizing). Padding would add content
      the classifier never saw, and tiles would each get their own estimate.
    * Other models (CODE-Net) see the whole image, since their estimate pools over all of it;
      images larger than ``max_pixels`` are downscaled (aspect ratio kept) to bound memory,
      then reflect-padded to the model's ``multiple``.

    Args:
        model: a density-aware Keras model built by the registry (or loaded from a tfderain
            ``.keras`` file or an official checkpoint).
        spec: its registry entry; looked up when omitted.
        max_pixels: size limit of the second rule.

    Raises:
        ValueError: the model does not estimate rain density (also when it was built without
            its density output, e.g. ``crdnet`` with ``density=False``).
    """

    def __init__(
        self,
        model: Any,
        spec: models.ModelSpec | None = None,
        *,
        max_pixels: int = DEFAULT_DENSITY_MAX_PIXELS,
    ):
        from tfderain._keras import keras, tf

        self.spec = density_spec(model if spec is None else spec)
        outputs = getattr(model, "output", None)
        outputs = outputs if isinstance(outputs, dict) else {}
        if "density" not in outputs:
            raise ValueError(
                f"model {self.spec.name!r} does not estimate rain density: this one was built "
                "without its density output"
            )
        if int(max_pixels) != max_pixels or max_pixels < 1:
            raise ValueError(f"max_pixels must be a positive integer, got {max_pixels!r}")
        self.max_pixels = int(max_pixels)
        self.processor = dataclasses.replace(
            self.spec.processor, density_max_pixels=self.max_pixels
        )
        branch = keras.Model(model.inputs, outputs["density"], name=f"{model.name}_density")

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
        def predict(batch):
            return tf.cast(branch(batch, training=False), tf.float32)

        self._predict = predict

    def prepare(self, rgb: np.ndarray) -> np.ndarray:
        """The ``(h, w, 3)`` float32 array the density branch gets for an RGB image."""
        rgb = np.asarray(rgb, dtype=np.float32)[None]
        height, width = rgb.shape[1:3]
        target = self.processor.density_target(height, width)
        if tuple(target.numpy()) != (height, width):
            return self.processor.density_input(rgb, target)[0].numpy()
        return self.processor.pad(rgb)[0].numpy()

    def estimate(self, image: np.ndarray) -> Density:
        """The rain density of one image (the forms :func:`estimate_density` accepts)."""
        from tfderain._keras import tf

        batch = self.prepare(io.from_array(image)[0].rgb)[None]
        raw = self._predict(tf.convert_to_tensor(batch)).numpy()[0]
        value, level = self.spec.density_decoder(raw)
        return Density(
            value=float(np.clip(value, 0.0, 1.0)),
            level=models.DENSITY_LEVELS[level],
            model=self.spec.name,
            raw=raw,
        )


def estimate_density(
    image: np.ndarray,
    model: Any = None,
    weights: str | os.PathLike | None = None,
    **options: Any,
) -> Density:
    """Estimate the rain density of one image with a density-aware model.

    Args:
        image: ``(H, W, 3)`` RGB, uint8/uint16 or float in [0, 1]; ``(H, W)`` grayscale and
            ``(H, W, 4)`` RGBA are accepted (alpha is ignored). Any size: see
            :class:`DensityEstimator` for how it is resized or padded for the model.
        model: a ``keras.Model``, a registry name (with ``weights``) or ``None`` for the
            default; it must be density-aware (``codenet``, ``mcodenet``, ``crdnet``,
            ``crdnet_anysize``, ``didmdn``).
        weights: ``.keras`` or official ``.pth`` file for ``model``.
        options: keyword arguments of :class:`DensityEstimator` (``max_pixels``).

    Returns:
        A :class:`Density`: the continuous value in [0, 1] and the level. Each registered
        model's ``density_decoder`` documents how its output maps to both.

    Raises:
        ValueError: the model does not estimate rain density, or the image is not usable.

    For many images, build a :class:`DensityEstimator` once and call its ``estimate``.
    """
    if isinstance(model, str) and model != DEFAULT_MODEL:
        density_spec(model)  # a clear error before any weights are loaded
    net = resolve_model(model, weights)
    return DensityEstimator(net, **options).estimate(image)
