"""Apply an official PyTorch state dict to a Keras model through a declarative key table.

A key table maps each Keras layer name to the official module prefix holding its parameters,
e.g. ``{"conv0": "conv0.0"}`` for PReNet. The layer's type decides the tensor layout conversion:

* ``Conv2D``: torch OIHW → Keras HWIO, ``transpose(2, 3, 1, 0)``.
* ``DepthwiseConv2D``: torch ``(C·m, 1, kh, kw)`` → Keras ``(kh, kw, C, m)``.
* ``Conv2DTranspose``: torch IOHW → Keras HWOI, ``transpose(2, 3, 1, 0)``.
* ``Dense``: torch ``(out, in)`` → Keras ``(in, out)``.
* ``BatchNormalization``: weight, bias, running_mean, running_var (``num_batches_tracked`` is
  bookkeeping and ignored).
* ``LayerNormalization``, ``GroupNormalization``: weight, bias.
* ``PReLU``: weight, broadcast to the Keras alpha shape.
* Custom layers declare ``TORCH_PARAMS`` (torch parameter suffixes in the order of
  ``layer.weights``) and may define ``from_torch(suffix, array)`` for their own layout.

Loading is strict: missing keys, unexpected keys, shape mismatches and Keras layers with weights
that the table does not cover are collected and reported together in one :class:`ConversionError`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from tfderain._keras import keras
from tfderain.models import ConversionError

layers = keras.layers

#: State-dict entries that carry no learned value.
IGNORED_SUFFIXES = ("num_batches_tracked",)


def _conv(w):
    return w.transpose(2, 3, 1, 0)


def _params(layer) -> list[tuple[str, object]]:
    """``(torch suffix, converter)`` for each entry of ``layer.weights``, in order."""
    if isinstance(layer, layers.DepthwiseConv2D):
        spec = [("weight", _depthwise_for(layer))]
        return spec + ([("bias", None)] if layer.use_bias else [])
    if isinstance(layer, (layers.Conv2D, layers.Conv2DTranspose)):
        return [("weight", _conv)] + ([("bias", None)] if layer.use_bias else [])
    if isinstance(layer, layers.Dense):
        return [("weight", np.transpose)] + ([("bias", None)] if layer.use_bias else [])
    if isinstance(layer, layers.BatchNormalization):
        names = (["weight"] if layer.scale else []) + (["bias"] if layer.center else [])
        return [(n, None) for n in names + ["running_mean", "running_var"]]
    if isinstance(layer, (layers.LayerNormalization, layers.GroupNormalization)):
        names = (["weight"] if layer.scale else []) + (["bias"] if layer.center else [])
        return [(n, None) for n in names]
    if isinstance(layer, layers.PReLU):
        return [("weight", None)]
    if hasattr(layer, "TORCH_PARAMS"):
        convert = getattr(layer, "from_torch", None)
        return [
            (n, (lambda a, n=n: convert(n, a)) if convert else None) for n in layer.TORCH_PARAMS
        ]
    raise ConversionError(f"layer {layer.name!r} ({type(layer).__name__}) has no torch layout")


def _depthwise_for(layer):
    def convert(w):
        out_channels, _, kh, kw = w.shape
        in_channels = layer.depthwise_kernel.shape[2]
        multiplier = out_channels // in_channels
        return w.reshape(in_channels, multiplier, kh, kw).transpose(2, 3, 0, 1)

    return convert


def _fit(array: np.ndarray, target_shape: tuple[int, ...]) -> np.ndarray | None:
    """``array`` in ``target_shape`` if sizes agree up to broadcasting of singleton axes."""
    if array.shape == target_shape:
        return array
    if array.size == int(np.prod(target_shape)):
        return array.reshape(target_shape)
    return None


def layers_with_weights(model: keras.Model) -> dict[str, keras.layers.Layer]:
    """Every layer owning weights, by name, looking inside nested models."""
    found: dict[str, keras.layers.Layer] = {}
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.update(layers_with_weights(layer))
        elif layer.weights:
            found[layer.name] = layer
    return found


def apply_state_dict(
    model: keras.Model,
    state_dict: Mapping[str, np.ndarray],
    table: Mapping[str, str],
    ignore: tuple[str, ...] = (),
) -> None:
    """Set ``model``'s weights from ``state_dict`` following ``table``; strict (see module doc).

    Args:
        model: the Keras model, built by the registry.
        state_dict: official parameter name → array (see :func:`tfderain.pth`).
        table: Keras layer name → official module prefix.
        ignore: official keys (or prefixes ending in ``.``) that are known to be unused by the
            official forward pass and are skipped on purpose.
    """
    by_name = layers_with_weights(model)
    problems: list[str] = []
    used: set[str] = set()
    assignments = []
    for layer_name in sorted(set(by_name) - set(table)):
        problems.append(f"Keras layer {layer_name!r} has weights but no entry in the key table")
    for layer_name, prefix in table.items():
        layer = by_name.get(layer_name)
        if layer is None:
            problems.append(f"key table names Keras layer {layer_name!r}, which the model lacks")
            continue
        values = []
        for (suffix, convert), variable in zip(_params(layer), layer.weights, strict=True):
            key = f"{prefix}.{suffix}"
            if key not in state_dict:
                problems.append(f"missing key {key!r} (for layer {layer_name!r})")
                continue
            used.add(key)
            array = np.asarray(state_dict[key])
            array = convert(array) if convert is not None else array
            target = tuple(variable.shape)
            fitted = _fit(array, target)
            if fitted is None:
                problems.append(
                    f"shape mismatch for {key!r}: checkpoint {tuple(state_dict[key].shape)}, "
                    f"layer {layer_name!r} expects {target}"
                )
                continue
            values.append(fitted.astype(variable.dtype.as_numpy_dtype))
        assignments.append((layer, values))
    unexpected = [
        k
        for k in state_dict
        if k not in used
        and not k.endswith(IGNORED_SUFFIXES)
        and not any(k == i or (i.endswith(".") and k.startswith(i)) for i in ignore)
    ]
    problems.extend(f"unexpected key {k!r}" for k in sorted(unexpected))
    if problems:
        shown = "; ".join(problems[:40])
        more = f"; … and {len(problems) - 40} more" if len(problems) > 40 else ""
        raise ConversionError(f"{len(problems)} problem(s) loading checkpoint: {shown}{more}")
    for layer, values in assignments:
        layer.set_weights(values)
