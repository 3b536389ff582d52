"""The public Python API, re-exported by :mod:`tfderain`."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from tfderain import models, presets

#: The bundled default model (trained by tfderain on synthetic rain; see the README).
DEFAULT_MODEL = "default"
#: Density estimation downscales larger images of models without a fixed density input size.
DEFAULT_DENSITY_MAX_PIXELS = 512 * 512


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
        preset = presets.get(path)
        if arch is not None and arch != preset.arch:
            raise ValueError(f"preset {path}: holds a {preset.arch!r} model, not {arch!r}")
        if overrides:
            raise ValueError(f"preset {path}: config overrides apply to official checkpoints only")
        return presets.load(path)
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


def resolve_model(model: Any = None, weights: str | os.PathLike | None = None):
    """A Keras model from the forms the CLI and :func:`derain` accept.

    ``model`` may be a ``keras.Model`` (used as is), ``None``/``"default"`` (the bundled default),
    a preset name (``"prenet:rain100h"``) or a registry name, in which case ``weights``
    (``.keras``, official ``.pth`` or a preset name) is required.
    """
    if model is not None and not isinstance(model, str):
        return model
    if weights is not None:
        arch = None if model in (None, DEFAULT_MODEL) else model
        return load_model(weights, arch=arch)
    if model in (None, DEFAULT_MODEL):
        return load_model(default_model_path())
    if presets.is_preset_name(model):
        return load_model(model)
    models.spec(model)  # unknown names fail here with the list of known ones
    raise ValueError(
        f"model {model!r} needs weights: an official checkpoint (.pth) or a converted .keras file"
    )


def model_spec(model) -> models.ModelSpec:
    """The registry entry a loaded model was built from."""
    arch = getattr(model, "_tfderain_arch", None)
    if arch is None:
        return models.ModelSpec(name=model.name, builder=lambda: model)
    return models.spec(arch)


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
    spec = models.spec(model) if isinstance(model, str) else model
    if not isinstance(spec, models.ModelSpec):
        spec = model_spec(model)
    if spec.density_decoder is None:
        aware = [n for n in models.names() if models.spec(n).density_decoder is not None]
        raise ValueError(
            f"model {spec.name!r} does not estimate rain density; "
            f"density-aware models: {', '.join(aware)}"
        )
    return spec


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
        branch = keras.Model(model.inputs, outputs["density"], name=f"{model.name}_density")

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
        def predict(batch):
            return tf.cast(branch(batch, training=False), tf.float32)

        self._predict = predict

    def prepare(self, rgb: np.ndarray) -> np.ndarray:
        """The ``(h, w, 3)`` float32 array the density branch gets for an RGB image."""
        from tfderain._keras import tf

        rgb = np.asarray(rgb, dtype=np.float32)
        height, width = rgb.shape[:2]
        size = self.spec.density_size
        if size is not None:
            target = (int(size), int(size))
        elif height * width > self.max_pixels:
            scale = math.sqrt(self.max_pixels / (height * width))
            target = (max(1, int(height * scale)), max(1, int(width * scale)))
        else:
            target = (height, width)
        if target != (height, width):
            resized = tf.image.resize(rgb, target, method="bilinear", antialias=True)
            rgb = np.clip(resized.numpy(), 0.0, 1.0)
        multiple = int(self.spec.multiple)
        pad_h, pad_w = -rgb.shape[0] % multiple, -rgb.shape[1] % multiple
        if pad_h or pad_w:
            rgb = np.pad(rgb, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect")
        return rgb

    def estimate(self, image: np.ndarray) -> Density:
        """The rain density of one image (the forms :func:`estimate_density` accepts)."""
        from tfderain._keras import tf

        batch = self.prepare(_as_rgb(image))[None]
        raw = self._predict(tf.convert_to_tensor(batch)).numpy()[0]
        value, level = self.spec.density_decoder(raw)
        return Density(
            value=float(np.clip(value, 0.0, 1.0)),
            level=models.DENSITY_LEVELS[level],
            model=self.spec.name,
            raw=raw,
        )


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` float32 RGB in [0, 1] from the image forms :func:`derain` accepts."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        rgb = image.astype(np.float32) / 255.0
    elif image.dtype == np.uint16:
        rgb = image.astype(np.float32) / 65535.0
    elif np.issubdtype(image.dtype, np.floating):
        rgb = image.astype(np.float32)
    else:
        raise ValueError(f"unsupported image dtype {image.dtype} (use uint8, uint16 or float)")
    if image.ndim == 3 and image.shape[2] == 1:
        rgb = rgb[:, :, 0]
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    elif rgb.ndim == 3 and rgb.shape[2] == 4:
        rgb = rgb[:, :, :3]
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ValueError(
            f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {image.shape}"
        )
    return rgb


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
