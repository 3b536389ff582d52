"""A model's processing around the network, written once in TF ops.

Every path that runs a model — :mod:`tfderain.inference` (whole images and tiles),
:mod:`tfderain.evaluation` and training's validation, :mod:`tfderain.density_estimation`, the
SavedModel signatures of :mod:`tfderain.export.savedmodel` and the export report — prepares
its input and reads its output through the :class:`Processor` of the model's registry entry
(:attr:`tfderain.models.ModelSpec.processor`):

* **padding**: height and width are reflect-padded at the bottom and right up to the model's
  ``multiple`` (:func:`reflect_pad`, equal to ``np.pad(..., mode="reflect")`` also where the pad
  is wider than the image), and the output is cropped back;
* **tile halo**: the context in pixels that tiles must overlap by (``halo``);
* **the output rule**: how the model's official test script turns its float output into 8 bits
  (:func:`round_output`): ``"truncate"`` (``np.uint8(255 * x)``, PReNet's ``test_PReNet.py``; the
  rule of evaluation protocol A) or ``"round"`` (``skimage.img_as_ubyte``, round half to even,
  MPRNet's and Restormer's scripts; protocol B);
* **density input**: what a density-aware model's density branch sees (the whole image resized to
  ``density_size``, or downscaled to at most ``density_max_pixels`` and padded).

The Android app's Java core is the one deliberate twin (tested against vectors from Python).
"""

from __future__ import annotations

from dataclasses import dataclass

from tfderain._keras import tf

__all__ = [
    "DENSITY_MAX_PIXELS",
    "OUTPUT_RULES",
    "PROTOCOL_RULES",
    "Processor",
    "reflect_pad",
    "round_output",
]

#: Output rules and the evaluation protocol whose official scripts apply each.
OUTPUT_RULES = {"truncate": "A", "round": "B"}
#: The output rule of each evaluation protocol's official scripts.
PROTOCOL_RULES = {protocol: rule for rule, protocol in OUTPUT_RULES.items()}
#: Density estimation downscales larger images of models without a fixed density input size
#: to at most this many pixels.
DENSITY_MAX_PIXELS = 512 * 512


def check_output_rule(rule: str) -> str:
    """``rule`` if it is one of :data:`OUTPUT_RULES`, else a ``ValueError`` listing them."""
    if rule not in OUTPUT_RULES:
        raise ValueError(f"unknown output rule {rule!r}; known: {', '.join(OUTPUT_RULES)}")
    return rule


def round_output(images, rule: str) -> tf.Tensor:
    """Float images nominally in [0, 1] → ``uint8`` by an output rule.

    Clip to [0, 1], multiply by 255 in the input's float precision (float16 and integers are
    computed in float32, as the official scripts' float32 network outputs), then ``"truncate"``
    floors (``np.uint8`` of a non-negative float) and ``"round"`` rounds to nearest with ties to
    even (``np.rint``, as ``img_as_ubyte`` and torch's ``round``; ``tf.round`` does the same).
    """
    check_output_rule(rule)
    images = tf.convert_to_tensor(images)
    dtype = tf.float64 if images.dtype == tf.float64 else tf.float32
    scaled = tf.clip_by_value(tf.cast(images, dtype), 0.0, 1.0) * tf.constant(255.0, dtype)
    scaled = tf.floor(scaled) if rule == "truncate" else tf.round(scaled)
    return tf.cast(scaled, tf.uint8)


def reflect_pad(images, multiple: int, height=None, width=None) -> tf.Tensor:
    """Reflect-pad ``[N, H, W, C]`` at the bottom and right up to a multiple of ``multiple``.

    Equal to ``np.pad(..., mode="reflect")``, including pads wider than the image (the reflection
    repeats) and one-pixel axes (the pixel repeats), which ``tf.pad``'s ``REFLECT`` mode rejects.
    ``height`` and ``width`` (tensors or ints) default to the image's.
    """
    images = tf.convert_to_tensor(images)
    if multiple <= 1:
        return images
    shape = tf.shape(images)
    rows = _reflect_indices(shape[1] if height is None else height, multiple)
    cols = _reflect_indices(shape[2] if width is None else width, multiple)
    return tf.gather(tf.gather(images, rows, axis=1), cols, axis=2)


def _reflect_indices(size, multiple: int) -> tf.Tensor:
    """Source index of every position of an axis of ``size`` padded up to ``multiple``."""
    size = tf.convert_to_tensor(size, tf.int32)
    padded = size + tf.math.floormod(-size, multiple)
    period = tf.maximum(2 * (size - 1), 1)
    index = tf.math.floormod(tf.range(padded), period)
    return tf.where(index < size, index, period - index)


@dataclass(frozen=True)
class Processor:
    """The processing around one model's network (see the module docstring).

    Attributes:
        multiple: height and width the network accepts are multiples of this.
        halo: pixels of context each side that an output pixel depends on noticeably.
        output_rule: ``"truncate"`` or ``"round"`` (:data:`OUTPUT_RULES`).
        density_size: side of the square the density branch was trained on (the whole image is
            resized to it), or ``None`` (the image at its own size, downscaled to at most
            ``density_max_pixels``).
        density_max_pixels: the size limit of the second density rule.
    """

    multiple: int = 1
    halo: int = 32
    output_rule: str = "round"
    density_size: int | None = None
    density_max_pixels: int = DENSITY_MAX_PIXELS

    def __post_init__(self) -> None:
        check_output_rule(self.output_rule)

    def pad(self, images, height=None, width=None) -> tf.Tensor:
        """``[N, H, W, C]`` reflect-padded up to the multiple (:func:`reflect_pad`)."""
        return reflect_pad(images, self.multiple, height, width)

    @staticmethod
    def crop(images, height, width) -> tf.Tensor:
        """The top-left ``height × width`` of ``[N, H', W', C]`` (a padded run cropped back)."""
        return tf.convert_to_tensor(images)[:, :height, :width, :]

    def to_uint8(self, images) -> tf.Tensor:
        """Float output → 8 bits by this model's output rule (:func:`round_output`)."""
        return round_output(images, self.output_rule)

    def density_target(self, height, width) -> tf.Tensor:
        """``[2]`` int32: the size the density branch sees an image of ``height × width`` at."""
        if self.density_size is not None:
            return tf.constant([int(self.density_size)] * 2, tf.int32)
        size = tf.cast(tf.stack([height, width]), tf.int32)
        pixels = tf.cast(size[0] * size[1], tf.float64)
        limit = tf.constant(float(self.density_max_pixels), tf.float64)
        shrunk = tf.cast(tf.floor(tf.cast(size, tf.float64) * tf.sqrt(limit / pixels)), tf.int32)
        return tf.where(pixels > limit, tf.maximum(shrunk, 1), size)

    def density_input(self, images, target) -> tf.Tensor:
        """``[N, h, w, 3]`` resized to ``target`` (bilinear, antialiased when shrinking, like the
        official PIL resizing), clipped to [0, 1] and padded to the multiple."""
        small = tf.image.resize(images, target, method="bilinear", antialias=True)
        return self.pad(tf.clip_by_value(small, 0.0, 1.0))
