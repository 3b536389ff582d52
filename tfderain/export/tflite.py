"""TFLite export: float32, float16, dynamic-range int8, full-integer int8 PTQ and QAT int8.

:func:`export_tflite` writes ``<name>.tflite`` and its ``<name>.json`` model spec
(:mod:`tfderain.export.spec`). Only TFLite built-in kernels are allowed (``TFLITE_BUILTINS``,
plus ``TFLITE_BUILTINS_INT8`` for ``int8``), so no file needs the Flex delegate;
:func:`operators` lists a file's operators and :func:`is_flex_free` checks them.

Quantization modes (TFLite post-training quantization guide; Jacob et al., CVPR 2018 for QAT):

* ``none``: float32 weights and activations.
* ``fp16``: float16 weights, dequantized to float32 at load time (half the file size).
* ``dynamic``: int8 weights (tensors of at least 1024 elements; smaller ones stay float32),
  float activations; kernels quantize activations on the fly.
* ``int8``: full-integer post-training quantization, calibrated on a representative dataset (a
  folder of images, or synthetic rain on scikit-image's photos); ranges narrower than
  :data:`~tfderain.export.calibration.MIN_RANGE` are widened and normalisation statistics stay
  float (:mod:`tfderain.export.calibration`), so that LiteRT can prepare every file.
* ``qat``: quantization-aware fine-tuning (:mod:`tfderain.export.qat`), then int8 conversion
  with the learned ranges.

I/O types: float32 in and out for every mode by default (int8 models quantize the input and
dequantize the outputs inside the graph, so apps feed the same [0, 1] floats). ``uint8_io=True``
(``int8``/``qat`` only) makes the input and outputs uint8 tensors. The input range is set to
[0, 1] whatever the calibration images reached (:func:`with_black_and_white`,
:func:`tfderain.export.qat.pin_input_range`), so the input scale is 1/255 with zero point 0 and
apps feed raw RGB bytes, unless the converter ties the input to a wider tensor's scale (PReNet
concatenates it with its stage estimates); the spec holds the input's and outputs' scale and
zero point.

The exported graph has one input ``rainy`` (``[1, H, W, 3]`` for a tile, ``[1, -1, -1, 3]`` when
dynamic) and the outputs ``derained`` (plus ``density`` for density-aware models); other Keras
outputs (``stages``, ``rain``) are left out. A dynamic-size graph has its transposed
convolutions as sub-pixel convolutions (:func:`tfderain.export.rewrite.with_subpixel_convolutions`),
so that LiteRT's XNNPACK delegate runs them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tfderain import models
from tfderain._keras import keras, tf
from tfderain.export import spec as spec_io
from tfderain.export.calibration import keeping_ranges_valid
from tfderain.export.errors import ExportError
from tfderain.export.options import (
    DEFAULT_QAT_BATCH_SIZE,
    DYNAMIC_CALIBRATION_SIZE,
    INTEGER_QUANTIZATIONS,
    QAT_TARGETS,
    QUANTIZATIONS,
    QATSettings,
    TFLiteOptions,
)
from tfderain.export.rewrite import with_leaky_relus, with_subpixel_convolutions

#: Logical outputs kept in the exported graph, in this order.
EXPORTED_OUTPUTS = ("derained", "density")


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


# --------------------------------------------------------------------------------- model graph


def export_outputs(model: keras.Model) -> tuple[keras.Model, list[str]]:
    """A single-input functional model with the outputs apps use, and their names.

    ``derained`` always (a model returning a plain tensor is taken as its ``derained``), then
    ``density`` for density-aware models. The layers are shared with ``model``.
    """
    outputs = model.output
    if not isinstance(outputs, dict):
        outputs = {"derained": outputs}
    if "derained" not in outputs:
        raise ExportError(f"model {model.name!r} has no 'derained' output: {sorted(outputs)}")
    if len(model.inputs) != 1:
        raise ExportError(f"model {model.name!r} has {len(model.inputs)} inputs; expected 1")
    names = [n for n in EXPORTED_OUTPUTS if n in outputs]
    graph = keras.Model(model.inputs, [outputs[n] for n in names], name=f"{model.name}_export")
    return graph, names


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


# ------------------------------------------------------------------------------------ data


def _photos() -> list[np.ndarray]:
    from tfderain.data.photos import skimage_photos

    return skimage_photos()


def _synthetic(size: int, batch_size: int, seed: int) -> tf.data.Dataset:
    """Synthetic rain on the photos, each batch's first rainy patch holding one black and one
    white pixel (as :func:`with_black_and_white` does for int8 calibration): the QAT input range
    is then calibrated to [0, 1] whatever the rain's veil does to the photos' contrast."""
    from tfderain.data.pipeline import synthetic_dataset

    def black_and_white(batch: dict) -> dict:
        corners = tf.constant([[0, 0, 0], [0, size - 1, size - 1]])
        values = tf.constant([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
        rainy = tf.tensor_scatter_nd_update(batch["rainy"], corners, values)
        return {**batch, "rainy": rainy}

    stream = synthetic_dataset(_photos(), patch_size=size, batch_size=batch_size, seed=seed)
    return stream.map(black_and_white)


def _folder_crops(
    folder: Path, size: tuple[int, int], samples: int, seed: int
) -> Iterator[np.ndarray]:
    """Random ``size`` crops of the images in ``folder`` (bad files skipped and reported).

    A paired dataset folder (:mod:`tfderain.data.layouts`) contributes its rainy images, any
    other folder the images directly inside it.
    """
    from tfderain.data.layouts import LayoutError, find_pairs
    from tfderain.io import ImageError, find_images, read_image

    try:
        files, failed = [p.rainy for p in find_pairs(folder)], []
    except LayoutError:
        files, failed = find_images([folder])
    images = []
    for path in files:
        try:
            images.append(read_image(path).rgb)
        except ImageError as exc:
            failed.append((str(path), str(exc)))
    for path, cause in failed:
        print(f"tfderain: skipped representative image {path}: {cause}", flush=True)
    if not images:
        raise ExportError(f"{folder}: no readable images for the representative dataset")
    rng = np.random.default_rng(seed)
    height, width = size
    for i in range(samples):
        image = images[i % len(images)]
        ph, pw = max(0, height - image.shape[0]), max(0, width - image.shape[1])
        if ph or pw:
            image = np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="symmetric")
        y = rng.integers(image.shape[0] - height + 1)
        x = rng.integers(image.shape[1] - width + 1)
        yield np.ascontiguousarray(image[y : y + height, x : x + width], dtype=np.float32)


def representative_images(
    source: str | os.PathLike | None, size: tuple[int, int], samples: int, seed: int = 0
) -> list[np.ndarray]:
    """``samples`` float32 ``(H, W, 3)`` images calibrating int8: crops of a folder's images, or
    synthetic rain on scikit-image's photos (``source`` ``None`` or ``"synthetic"``)."""
    if source is None or str(source) == "synthetic":
        if size[0] != size[1]:
            raise ExportError(f"synthetic calibration needs a square tile, got {size}")
        ds = _synthetic(size[0], 1, seed).take(samples)
        return [batch["rainy"].numpy()[0] for batch in ds]
    folder = Path(source)
    if not folder.is_dir():
        raise ExportError(f"{folder}: representative dataset folder does not exist")
    return list(_folder_crops(folder, size, samples, seed))


