"""Running exported files in the LiteRT interpreter, beside the Keras model they came from.

* :class:`TFLiteModel` runs a ``.tflite`` file on float images, quantizing and dequantizing
  integer inputs and outputs, so it is called like the Keras model;
* :func:`keras_reference` runs the Keras model's exported outputs the same way;
* :class:`WholeImageDerainer` makes either a derainer of :mod:`tfderain.evaluation` (padding and
  cropping by the model's processor);
* :func:`latencies_side_by_side` times files in turns on a shared machine.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from tfderain import models
from tfderain._keras import keras
from tfderain.export.errors import ExportError
from tfderain.export.flatbuffer import Flatbuffer, label
from tfderain.export.outputs import export_outputs

#: ``image → {output name: float32 array}``: a :class:`TFLiteModel`'s ``run`` or a
#: :func:`keras_reference`.
Outputs = Callable[[np.ndarray], Mapping[str, np.ndarray]]


def interpreter(model: Flatbuffer, num_threads: int | None = None) -> Any:
    """A LiteRT interpreter of ``model`` (a ``.tflite`` path or its bytes)."""
    from ai_edge_litert.interpreter import Interpreter

    if isinstance(model, bytes):
        return Interpreter(model_content=model, num_threads=num_threads)
    return Interpreter(model_path=os.fspath(model), num_threads=num_threads)


def signature_names(runner: Any) -> tuple[dict[int, str], dict[int, str]]:
    """``({tensor index: name}, …)`` of the inputs and the outputs of a signature runner: the
    logical names (``rainy``, ``derained``, ``density``) the converter keeps."""
    inputs = {int(d["index"]): n for n, d in runner.get_input_details().items()}
    outputs = {int(d["index"]): n for n, d in runner.get_output_details().items()}
    return inputs, outputs


class TFLiteModel:
    """An exported model in the LiteRT interpreter, called like the Keras model on floats.

    ``run(image)`` takes one float32 ``(H, W, 3)`` image in [0, 1] (``H, W`` the tile of a
    fixed-size model, anything valid for a dynamic one), quantizes it if the input is integer,
    and returns ``{name: float32 array}`` with quantized outputs dequantized.
    """

    def __init__(self, path: Flatbuffer, num_threads: int | None = None):
        self.label = label(path)
        self.interpreter = interpreter(path, num_threads)
        _, self._names = signature_names(self.interpreter.get_signature_runner())
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
        """``{output name: float32 array}`` of one float32 ``(H, W, 3)`` image in [0, 1]."""
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


def keras_reference(model: keras.Model) -> Outputs:
    """``image → {name: float32 array}`` of the Keras model, for the outputs that are exported."""
    graph, names = export_outputs(model)

    def run(image: np.ndarray) -> dict[str, np.ndarray]:
        out = graph(np.asarray(image, np.float32)[None], training=False)
        out = out if isinstance(out, (list, tuple)) else [out]
        return {n: np.asarray(t, np.float32)[0] for n, t in zip(names, out, strict=True)}

    return run


class WholeImageDerainer:
    """A model's exported outputs as a derainer of :mod:`tfderain.evaluation` (``spec`` and
    ``derain_array``), each image run whole.

    ``run`` is a dynamic-size file's :meth:`TFLiteModel.run` or the :func:`keras_reference` of
    its Keras model, so both are scored the same way: the image is reflect-padded to the
    model's multiple by its :class:`~tfderain.processing.Processor` and the ``derained`` output
    cropped back; the evaluation then makes it 8-bit by the same processor's output rule.
    """

    def __init__(self, run: Outputs, spec: models.ModelSpec):
        self.run = run
        self.spec = spec

    def padded(self, rgb: np.ndarray) -> np.ndarray:
        """``rgb`` (``(H, W, 3)`` float) reflect-padded to the model's multiple."""
        return self.spec.processor.pad(np.asarray(rgb, np.float32)[None])[0].numpy()

    def derain_array(self, rgb: np.ndarray) -> np.ndarray:
        """The ``derained`` output of ``rgb``, ``(H, W, 3)`` float32 (not clipped)."""
        out = self.run(self.padded(rgb))["derained"]
        return self.spec.processor.crop(out[None], *rgb.shape[:2])[0].numpy()
