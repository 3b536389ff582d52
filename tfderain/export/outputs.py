"""The outputs an exported file has: ``derained``, plus ``density`` for density-aware models.

Other Keras outputs (``stages``, ``rain``) are left out of exported graphs: apps read the
restored image and, where the model estimates it, the rain density.
"""

from __future__ import annotations

from tfderain._keras import keras
from tfderain.export.errors import ExportError

#: Logical outputs kept in the exported graph, in this order.
EXPORTED_OUTPUTS = ("derained", "density")


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