def with_black_and_white(images: list[np.ndarray]) -> list[np.ndarray]:
    """``images`` whose first has one black and one white pixel (a copy; the rest unchanged).

    The calibrated input range is then exactly [0, 1], the range of every image: a white pixel
    is not clipped because no calibration image happened to reach 1, and the input of an int8
    file gets scale 1/255 and zero point 0 (uint8 apps feed raw RGB bytes) unless the converter
    ties it to a wider tensor's scale (module docstring).
    """
    if not images:
        return images
    first = np.array(images[0], np.float32, copy=True)
    first[0, 0], first[-1, -1] = 0.0, 1.0
    return [first, *images[1:]]


def qat_pairs(
    source: str | os.PathLike | None,
    size: int,
    seed: int = 0,
    batch_size: int = DEFAULT_QAT_BATCH_SIZE,
) -> tf.data.Dataset:
    """Fine-tuning batches of ``batch_size`` pairs for QAT: a paired dataset folder, or
    synthetic rain."""
    if source is None or str(source) == "synthetic":
        return _synthetic(size, batch_size, seed)
    from tfderain.data.pipeline import paired_dataset

    folder = Path(source)
    if not folder.is_dir():
        raise ExportError(f"{folder}: QAT data folder does not exist")
    return paired_dataset(folder, patch_size=size, batch_size=batch_size, seed=seed)


