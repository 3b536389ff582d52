"""What a ``.tflite`` file holds, read from its flatbuffer: operators, and which compute in float.

Exported files use TFLite built-in kernels only, so that no app needs the Flex delegate:
:func:`operators` lists a file's operators, :func:`is_flex_free` checks them and
:func:`float_operators` lists the operators of an integer file that still compute in float32.
A file is given as a path or as its bytes.
"""

from __future__ import annotations

import os
from pathlib import Path

from tfderain.export.errors import ExportError

#: A ``.tflite`` file: its path, or its bytes.
Flatbuffer = bytes | str | os.PathLike


def label(model: Flatbuffer) -> str:
    """How messages name ``model``: its path, or ``<bytes>``."""
    return "<bytes>" if isinstance(model, bytes) else os.fspath(model)


def read_bytes(model: Flatbuffer) -> bytes:
    """The bytes of ``model``; a one-line :class:`ExportError` if the file cannot be read."""
    if isinstance(model, bytes):
        return model
    path = Path(model)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ExportError(f"{path}: cannot read ({exc.strerror or exc})") from None


def operators(model: Flatbuffer) -> list[str]:
    """Sorted distinct operators of a ``.tflite`` file (path or bytes), read from its flatbuffer.

    Built-in operators by their TFLite name (``CONV_2D``); custom operators as ``CUSTOM:<code>``
    (Flex operators are custom operators whose code starts with ``Flex``).
    """
    from tensorflow.lite.python import schema_py_generated as schema

    data = read_bytes(model)
    if data[4:8] != b"TFL3":  # the flatbuffer file identifier of the TFLite schema
        raise ExportError(f"{label(model)}: not a TFLite flatbuffer")
    try:
        root = schema.Model.GetRootAsModel(data, 0)
        codes = [root.OperatorCodes(i) for i in range(root.OperatorCodesLength())]
    except Exception:  # a flatbuffer that is not a TFLite model fails in many ways
        raise ExportError(f"{label(model)}: not a TFLite flatbuffer") from None
    by_number = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    names = set()
    for code in codes:
        number = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if number == schema.BuiltinOperator.CUSTOM:
            names.add(f"CUSTOM:{(code.CustomCode() or b'').decode()}")
        else:
            names.add(by_number.get(number, f"BUILTIN_{number}"))
    return sorted(names)


def float_operators(model: Flatbuffer) -> list[str]:
    """Sorted distinct operators of an integer model that still compute in float32.

    Every operator of the main graph with a float32 input, except ``QUANTIZE`` (float input →
    int8) and ``DEQUANTIZE``: an empty list means the model is integer from its input
    quantization to its output dequantization. For a float model it lists nearly every op.
    """
    from tensorflow.lite.python import schema_py_generated as schema

    data = read_bytes(model)
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
