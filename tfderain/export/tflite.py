"""TFLite export: float32, float16, dynamic-range int8, full-integer int8 PTQ and QAT int8.

:func:`export_tflite` writes ``<name>.tflite`` and its ``<name>.json`` descriptor
(:mod:`tfderain.export.descriptor`); :func:`to_flatbuffer` converts a model to the bytes of the
file. Only TFLite built-in kernels are allowed (``TFLITE_BUILTINS``, plus
``TFLITE_BUILTINS_INT8`` for ``int8``), so no file needs the Flex delegate
(:mod:`tfderain.export.flatbuffer` lists a file's operators and checks them;
:mod:`tfderain.export.runtime` runs a file beside its Keras model).

Quantization modes (TFLite post-training quantization guide; Jacob et al., CVPR 2018 for QAT):

* ``none``: float32 weights and activations.
* ``fp16``: float16 weights, dequantized to float32 at load time (half the file size).
* ``dynamic``: int8 weights (tensors of at least 1024 elements; smaller ones stay float32),
  float activations; kernels quantize activations on the fly.
* ``int8``: full-integer post-training quantization, calibrated on a representative dataset (a
  folder of images, or synthetic rain on scikit-image's photos:
  :mod:`tfderain.export.calibration_data`); ranges narrower than
  :data:`~tfderain.export.calibration.MIN_RANGE` are widened and normalisation statistics stay
  float (:mod:`tfderain.export.calibration`), so that LiteRT can prepare every file.
* ``qat``: quantization-aware fine-tuning (:mod:`tfderain.export.qat`), then int8 conversion
  with the learned ranges.

I/O types: float32 in and out for every mode by default (int8 models quantize the input and
dequantize the outputs inside the graph, so apps feed the same [0, 1] floats). ``uint8_io=True``
(``int8``/``qat`` only) makes the input and outputs uint8 tensors. The input range is set to
[0, 1] whatever the calibration images reached
(:func:`~tfderain.export.calibration_data.with_black_and_white`,
:func:`tfderain.export.qat.pin_input_range`), so the input scale is 1/255 with zero point 0 and
apps feed raw RGB bytes, unless the converter ties the input to a wider tensor's scale (PReNet
concatenates it with its stage estimates); the descriptor holds the input's and outputs' scale
and zero point.

The exported graph has one input ``rainy`` (``[1, H, W, 3]`` for a tile, ``[1, -1, -1, 3]`` when
dynamic) and the outputs of :mod:`tfderain.export.outputs` (``derained``, plus ``density`` for
density-aware models). A dynamic-size graph has its transposed convolutions as sub-pixel
convolutions (:func:`tfderain.export.rewrite.with_subpixel_convolutions`), so that LiteRT's
XNNPACK delegate runs them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path
from typing import Any

from tfderain import models
from tfderain._keras import keras, tf
from tfderain.export.calibration import keeping_ranges_valid
from tfderain.export.calibration_data import qat_pairs, representative_images, with_black_and_white
from tfderain.export.descriptor import (
    build_descriptor,
    descriptor_path,
    tensor_entries,
    write_json_atomically,
)
from tfderain.export.errors import ExportError
from tfderain.export.options import (
    DYNAMIC_CALIBRATION_SIZE,
    INTEGER_QUANTIZATIONS,
    QAT_TARGETS,
    QUANTIZATIONS,
    QATSettings,
    TFLiteOptions,
)
from tfderain.export.outputs import export_outputs
from tfderain.export.rewrite import with_leaky_relus, with_subpixel_convolutions
from tfderain.export.runtime import interpreter, signature_names
from tfderain.io import write_bytes_atomically


def qat_settings(
    model: keras.Model | str,
    *,
    steps: int | None = None,
    batch_size: int | None = None,
    patch_size: int | None = None,
    tile: tuple[int, int] | None = None,
) -> QATSettings:
    """The QAT fine-tune of ``model`` (a model or a registry name): each value given here, else
    the model's recipe in the registry (:attr:`tfderain.models.ModelSpec.qat_recipe`, e.g.
    PReNet's 600 steps of one 256×256 patch), else the defaults of :class:`QATSettings`.

    The patch side is rounded down to the model's multiple; a fixed ``tile`` smaller than the
    patch is fine-tuned whole. Raises :class:`ExportError` for negative steps, fewer than one
    patch per step or a patch side below the model's multiple.
    """
    if isinstance(model, str):
        arch, entry = model, models.spec(model)
    else:
        arch, _, entry = _registry_entry(model)
    given = {"steps": steps, "batch_size": batch_size, "patch_size": patch_size}
    given = {name: value for name, value in given.items() if value is not None}
    settings = QATSettings(**{**entry.qat_recipe, **given})
    if settings.steps < 0:
        raise ExportError(f"qat_steps must be a non-negative integer, got {settings.steps}")
    if settings.batch_size < 1:
        raise ExportError(f"qat_batch_size must be at least 1, got {settings.batch_size}")
    multiple = int(entry.multiple)
    if settings.patch_size < multiple:
        raise ExportError(
            f"qat_patch_size must be at least {multiple} for {arch!r}, got {settings.patch_size}"
        )
    patch = min([*(tile or ()), settings.patch_size])
    return dataclasses.replace(settings, patch_size=patch - patch % multiple)


# ------------------------------------------------------------------------------- conversion


def _registry_entry(model: keras.Model) -> tuple[str, dict[str, Any], models.ModelSpec]:
    found = models.identity(model)
    if found is None:
        return model.name, {}, models.UNREGISTERED
    return found.arch, dict(found.config), found.spec


def _signature(graph: keras.Model, names: list[str], shape: list) -> Any:
    """The concrete function ``rainy → {name: output}`` converted to TFLite."""

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name="rainy")])
    def serve(rainy):
        out = graph(rainy, training=False)
        out = out if isinstance(out, (list, tuple)) else [out]
        return {name: tf.cast(t, tf.float32) for name, t in zip(names, out, strict=True)}

    return serve.get_concrete_function()


def _converter(function: Any, graph: keras.Model) -> tf.lite.TFLiteConverter:
    """A converter of ``function`` (whose variables are ``graph``'s) with built-in ops only.

    The converter saves its trackable with the function as a SavedModel signature; if that
    save fails it silently falls back to a path that drops the signature (names ``rainy`` /
    ``derained``). Saving a TFMOT model fails for some layers (the quantize wrapper of
    ``Conv2DTranspose`` leaves a traced kernel tensor behind), so the trackable is a plain
    module holding the variables only: nothing but the signature function is traced.
    """
    holder = tf.Module()
    holder.variables_of_the_model = list(graph.variables)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], holder)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter


def _check_args(quant: str, tile: Any, uint8_io: bool, multiple: int, name: str) -> Any:
    if quant not in QUANTIZATIONS:
        known = ", ".join(QUANTIZATIONS)
        raise ExportError(f"unknown quantization {quant!r}; choose one of {known}")
    if uint8_io and quant not in INTEGER_QUANTIZATIONS:
        raise ExportError(f"uint8 I/O needs an integer model (int8 or qat), not {quant!r}")
    if tile is None:
        return None
    if isinstance(tile, int):
        tile = (tile, tile)
    tile = tuple(int(t) for t in tile)
    if len(tile) != 2 or min(tile) < 1 or tile[0] % multiple or tile[1] % multiple:
        raise ExportError(
            f"tile must be (height, width), positive multiples of {multiple} for {name!r}; "
            f"got {tile}"
        )
    return tile


def to_flatbuffer(model: keras.Model, options: TFLiteOptions) -> tuple[bytes, list[str]]:
    """The ``.tflite`` bytes of ``model`` and its output names (see :func:`export_tflite`)."""
    o = options
    quant, seed = o.quant, o.seed
    arch, _, entry = _registry_entry(model)
    tile = _check_args(quant, o.tile, o.uint8_io, int(entry.multiple), arch)
    if o.qat_keep_float and quant != "qat":
        raise ExportError(f"layers kept in float32 need quant='qat', not {quant!r}")
    if seed < 0:
        raise ExportError(f"seed must be a non-negative integer, got {seed}")
    sizes = {"steps": o.qat_steps, "batch_size": o.qat_batch_size, "patch_size": o.qat_patch_size}
    fine_tune = qat_settings(model, **sizes, tile=tile)
    graph, names = export_outputs(model)
    if tile is None:  # runtime output shapes would keep TRANSPOSE_CONV out of XNNPACK
        graph = with_subpixel_convolutions(graph)
    shape = [1, *(tile if tile else (None, None)), 3]
    calib = tile or (DYNAMIC_CALIBRATION_SIZE, DYNAMIC_CALIBRATION_SIZE)
    calib = tuple(-(-c // entry.multiple) * entry.multiple for c in calib)
    if quant == "qat":
        from tfderain.export import qat

        if o.qat_target not in QAT_TARGETS:
            raise ExportError(f"unknown QAT target {o.qat_target!r}; choose one of {QAT_TARGETS}")
        teacher = keras.Model(graph.inputs, graph.outputs[0]) if o.qat_target == "teacher" else None
        graph = qat.quantize_model(graph, o.qat_keep_float)
        qat.finetune(
            graph,
            qat_pairs(o.qat_data, fine_tune.patch_size, seed, fine_tune.batch_size),
            steps=fine_tune.steps,
            loss=o.qat_loss,
            teacher=teacher,
        )
    elif quant == "int8":
        graph = with_leaky_relus(graph)
    converter = _converter(_signature(graph, names, shape), graph)
    if quant != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quant == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif quant == "int8":
        images = representative_images(o.representative, calib, o.samples, seed)
        images = with_black_and_white(images)
        converter.representative_dataset = lambda: ([image[None]] for image in images)
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
            tf.lite.OpsSet.TFLITE_BUILTINS,
        ]
    if o.uint8_io:
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    guard = keeping_ranges_valid(graph) if quant == "int8" else contextlib.nullcontext()
    try:
        with guard:
            data = converter.convert()
    except Exception as exc:  # the converter raises many types, all with long messages
        first = " ".join(str(exc).split())[:300]
        raise ExportError(f"{arch}: TFLite conversion ({quant}) failed: {first}") from exc
    return data, names


def export_tflite(
    model: keras.Model,
    path: str | os.PathLike,
    options: TFLiteOptions | None = None,
    **fields: Any,
) -> Path:
    """Export ``model`` to a ``.tflite`` file and write its descriptor beside it.

    Args:
        model: a model built by the registry (or loaded/converted); its ``derained`` (and
            ``density``) outputs are exported.
        path: the ``.tflite`` file; the descriptor goes to ``<stem>.json`` in the same folder.
        options: the export's :class:`~tfderain.export.options.TFLiteOptions` (quantization,
            tile, calibration and QAT fine-tune); ``fields`` replace single ones, e.g.
            ``export_tflite(model, path, quant="int8", tile=None)``.

    Returns:
        The path of the written ``.tflite`` file. Both files are written atomically.
    """
    path = Path(path)
    if path.suffix != ".tflite":
        raise ExportError(f"{path}: TFLite files must end in .tflite")
    try:
        options = dataclasses.replace(options or TFLiteOptions(), **fields)
    except TypeError as exc:
        raise ExportError(f"export_tflite: {exc}") from None
    arch, config, entry = _registry_entry(model)
    tile_hw = _check_args(options.quant, options.tile, options.uint8_io, int(entry.multiple), arch)
    data, _ = to_flatbuffer(model, dataclasses.replace(options, tile=tile_hw))
    runtime = interpreter(data)
    in_names, out_names = signature_names(runtime.get_signature_runner())
    descriptor = build_descriptor(
        model=arch,
        config=config,
        file=path.name,
        data=data,
        quantization=options.quant,
        tile=tile_hw,
        multiple=entry.multiple,
        halo=entry.halo,
        inputs=tensor_entries(runtime.get_input_details(), in_names),
        outputs=tensor_entries(runtime.get_output_details(), out_names),
        source=getattr(models.identity(model), "source", None),
    )
    write_bytes_atomically(path, data)
    write_json_atomically(descriptor_path(path), descriptor)
    return path