# -------------------------------------------------------------------------------- flatbuffer


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
    """Export ``model`` to a ``.tflite`` file and write its model spec beside it.

    Args:
        model: a model built by the registry (or loaded/converted); its ``derained`` (and
            ``density``) outputs are exported.
        path: the ``.tflite`` file; the spec goes to ``<stem>.json`` in the same folder.
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
    interpreter = _interpreter(data)
    runner = interpreter.get_signature_runner()
    in_names = {int(d["index"]): n for n, d in runner.get_input_details().items()}
    out_names = {int(d["index"]): n for n, d in runner.get_output_details().items()}
    spec = spec_io.build_spec(
        model=arch,
        config=config,
        file=path.name,
        data=data,
        quantization=options.quant,
        tile=tile_hw,
        multiple=entry.multiple,
        halo=entry.halo,
        inputs=spec_io.tensor_entries(interpreter.get_input_details(), in_names),
        outputs=spec_io.tensor_entries(interpreter.get_output_details(), out_names),
        source=getattr(models.identity(model), "source", None),
    )
    spec_io.write_bytes_atomically(path, data)
    spec_io.write_json_atomically(spec_io.spec_path(path), spec)
    return path


# ------------------------------------------------------------------------------- inspection


def _interpreter(model: bytes | str | os.PathLike, num_threads: int | None = None) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    if isinstance(model, bytes):
        return Interpreter(model_content=model, num_threads=num_threads)
    return Interpreter(model_path=os.fspath(model), num_threads=num_threads)


def _label(model: bytes | str | os.PathLike) -> str:
    return "<bytes>" if isinstance(model, bytes) else os.fspath(model)


def _read(model: bytes | str | os.PathLike) -> bytes:
    if isinstance(model, bytes):
        return model
    path = Path(model)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ExportError(f"{path}: cannot read ({exc.strerror or exc})") from None


def operators(model: bytes | str | os.PathLike) -> list[str]:
    """Sorted distinct operators of a ``.tflite`` file (path or bytes), read from its flatbuffer.

    Built-in operators by their TFLite name (``CONV_2D``); custom operators as ``CUSTOM:<code>``
    (Flex operators are custom operators whose code starts with ``Flex``).
    """
    from tensorflow.lite.python import schema_py_generated as schema

    data = _read(model)
    if data[4:8] != b"TFL3":  # the flatbuffer file identifier of the TFLite schema
        raise ExportError(f"{_label(model)}: not a TFLite flatbuffer")
    try:
        root = schema.Model.GetRootAsModel(data, 0)
        codes = [root.OperatorCodes(i) for i in range(root.OperatorCodesLength())]
    except Exception:  # a flatbuffer that is not a TFLite model fails in many ways
        raise ExportError(f"{_label(model)}: not a TFLite flatbuffer") from None
    by_number = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    names = set()
    for code in codes:
        number = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if number == schema.BuiltinOperator.CUSTOM:
            names.add(f"CUSTOM:{(code.CustomCode() or b'').decode()}")
        else:
            names.add(by_number.get(number, f"BUILTIN_{number}"))
    return sorted(names)


def float_operators(model: bytes | str | os.PathLike) -> list[str]:
    """Sorted distinct operators of an integer model that still compute in float32.

    Every operator of the main graph with a float32 input, except ``QUANTIZE`` (float input →
    int8) and ``DEQUANTIZE``: an empty list means the model is integer from its input
    quantization to its output dequantization. For a float model it lists nearly every op.
    """
    from tensorflow.lite.python import schema_py_generated as schema

    data = _read(model)
    names = {}
    for name in operators(data):
        number = getattr(schema.BuiltinOperator, name, None)
        if number is not None:
            names[number] = name
    root = schema.Model.GetRootAsModel(data, 0)
    codes = [root.OperatorCodes(i) for i in range(root.OperatorCodesLength())]
    graph = root.Subgraphs(0)
    found = set()
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = codes[op.OpcodeIndex()]
        name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
        if name in ("QUANTIZE", "DEQUANTIZE"):
            continue
        inputs = [op.Inputs(j) for j in range(op.InputsLength())]
        if any(t >= 0 and graph.Tensors(t).Type() == schema.TensorType.FLOAT32 for t in inputs):
            found.add(name)
    return sorted(found)


def is_flex_free(ops: list[str]) -> bool:
    """No Flex (select TF ops) and no other custom operator among ``ops``."""
    return not any(op.startswith("CUSTOM:") or op.startswith("Flex") for op in ops)


class TFLiteModel:
    """An exported model in the LiteRT interpreter, called like the Keras model on floats.

    ``run(image)`` takes one float32 ``(H, W, 3)`` image in [0, 1] (``H, W`` the tile of a
    fixed-size model, anything valid for a dynamic one), quantizes it if the input is integer,
    and returns ``{name: float32 array}`` with quantized outputs dequantized.
    """

    def __init__(self, path: str | os.PathLike | bytes, num_threads: int | None = None):
        self.label = _label(path)
        self.interpreter = _interpreter(path, num_threads)
        runner = self.interpreter.get_signature_runner()
        self._names = {int(d["index"]): n for n, d in runner.get_output_details().items()}
        self._shape: tuple[int, ...] | None = None

    def _prepare(self, shape: tuple[int, ...]) -> None:
        if shape != self._shape:
            detail = self.interpreter.get_input_details()[0]
            if tuple(detail["shape"]) != shape:
                self.interpreter.resize_tensor_input(detail["index"], list(shape))
            try:
                self.interpreter.allocate_tensors()
            except RuntimeError as exc:  # e.g. a requantization scale XNNPACK does not take
                first = " ".join(str(exc).split())[:300]
                message = f"{self.label}: LiteRT cannot prepare the model: {first}"
                raise ExportError(message) from None
            self._shape = shape

    def run(self, image: np.ndarray) -> dict[str, np.ndarray]:
        image = np.asarray(image, np.float32)[None]
        self._prepare(image.shape)
        detail = self.interpreter.get_input_details()[0]
        if detail["dtype"] != np.float32:
            scale, zero = detail["quantization"]
            info = np.iinfo(detail["dtype"])
            image = np.clip(np.round(image / scale + zero), info.min, info.max)
        self.interpreter.set_tensor(detail["index"], image.astype(detail["dtype"]))
        self.interpreter.invoke()
        out = {}
        for detail in self.interpreter.get_output_details():
            value = self.interpreter.get_tensor(detail["index"])
            if value.dtype != np.float32:
                scale, zero = detail["quantization"]
                value = (value.astype(np.float32) - zero) * scale
            out[self._names.get(int(detail["index"]), detail["name"])] = value[0]
        return out

    def latency(self, shape: tuple[int, int], repeats: int = 5) -> float:
        """Median seconds of one ``invoke`` on a ``shape`` image (after one warm-up run)."""
        return latencies_side_by_side([self], shape, repeats)[0]


def latencies_side_by_side(
    runners: Sequence[TFLiteModel], shape: tuple[int, int], repeats: int = 5
) -> list[float]:
    """Median seconds of one ``invoke`` of each runner, timed in turns (A B A B …).

    Each runner is warmed up on a ``shape`` image first. Taking turns exposes every runner to the
    same load and clock changes of a shared machine, so the ratio of two medians is far steadier
    than the ratio of two separate measurements.
    """
    for runner in runners:
        runner.run(np.full((*shape, 3), 0.5, np.float32))
    times: list[list[float]] = [[] for _ in runners]
    for _ in range(repeats):
        for runner, spent in zip(runners, times, strict=True):
            start = time.perf_counter()
            runner.interpreter.invoke()
            spent.append(time.perf_counter() - start)
    return [float(np.median(spent)) for spent in times]


def keras_reference(model: keras.Model) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """``image → {name: float32 array}`` of the Keras model, for the outputs that are exported."""
    graph, names = export_outputs(model)

    def run(image: np.ndarray) -> dict[str, np.ndarray]:
        out = graph(np.asarray(image, np.float32)[None], training=False)
        out = out if isinstance(out, (list, tuple)) else [out]
        return {n: np.asarray(t, np.float32)[0] for n, t in zip(names, out, strict=True)}

    return run


def psnr_db(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two float images in [0, 1] (peak 1), without rounding or clamping."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)
