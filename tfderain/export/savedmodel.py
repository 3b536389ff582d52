"""SavedModel export for TensorFlow Serving.

:func:`export_savedmodel` writes a float32 SavedModel of a tfderain model with three signatures
that take whole images of any size and do everything inside the graph, so a serving client needs
nothing from tfderain:

``serving_default``
    ``images``: float32 ``[N, H, W, 3]`` RGB in [0, 1] → ``derained``: float32 ``[N, H, W, 3]``
    clipped to [0, 1].
``derain_uint8``
    ``images``: uint8 ``[N, H, W, 3]`` → ``derained``: uint8, quantized by the model's official
    rule (the registry ``quantize``: ``"round"`` to nearest with ties to even, or ``"truncate"``;
    the same arithmetic as :func:`tfderain.metrics.quantize_output`).
``derain_image_bytes``
    ``images``: a scalar or ``[N]`` string tensor of encoded images (PNG, JPEG, GIF or BMP; gray
    and RGBA are decoded to RGB) → ``derained_bytes``: PNG bytes of the same shape. With JSON over
    REST the bytes are sent as ``{"b64": "..."}``; TF Serving's REST API answers with
    ``{"b64": "..."}`` for outputs whose name ends in ``_bytes``, hence the name. Images of one
    batch may differ in size.

Density-aware models (registry ``density_aware``) add a ``density`` output to every signature:
one row per image holding the raw ``"density"`` output of the model (CODE-Net: the RDE ``[N]``;
CRDNet: 3 cumulative scores ``[N, 3]``; DID-MDN: 4 logits ``[N, 4]``), computed on the image
prepared by the model's :class:`tfderain.processing.Processor` exactly as
:class:`tfderain.api.DensityEstimator` prepares it (resized to the model's ``density_size``, or
downscaled above ``DENSITY_MAX_PIXELS``, then padded). The registry's
``density_decoder`` (named in ``tfderain.json``) turns one row into the value and level that
:func:`tfderain.estimate_density` reports: ``spec.density_decoder(row)``.

Height and width are reflect-padded at the bottom and right up to the model's ``multiple`` and
cropped back, as :mod:`tfderain.inference` does, so any size works. Inputs are checked in the graph:
a wrong rank, channel count or an empty image fails with an ``InvalidArgument`` error that says
what was expected. The images run through the network whole (no tiling): memory grows with the
image size, so bound request sizes at the server.

The SavedModel's ``assets.extra/tfderain.json`` names the architecture, its config, the tfderain
version and the signatures. The directory is written under a temporary name beside the target and
renamed into place. ``version=N`` writes the ``DIR/N/`` layout that TF Serving's
``--model_base_path=DIR`` expects.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tfderain import models
from tfderain._keras import keras, tf
from tfderain._version import __version__
from tfderain.io import atomic_directory

#: Name of the metadata file in the SavedModel's ``assets.extra/``.
METADATA = "tfderain.json"
#: The signatures every export has; the first is TF Serving's default.
SIGNATURES = ("serving_default", "derain_uint8", "derain_image_bytes")
#: What each signature's tensors hold (written to ``tfderain.json``; the graph takes any rank
#: and checks it, so the SavedModel's own signature shapes are unknown).
SIGNATURE_LAYOUTS = {
    "serving_default": {
        "images": "float32 [N, H, W, 3] RGB in [0, 1]",
        "derained": "float32 [N, H, W, 3] in [0, 1]",
    },
    "derain_uint8": {
        "images": "uint8 [N, H, W, 3] RGB",
        "derained": "uint8 [N, H, W, 3]",
    },
    "derain_image_bytes": {
        "images": "string [] or [N]: encoded PNG/JPEG/GIF/BMP (gray and RGBA become RGB)",
        "derained_bytes": "string, same shape: PNG bytes",
    },
}
#: The ``density`` output of density-aware models, in every signature.
DENSITY_LAYOUT = "float32 [N, ...] (string input: its shape + ...): the model's raw density output"


# ------------------------------------------------------------------------------ graph pieces


def _check_images(images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """``(images, height, width)`` after in-graph checks of an ``[N, H, W, 3]`` batch.

    A bad batch fails with an InvalidArgument error saying what was expected. The conditions never
    index past the actual rank (the shape is extended with zeros), and height and width are
    returned from the checked shape so that nothing downstream can run before the checks.
    """
    rank = tf.rank(images)
    shape = tf.shape(images)
    dims = tf.concat([shape, tf.zeros([4], tf.int32)], axis=0)
    is_batch = tf.equal(rank, 4)
    checks = [
        tf.debugging.Assert(is_batch, ["images must have rank 4 [N, H, W, 3]; got shape", shape]),
        tf.debugging.Assert(
            tf.logical_or(tf.logical_not(is_batch), tf.equal(dims[3], 3)),
            ["images must have 3 (RGB) channels in [N, H, W, 3]; got shape", shape],
        ),
        tf.debugging.Assert(
            tf.logical_or(tf.logical_not(is_batch), tf.logical_and(dims[1] > 0, dims[2] > 0)),
            ["images must have a height and width of at least 1; got shape", shape],
        ),
    ]
    with tf.control_dependencies(checks):
        # A reshape, not tf.ensure_shape: the optimizer takes an EnsureShape's shape as given
        # and would fold the rank check away.
        checked = tf.reshape(images, tf.stack([dims[0], dims[1], dims[2], 3]))
        return checked, tf.identity(dims[1]), tf.identity(dims[2])


class _Plain:
    """Holds the Keras model outside the tracked object graph: only its variables are saved."""

    def __init__(self, model: keras.Model):
        self.model = model


class _ServingModule(tf.Module):
    """The exported object: the model's variables and the signature functions."""

    def __init__(self, model: keras.Model, spec: Any):
        super().__init__(name="tfderain")
        self._plain = _Plain(model)
        self.model_variables = list(model.variables)
        self._processor = spec.processor
        outputs = model.output if isinstance(model.output, dict) else {}
        self._density = spec.density_aware and "density" in outputs
        if self._density:
            self._plain.branch = keras.Model(model.inputs, outputs["density"])
        # One traced network shared by every signature (tracing dominates the export time).
        self._derain = tf.function(
            self._run, input_signature=[tf.TensorSpec(None, tf.float32, name="images")]
        )

    # ----- the core: a checked float batch in, a dict of float outputs

    def _run(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        images, height, width = _check_images(images)
        padded = self._processor.pad(images, height, width)
        out = self._plain.model(padded, training=False)
        out = out if isinstance(out, dict) else {"derained": out}
        derained = self._processor.crop(tf.cast(out["derained"], tf.float32), height, width)
        result = {"derained": tf.clip_by_value(derained, 0.0, 1.0)}
        if self._density:
            whole = tf.cast(out["density"], tf.float32)
            result["density"] = self._density_of(images, height, width, whole)
        return result

    def _density_of(self, images, height, width, whole: tf.Tensor) -> tf.Tensor:
        """The density output as :class:`tfderain.api.DensityEstimator` computes it."""
        target = self._processor.density_target(height, width)
        same = tf.reduce_all(tf.equal(target, tf.stack([height, width])))

        def resized():
            small = self._processor.density_input(images, target)
            return tf.cast(self._plain.branch(small, training=False), tf.float32)

        return tf.cond(same, lambda: whole, resized)

    # ----- the signatures

    @tf.function(input_signature=[tf.TensorSpec(None, tf.float32, name="images")])
    def serve_float(self, images):
        return self._derain(images)

    @tf.function(input_signature=[tf.TensorSpec(None, tf.uint8, name="images")])
    def serve_uint8(self, images):
        out = self._derain(tf.cast(images, tf.float32) / 255.0)
        out["derained"] = self._processor.to_uint8(out["derained"])
        return out

    @tf.function(input_signature=[tf.TensorSpec(None, tf.string, name="images")])
    def serve_bytes(self, images):
        checks = [
            tf.debugging.Assert(
                tf.rank(images) <= 1,
                ["images must be a scalar or [N] string tensor; got shape", tf.shape(images)],
            )
        ]
        with tf.control_dependencies(checks):
            flat = tf.reshape(images, [-1])

        def one(data):
            rgb = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)
            out = self._derain(tf.cast(rgb, tf.float32)[None] / 255.0)
            png = tf.io.encode_png(self._processor.to_uint8(out["derained"])[0])
            return (png, out["density"][0]) if self._density else png

        if self._density:
            density_spec = tf.TensorSpec(self._density_row_shape(), tf.float32)
            signature = (tf.TensorSpec([], tf.string), density_spec)
        else:
            signature = tf.TensorSpec([], tf.string)
        mapped = tf.map_fn(one, flat, fn_output_signature=signature)
        png, density = mapped if self._density else (mapped, None)
        out = {"derained_bytes": tf.reshape(png, tf.shape(images))}
        if self._density:
            shape = tf.concat([tf.shape(images), tf.shape(density)[1:]], axis=0)
            out["density"] = tf.reshape(density, shape)
        return out

    def _density_row_shape(self) -> list[int | None]:
        shape = self._plain.branch.output_shape
        return list(shape[1:])


