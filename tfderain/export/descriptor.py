"""The descriptor of an exported ``.tflite`` file: what an app needs to know to run it.

A descriptor is a JSON file written beside the model as ``<model file stem>.json``
(``prenet_int8.tflite`` → ``prenet_int8.json``), so several exported models can share a folder;
the Android app reads it from its assets as ``model_spec.json`` (``org.tfderain.core.ModelSpec``).
Its schema (version 1) is fixed and shared with the app, including the names it has carried
since the first files were written (``"format": "tfderain-model-spec"``, ``"spec_version"``)::

    {"format": "tfderain-model-spec", "spec_version": 1,
     "model": "prenet", "config": {...builder kwargs...}, "tfderain_version": "0.1.0",
     "file": "prenet_int8.tflite", "sha256": "<hex of the .tflite file>",
     "quantization": "none" | "fp16" | "dynamic" | "int8" | "qat",
     "tile": {"height": 256, "width": 256} | null,        # null: dynamic-size model
     "multiple": 1, "halo": 64, "overlap": 128,           # overlap = 2 * halo
     "value_range": [0.0, 1.0],
     "inputs":  [{"name": "rainy", "index": 0, "shape": [1, 256, 256, 3], "dtype": "uint8",
                  "quantization": {"scale": 0.00392157, "zero_point": 0} | null}],
     "outputs": [{"name": "derained", ...}, {"name": "density", ...}]}

``name`` is the logical name of the tensor (``rainy``, ``derained``, ``density``; the converter
keeps them as the signature's names), ``index`` its position in the interpreter's
``get_input_details()`` / ``get_output_details()`` list. ``shape`` is the interpreter's shape
signature: ``-1`` marks a dynamic dimension (``[1, -1, -1, 3]``). ``quantization`` is ``null``
for float tensors; a quantized value ``q`` means ``scale * (q - zero_point)`` in
``value_range`` units. ``source`` (where the weights came from) is added when known.

(Not to be confused with :class:`tfderain.models.ModelSpec`, the registry entry of an
architecture.)
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tfderain.io import write_bytes_atomically

#: The ``format`` of every descriptor (its on-disk name, read by the app).
FORMAT = "tfderain-model-spec"
#: The schema version, written as ``spec_version``.
VERSION = 1
#: Keys of a descriptor, in the order they are written.
KEYS = (
    "format",
    "spec_version",
    "model",
    "config",
    "tfderain_version",
    "file",
    "sha256",
    "quantization",
    "tile",
    "multiple",
    "halo",
    "overlap",
    "value_range",
    "inputs",
    "outputs",
)


def descriptor_path(tflite_path: str | os.PathLike) -> Path:
    """Where the descriptor of ``tflite_path`` goes: ``<stem>.json`` in the same folder."""
    path = Path(tflite_path)
    return path.with_name(f"{path.stem}.json")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def tensor_entries(
    details: Sequence[Mapping[str, Any]], names: Mapping[int, str]
) -> list[dict[str, Any]]:
    """Descriptor entries of interpreter tensor ``details``; ``names`` maps tensor index →
    name."""
    entries = []
    for position, detail in enumerate(details):
        scale, zero_point = detail.get("quantization", (0.0, 0))
        dtype = np.dtype(detail["dtype"]).name
        quantized = dtype in ("uint8", "int8", "int16") and scale != 0.0
        shape = detail.get("shape_signature", detail["shape"])
        entries.append(
            {
                "name": names.get(int(detail["index"]), str(detail["name"])),
                "index": position,
                "shape": [int(d) for d in shape],
                "dtype": dtype,
                "quantization": (
                    {"scale": float(scale), "zero_point": int(zero_point)} if quantized else None
                ),
            }
        )
    return entries


def build_descriptor(
    *,
    model: str,
    config: Mapping[str, Any],
    file: str,
    data: bytes,
    quantization: str,
    tile: tuple[int, int] | None,
    multiple: int,
    halo: int,
    inputs: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
    source: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The descriptor of an exported model (``data``: the bytes of the ``.tflite`` file).

    ``source`` says where the weights came from (a preset's name, source sha256 and license
    note: :attr:`tfderain.models.Identity.source`); written only when known.
    """
    from tfderain._version import __version__

    return {
        "format": FORMAT,
        "spec_version": VERSION,
        "model": model,
        "config": _jsonable(dict(config)),
        "tfderain_version": __version__,
        "file": file,
        "sha256": hashlib.sha256(data).hexdigest(),
        "quantization": quantization,
        "tile": None if tile is None else {"height": int(tile[0]), "width": int(tile[1])},
        "multiple": int(multiple),
        "halo": int(halo),
        "overlap": 2 * int(halo),
        "value_range": [0.0, 1.0],
        "inputs": inputs,
        "outputs": outputs,
        **({"source": _jsonable(dict(source))} if source else {}),
    }


def write_json_atomically(path: str | os.PathLike, content: Mapping[str, Any]) -> Path:
    """Write ``content`` as indented JSON to a temporary file beside ``path``, then rename."""
    return write_bytes_atomically(path, (json.dumps(content, indent=2) + "\n").encode())


def read_descriptor(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a descriptor file; a clear one-line error naming the file otherwise."""
    path = Path(path)
    try:
        descriptor = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: no such descriptor file") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: unreadable descriptor ({exc})") from None
    if not isinstance(descriptor, dict) or descriptor.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} file")
    missing = [k for k in KEYS if k not in descriptor]
    if missing:
        raise ValueError(f"{path}: descriptor lacks {', '.join(missing)}")
    return descriptor
