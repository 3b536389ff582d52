"""Graph rewrites that keep a Keras model's function, for its TFLite exports.

* :func:`with_leaky_relus`: a PReLU with one slope (PyTorch's ``nn.PReLU()``: PCNet, MPRNet)
  becomes the ``LeakyReLU`` with that slope. LiteRT's XNNPACK delegate runs int8
  ``LEAKY_RELU`` but has no int8 ``PRELU``, which would run outside it and cut the delegated
  graph at every use. Used by full-integer post-training quantization and QAT.
* :func:`unshare_weightless_layers`: a layer without weights called at several places becomes
  one layer per call, so that QAT gives each call its own 8-bit range.
* :func:`with_subpixel_convolutions`: a transposed convolution becomes a convolution followed
  by a depth-to-space rearrangement (the sub-pixel convolution of Shi et al., CVPR 2016). A
  dynamic-size file computes each ``TRANSPOSE_CONV``'s output shape at run time, and LiteRT's
  XNNPACK delegate takes only constant output shapes: every one of them ran outside the
  delegate (PCNet: 21 in float and int8). Used by dynamic-size exports of every mode.

:func:`clone` copies a model layer by layer (:func:`with_leaky_relus`,
:func:`tfderain.export.qat.annotate`); the other two rewrite the functional config, which can
add and split layers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfderain._keras import keras, tf

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
        return _renamed(value, lambda name, node: _call_name(name, node) if name in split else None)

    def per_call(entry, nodes):
        if entry["name"] not in split:
            return None
        entries = []
        for k, node in enumerate(nodes):
            name = _call_name(entry["name"], k)[0]
            layer_config = {**entry["config"], "name": name}
            entries.append({**entry, "name": name, "config": layer_config, "inbound_nodes": [node]})
        return entries

    return _rebuilt(model, config, _entries(config, rename, per_call), rename, custom_objects)


def _entries(config: dict, rename: Any, expand: Any) -> list[dict]:
    """The layer entries of a functional ``config``, their output references moved by ``rename``.

    ``expand(entry, inbound_nodes)`` gives the entries that replace one layer, or ``None`` to keep
    it (with the moved references).
    """
    entries = []
    for entry in config["layers"]:
        nodes = rename(entry["inbound_nodes"])
        replacement = expand(entry, nodes)
        entries.extend([{**entry, "inbound_nodes": nodes}] if replacement is None else replacement)
    return entries


def _call_name(name: str, node: int) -> tuple[str, int]:
    """The layer standing for call ``node`` of the split layer ``name``, and its node."""
    return (name if node == 0 else f"{name}_call{node}"), 0


def _renamed(value: Any, target: Any) -> Any:
    """``value`` (part of a functional config) with its references to layer outputs moved.

    A reference is ``[layer name, node index, tensor index, (kwargs)]``; ``target(name, node)``
    gives the ``(name, node)`` it now points to, or ``None`` to keep it.
    """
    if isinstance(value, list):
        if len(value) >= 3 and isinstance(value[0], str) and isinstance(value[1], int):
            moved = target(value[0], value[1])
            if moved is not None:
                return [*moved, *_renamed(value[2:], target)]
        return [_renamed(v, target) for v in value]
    if isinstance(value, dict):
        return {k: _renamed(v, target) for k, v in value.items()}
    return value


@keras.saving.register_keras_serializable(package="tfderain")
class DepthToSpace(keras.layers.Layer):
    """``tf.nn.depth_to_space``: channel ``(i·r + j)·C + c`` → channel ``c`` at ``(i, j)``."""

    QUANTIZE = "none"  # data movement: the output keeps its input's scale

    def __init__(self, block_size: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.block_size = block_size

    def call(self, x):
        return tf.nn.depth_to_space(x, self.block_size)

    def get_config(self):
        return {**super().get_config(), "block_size": self.block_size}


def _is_plain_transpose(layer: layers.Layer) -> bool:
    """A channels-last ``Conv2DTranspose`` that :func:`with_subpixel_convolutions` rewrites."""
    return (
        type(layer) is layers.Conv2DTranspose
        and layer.strides[0] == layer.strides[1]
        and tuple(layer.dilation_rate) == (1, 1)
        and layer.output_padding is None
        and layer.data_format == "channels_last"
        and layer.padding in ("valid", "same")
    )


def _phase_taps(size: int, stride: int, crop: int) -> list[tuple[int, int]]:
    """``(phase, input offset)`` of each tap of a transposed convolution along one axis.

    Tap ``k`` writes ``x[i]·w[k]`` to row ``v = s·i + k`` of the ``valid`` output. After
    dropping ``crop`` rows in front, output row ``s·m + a`` is ``v = s·m + a + crop``: tap ``k``
    belongs to phase ``a = (k − crop) mod s`` and reads input row ``m + (a + crop − k) / s``.
    """
    taps = []
    for k in range(size):
        phase = (k - crop) % stride
        taps.append((phase, (phase + crop - k) // stride))
    return taps


def _axis_plan(size: int, stride: int, crop: tuple[int, int], extra: int) -> dict[str, Any]:
    """How one axis of a sub-pixel convolution reproduces a (cropped) transposed one.

    The kept output has ``s·H + extra − crop[0] − crop[1]`` rows for ``H`` input rows. The
    convolution reads input rows ``m + d_min … m + d_max`` for its output row ``m``: it has
    ``d_max − d_min + 1`` taps, zero padding ``−d_min`` rows before and ``q + d_max`` after,
    and ``H + q`` output rows, ``q = ⌈kept extra / s⌉``; depth-to-space then gives ``s·(H + q)``
    rows, of which the last ``tail`` are dropped. ``d_min ≤ 0`` and ``q + d_max ≥ 0`` (zero
    taps are added where needed), so no padding is negative.
    """
    taps = _phase_taps(size, stride, crop[0])
    kept = extra - crop[0] - crop[1]
    q = -(-kept // stride)
    low = min(0, *(d for _, d in taps))
    high = max(-q, *(d for _, d in taps))
    return {
        "taps": [(phase, d - low) for phase, d in taps],
        "size": high - low + 1,
        "pad": (-low, q + high),
        "tail": stride * q - kept,
    }


def _plans(kernel_size, stride: int, padding: str, crops) -> list[dict[str, Any]]:
    """:func:`_axis_plan` of both axes of a transposed convolution, then ``crops`` (a following
    ``Cropping2D``'s).

    ``valid`` keeps ``s·H + max(k − s, 0)`` rows (Keras' length: for ``k < s`` the last
    ``s − k`` rows have no tap, only the bias); ``same`` keeps ``s·H`` rows from row
    ``⌊max(k − s, 0) / 2⌋`` on (the padding of the forward convolution).
    """
    s = stride
    plans = []
    for k, (before, after) in zip(kernel_size, crops, strict=True):
        extra = max(k - s, 0)
        if padding == "same":
            before, after = before + extra // 2, after + extra - extra // 2
        plans.append(_axis_plan(k, s, (before, after), extra))
    return plans


def subpixel_kernel(
    kernel: np.ndarray, stride: int, crops=((0, 0), (0, 0)), padding: str = "valid"
) -> np.ndarray:
    """The kernel of the convolution that, followed by depth-to-space, is a transposed one.

    ``kernel``: a ``Conv2DTranspose`` kernel ``(kh, kw, out, in)`` with ``padding`` and
    ``stride``, its output then cropped by ``crops`` (``Cropping2D`` form). Returns
    ``(Th, Tw, in, s²·out)``: tap ``(ky, kx)`` of phase ``(a, b)`` (see :func:`_phase_taps`)
    in channels ``(a·s + b)·out …``, the order ``tf.nn.depth_to_space`` reads; other taps are
    0. Without cropping, a 3×3 stride-2 ``valid`` kernel gives 2×2 taps on the input padded by
    one row and column on each side; with PyTorch's ``padding=1, output_padding=1`` (a crop
    of one leading row and column) it gives 2×2 taps on the input padded after only, which is
    ``same`` padding: no padding operator, no cropping.
    """
    kh, kw, out, cin = kernel.shape
    rows, cols = _plans((kh, kw), stride, padding, crops)
    sub = np.zeros((rows["size"], cols["size"], cin, stride, stride, out), kernel.dtype)
    for ky, (a, ty) in enumerate(rows["taps"]):
        for kx, (b, tx) in enumerate(cols["taps"]):
            sub[ty, tx, :, a, b, :] = kernel[ky, kx].T
    return sub.reshape(rows["size"], cols["size"], cin, stride * stride * out)


def _same_padding(size: int) -> tuple[int, int]:
    """Zero rows before and after of a stride-1 ``same`` convolution with ``size`` taps."""
    return (size - 1) // 2, size - 1 - (size - 1) // 2


def _subpixel_layers(layer: layers.Conv2DTranspose, crops=((0, 0), (0, 0))) -> list[layers.Layer]:
    """The layers computing ``layer`` and then ``crops``: [padding], convolution,
    depth-to-space, [cropping]. The padding is the convolution's own (``same``) where it
    matches, so no padding operator is written."""
    s = layer.strides[0]
    rows, cols = _plans(layer.kernel_size, s, layer.padding, crops)
    size = (rows["size"], cols["size"])
    same = all(plan["pad"] == _same_padding(plan["size"]) for plan in (rows, cols))
    chain: list[layers.Layer] = []
    if not same:
        chain.append(
            layers.ZeroPadding2D((rows["pad"], cols["pad"]), name=f"{layer.name}_subpixel_pad")
        )
    conv = layers.Conv2D(
        s * s * layer.filters,
        size,
        padding="same" if same else "valid",
        activation=layer.activation,
        use_bias=layer.use_bias,
        dtype=layer.dtype_policy,
        name=layer.name,
    )
    chain.append(conv)
    if s > 1:
        chain.append(DepthToSpace(s, name=f"{layer.name}_subpixel_shuffle"))
    if rows["tail"] or cols["tail"]:
        tails = ((0, rows["tail"]), (0, cols["tail"]))
        chain.append(layers.Cropping2D(tails, name=f"{layer.name}_subpixel_crop"))
    return chain


def _references(value: Any) -> list[str]:
    """The layer names that ``value`` (part of a functional config) reads outputs of."""
    names: list[str] = []
    _renamed(value, lambda name, node: names.append(name))
    return names


def _foldable_crops(model: keras.Model, config: dict, targets: dict) -> dict[str, layers.Layer]:
    """Transposed layers → the ``Cropping2D`` that alone reads their only output.

    The cropping (PCNet: PyTorch's ``padding=1, output_padding=1``) then joins the sub-pixel
    convolution: fewer padded rows are computed, and no cropping operator is written.
    """
    readers: dict[str, list[str]] = {}
    for entry in config["layers"]:
        for name in _references(entry["inbound_nodes"]):
            readers.setdefault(name, []).append(entry["name"])
    outputs = set(_references(config["output_layers"]))
    calls = {entry["name"]: len(entry["inbound_nodes"]) for entry in config["layers"]}
    folds = {}
    for name in targets:
        reader = readers.get(name, [])
        if len(reader) != 1 or name in outputs or calls[name] != 1 or calls[reader[0]] != 1:
            continue
        crop = model.get_layer(reader[0])
        if type(crop) is layers.Cropping2D and crop.data_format == "channels_last":
            folds[name] = crop
    return folds


def with_subpixel_convolutions(
    model: keras.Model, custom_objects: dict[str, Any] | None = None
) -> keras.Model:
    """A copy of the functional ``model`` whose transposed convolutions are sub-pixel ones.

    Each channels-last ``Conv2DTranspose`` (any kernel, equal strides, no dilation or output
    padding) becomes a ``Conv2D`` with the kernel of :func:`subpixel_kernel` (same name, bias
    repeated per phase) and :class:`DepthToSpace`, with zero padding before and cropping after
    where needed: the same function with only constant shapes in the graph, so a dynamic-size
    TFLite file runs it inside LiteRT's XNNPACK delegate. A ``Cropping2D`` that alone reads a
    transposed layer's output is folded into it (PCNet: no padding and no cropping operators
    remain; each of them costs a pass over the feature map, in int8 as much as in float32).
    The convolution does about ``(s·T / k)²`` the multiply-adds of the transposed one (16/9
    for PCNet's 3×3, stride 2; 1 when ``s`` divides ``k``). ``model`` itself when it has none.
    ``custom_objects`` as for :func:`unshare_weightless_layers`.
    """
    targets = {layer.name: layer for layer in model.layers if _is_plain_transpose(layer)}
    if not targets:
        return model
    config = model.get_config()
    folds = _foldable_crops(model, config, targets)
    crops = {name: crop.cropping for name, crop in folds.items()}
    chains = {
        name: _subpixel_layers(layer, crops.get(name, ((0, 0), (0, 0))))
        for name, layer in targets.items()
    }
    ends = {name: chains[name][-1].name for name in chains}
    ends.update({crop.name: ends[name] for name, crop in folds.items()})
    dropped = {crop.name for crop in folds.values()}

    def rename(value):
        return _renamed(value, lambda name, node: (ends[name], node) if name in ends else None)

    def as_chain(entry, nodes):
        if entry["name"] in dropped:
            return []
        if entry["name"] not in chains:
            return None
        chain, entries = chains[entry["name"]], []
        for k, part in enumerate(chain):
            if k:  # call n of each part reads call n of the part before
                nodes = [[[chain[k - 1].name, n, 0, {}]] for n in range(len(nodes))]
            entries.append(
                {**keras.layers.serialize(part), "name": part.name, "inbound_nodes": nodes}
            )
        return entries

    def weights(layer):
        values = layer.get_weights()
        if layer.name not in targets:
            return values
        s = layer.strides[0]
        kernel = subpixel_kernel(
            values[0], s, crops.get(layer.name, ((0, 0), (0, 0))), layer.padding
        )
        return [kernel] + [np.tile(b, s * s) for b in values[1:]]

    entries = _entries(config, rename, as_chain)
    return _rebuilt(model, config, entries, rename, custom_objects, weights)


def _rebuilt(model, config, entries, rename, custom_objects, weights=None) -> keras.Model:
    """The model of ``config`` with ``entries`` as its layers, ``model``'s weights by name.

    ``rename`` moves the output references; ``weights(layer)`` gives the values of each of
    ``model``'s layers with weights (default: its own).
    """
    config = {**config, "layers": entries, "output_layers": rename(config["output_layers"])}
    copy = keras.Model.from_config(config, custom_objects=custom_objects)
    for layer in model.layers:
        if layer.weights:
            values = weights(layer) if weights else layer.get_weights()
            copy.get_layer(layer.name).set_weights(values)
    return copy


def _prelu_as_leaky_relu(prelu: layers.PReLU) -> tuple[Any, None]:
    """The ``LeakyReLU`` with ``prelu``'s one slope (``nn.PReLU()``: PCNet, MPRNet).

    Same function; the int8 ``LEAKY_RELU`` runs inside LiteRT's XNNPACK delegate, while int8
    ``PRELU`` has no XNNPACK kernel and splits the graph at every use (PCNet: 201 uses, 203
    delegate partitions). The slope is frozen during the fine-tune.
    """
    return layers.LeakyReLU(alpha=float(prelu.alpha.numpy().ravel()[0]), name=prelu.name), None


__all__ = [
    "DepthToSpace",
    "clone",
    "subpixel_kernel",
    "unshare_weightless_layers",
    "with_leaky_relus",
    "with_subpixel_convolutions",
]
