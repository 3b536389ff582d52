"""Rain-density estimation with a density-aware model: :class:`DensityEstimator`.

CODE-Net (He et al., "Single Image Deraining with Continuous Rain Density Estimation", 2020),
CRDNet (Peng et al., "Cumulative Rain Density Sensing Network for Single Image Derain", SPL 2020)
and DID-MDN (Zhang & Patel, "Density-aware Single Image De-raining using a Multi-stream Dense
Network", CVPR 2018) predict a rain density besides the derained image. Their registry entries
(:class:`tfderain.models.ModelSpec`) say how that ``"density"`` output reads as a value and a
level (``density_decoder``) and what input it was trained on (``density_size``); the model's
:class:`tfderain.processing.Processor` prepares the image. This module runs the density branch on
images prepared that way, for every caller: :func:`tfderain.estimate_density`, ``tfderain
density`` and the Beam manifest's ``density`` columns (:mod:`tfderain.beam.model`). Naming a
model by registry or preset name and loading its weights stay in :mod:`tfderain.api`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tfderain import io, models, presets, processing
from tfderain._keras import keras, tf

__all__ = [
    "DEFAULT_DENSITY_MAX_PIXELS",
    "Density",
    "DensityEstimator",
    "density_estimator",
    "density_models",
    "density_spec",
]

#: Density estimation downscales larger images of models without a fixed density input size.
DEFAULT_DENSITY_MAX_PIXELS = processing.DENSITY_MAX_PIXELS


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
    """The registry entry of a density-aware model (a registry or preset name, a loaded model or
    its entry).

    Raises:
        ValueError: ``"model X does not estimate rain density"`` for any other model.
    """
    if presets.is_preset_name(model):
        model = presets.get(model).arch
    spec = models.spec(model) if isinstance(model, str) else model
    if not isinstance(spec, models.ModelSpec):
        spec = models.spec_of(model)
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


def _density_output(model: keras.Model) -> Any:
    """The model's ``"density"`` output tensor, or ``None`` when it has none."""
    outputs = getattr(model, "output", None)
    return outputs.get("density") if isinstance(outputs, dict) else None


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
        model: keras.Model,
        spec: models.ModelSpec | None = None,
        *,
        max_pixels: int = DEFAULT_DENSITY_MAX_PIXELS,
    ):
        self.spec = density_spec(model if spec is None else spec)
        output = _density_output(model)
        if output is None:
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
        branch = keras.Model(model.inputs, output, name=f"{model.name}_density")

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

    def estimate_array(self, rgb: np.ndarray) -> Density:
        """The rain density of float32 RGB in [0, 1], ``(H, W, 3)`` (an :class:`io.Image`'s
        ``rgb``)."""
        batch = self.prepare(rgb)[None]
        raw = self._predict(tf.convert_to_tensor(batch)).numpy()[0]
        value, level = self.spec.density_decoder(raw)
        return Density(
            value=float(np.clip(value, 0.0, 1.0)),
            level=models.DENSITY_LEVELS[level],
            model=self.spec.name,
            raw=raw,
        )

    def estimate(self, image: np.ndarray) -> Density:
        """The rain density of one image in the forms :func:`tfderain.estimate_density` accepts
        (uint8/uint16 or float RGB, grayscale or RGBA; alpha is ignored)."""
        return self.estimate_array(io.from_array(image)[0].rgb)


def density_estimator(
    model: keras.Model, spec: models.ModelSpec | None = None, **options: Any
) -> DensityEstimator | None:
    """A :class:`DensityEstimator` of ``model`` when it estimates rain density, else ``None``
    (a model whose architecture has no density decoder, or one built without its density output).

    ``options`` are the keyword arguments of :class:`DensityEstimator`.
    """
    spec = models.spec_of(model) if spec is None else spec
    if spec.density_decoder is None or _density_output(model) is None:
        return None
    return DensityEstimator(model, spec, **options)
