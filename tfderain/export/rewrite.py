"""Graph rewrites that keep a Keras model's function, for its integer exports.

* :func:`with_leaky_relus`: a PReLU with one slope (PyTorch's ``nn.PReLU()``: PCNet, MPRNet)
  becomes the ``LeakyReLU`` with that slope. LiteRT's XNNPACK delegate runs int8
  ``LEAKY_RELU`` but has no int8 ``PRELU``, which would run outside it and cut the delegated
  graph at every use. Used by full-integer post-training quantization and QAT.
* :func:`unshare_weightless_layers`: a layer without weights called at several places becomes
  one layer per call, so that QAT gives each call its own 8-bit range.

:func:`clone` is the copy both build on (and :func:`tfderain.export.qat.annotate` too).
"""

from __future__ import annotations

from typing import Any

from tfderain._keras import keras

layers = keras.layers


def clone(model: keras.Model, replacement: Any, wrap: Any = None) -> keras.Model:
    """A copy of the functional ``model``, shared layers still shared.

    A layer for which ``replacement(layer)`` gives a function becomes that function's stand-in
    (``(layer, weights or None)``); every other layer a copy with the same weights. ``wrap``,
    when given, wraps each new layer (e.g. annotates it).
    """
    weights: list[tuple[Any, list | None]] = []

    def copy_layer(layer):
        replace = replacement(layer)
        if replace:
            copy, values = replace(layer)
        else:
            copy, values = layer.__class__.from_config(layer.get_config()), layer.get_weights()
        weights.append((copy, values))
        return wrap(copy) if wrap else copy

    copy = keras.models.clone_model(model, clone_function=copy_layer)
    for layer, values in weights:
        if values is not None:
            layer.set_weights(values)
    return copy


def _has_one_slope(layer: layers.Layer) -> bool:
    return type(layer) is layers.PReLU and layer.alpha.shape.num_elements() == 1


def with_leaky_relus(model: keras.Model) -> keras.Model:
    """A copy of the functional ``model`` whose one-slope PReLUs are ``LeakyReLU`` layers.

    The same function, run by LiteRT's XNNPACK delegate in int8 (see
    :func:`_prelu_as_leaky_relu`). ``model`` itself when it has no such PReLU.
    """
    if not any(_has_one_slope(layer) for layer in model.layers):
        return model
    return clone(model, lambda layer: _prelu_as_leaky_relu if _has_one_slope(layer) else None)


def unshare_weightless_layers(
    model: keras.Model, custom_objects: dict[str, Any] | None = None
) -> keras.Model:
    """A copy of the functional ``model`` with one layer per call of its weightless layers.

    A layer called at several places gets one output range in QAT, shared by every call: PCNet
    applies one activation (its network-wide ``nn.PReLU()``, here a ``LeakyReLU``) to tensors of
    very different magnitudes, all rounded to the widest one's 8-bit step. A layer without
    weights computes the same function as several layers, so each call becomes a layer of its
    own (``name``, ``name_call1``, …) with a range of its own. Layers with weights (PReNet's
    recurrent convolutions) stay shared. ``model`` itself when nothing is shared.
    ``custom_objects``: the classes of the model's layers that Keras does not know by name.
    """
    config = model.get_config()
    split = {
        entry["name"]
        for entry, layer in zip(config["layers"], model.layers, strict=True)
        if len(entry["inbound_nodes"]) > 1 and not layer.weights
    }
    if not split:
        return model

    def rename(value):
        # A reference to a layer's output: [layer name, node index, tensor index, (kwargs)].
        if isinstance(value, list):
            if len(value) >= 3 and isinstance(value[0], str) and value[0] in split:
                name, node = value[0], value[1]
                return [name if node == 0 else f"{name}_call{node}", 0, *rename(value[2:])]
            return [rename(v) for v in value]
        if isinstance(value, dict):
            return {k: rename(v) for k, v in value.items()}
        return value

    entries = []
    for entry in config["layers"]:
        nodes = rename(entry["inbound_nodes"])
        if entry["name"] not in split:
            entries.append({**entry, "inbound_nodes": nodes})
            continue
        for k, node in enumerate(nodes):
            name = entry["name"] if k == 0 else f"{entry['name']}_call{k}"
            layer_config = {**entry["config"], "name": name}
            entries.append({**entry, "name": name, "config": layer_config, "inbound_nodes": [node]})
    config = {
        **config,
        "layers": entries,
        "output_layers": rename(config["output_layers"]),
    }
    copy = keras.Model.from_config(config, custom_objects=custom_objects)
    for layer in model.layers:
        if layer.weights:
            copy.get_layer(layer.name).set_weights(layer.get_weights())
    return copy


def _prelu_as_leaky_relu(prelu: layers.PReLU) -> tuple[Any, None]:
    """The ``LeakyReLU`` with ``prelu``'s one slope (``nn.PReLU()``: PCNet, MPRNet).

    Same function; the int8 ``LEAKY_RELU`` runs inside LiteRT's XNNPACK delegate, while int8
    ``PRELU`` has no XNNPACK kernel and splits the graph at every use (PCNet: 201 uses, 203
    delegate partitions). The slope is frozen during the fine-tune.
    """
    return layers.LeakyReLU(alpha=float(prelu.alpha.numpy().ravel()[0]), name=prelu.name), None


__all__ = ["clone", "unshare_weightless_layers", "with_leaky_relus"]