# ---------------------------------------------------------------------------------- export


def export_savedmodel(
    model: keras.Model,
    directory: str | os.PathLike,
    *,
    overwrite: bool = False,
    version: int | None = None,
) -> Path:
    """Write ``model`` as a float32 SavedModel for TF Serving (see the module docstring).

    Args:
        model: a model built by the registry (``tfderain.build_model``, ``load_model``, or
            training); a mixed-precision model is rebuilt in float32 with its weights.
        directory: the SavedModel directory, or with ``version`` the model base directory.
        overwrite: replace an existing SavedModel; otherwise an existing one is an error.
        version: write ``directory/<version>/`` (TF Serving's versioned layout).

    Returns:
        The directory holding ``saved_model.pb``.
    """
    found = models.require_identity(model, "a SavedModel export")
    target = Path(directory)
    if version is not None:
        if isinstance(version, bool) or int(version) != version or version < 0:
            raise ValueError(f"version must be a non-negative integer, got {version!r}")
        target = target / str(int(version))
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"{target}: already exists (overwrite=True, or --overwrite, replaces it)"
        )
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{target}: exists and is not a directory")

    spec = found.spec
    net = models.float32_copy(model)
    module = _ServingModule(net, spec)
    signatures = {
        "serving_default": module.serve_float.get_concrete_function(),
        "derain_uint8": module.serve_uint8.get_concrete_function(),
        "derain_image_bytes": module.serve_bytes.get_concrete_function(),
    }
    meta = {
        "arch": found.arch,
        "config": dict(found.config),
        **({"source": dict(found.source)} if found.source else {}),
        "tfderain_version": __version__,
        "multiple": int(spec.multiple),
        "quantize": spec.output_rule,
        "signatures": {name: _describe(name, fn) for name, fn in signatures.items()},
    }
    if module._density:  # noqa: SLF001
        decoder = spec.density_decoder
        meta["density"] = {
            "decoder": f"{decoder.__module__}.{decoder.__qualname__}",
            "levels": list(_density_levels()),
            "density_size": spec.density_size,
        }

    with atomic_directory(target) as tmp:
        tf.saved_model.save(module, os.fspath(tmp), signatures=signatures)
        extra = tmp / "assets.extra"
        extra.mkdir(exist_ok=True)
        (extra / METADATA).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return target


def read_metadata(directory: str | os.PathLike) -> dict[str, Any]:
    """The ``tfderain.json`` of an exported SavedModel directory."""
    path = Path(directory) / "assets.extra" / METADATA
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{directory}: not a tfderain SavedModel (no {path.name})") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: unreadable ({exc})") from None


def _describe(name: str, fn: Any) -> dict[str, Any]:
    """Inputs and outputs of a concrete signature function as ``{name: {dtype, shape}}``."""

    layout = {**SIGNATURE_LAYOUTS[name], "density": DENSITY_LAYOUT}

    def entry(key: str, spec: tf.TensorSpec) -> dict[str, Any]:
        return {"dtype": spec.dtype.name, "layout": layout[key]}

    inputs = {s.name: entry(s.name, s) for s in fn.structured_input_signature[0]}
    outputs = {k: entry(k, s) for k, s in fn.structured_outputs.items()}
    return {"inputs": inputs, "outputs": outputs}


def _density_levels() -> tuple[str, ...]:
    from tfderain.models import DENSITY_LEVELS

    return DENSITY_LEVELS


__all__ = [
    "METADATA",
    "SIGNATURES",
    "export_savedmodel",
    "read_metadata",
]
