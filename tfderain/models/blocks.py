"""Building blocks shared by several architectures.

Everything here is either a plain function composing built-in Keras layers (so TFMOT can quantize
the result) or a small serializable custom layer registered under the package ``tfderain``.

A custom layer declares as class data what the rest of the library needs to know about it:
``TORCH_PARAMS`` (its official parameters, in order, for the converter), ``QUANTIZE`` (how
quantization-aware training treats it: ``"output"``, quantize its output only, or ``"none"``,
data movement whose output keeps its input's scale) and ``FLOAT_IN_INT8 = True`` where its
operators stay float32 in ``int8`` files (statistics with tiny guard terms); see
:mod:`tfderain.export.qat` and :mod:`tfderain.export.calibration`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tfderain._keras import keras, tf

layers = keras.layers
serializable = keras.saving.register_keras_serializable(package="tfderain")


def conv(filters: int, kernel_size: int = 3, name: str | None = None, **kwargs) -> layers.Conv2D:
    """A stride-1 'same' convolution, the equivalent of torch ``Conv2d(k, padding=k // 2)``."""
    return layers.Conv2D(filters, kernel_size, padding="same", name=name, **kwargs)


@serializable
class ZerosLike(layers.Layer):
    """Zeros with the batch and spatial shape of the input and ``channels`` channels.

    Used as the initial hidden/cell state of recurrent convolutional units. The zeros are
    computed from the input (its first channel times a zero vector, broadcast) rather than
    created with ``tf.zeros(shape)``: for a fixed input size, converters fold the latter into a
    constant of the full state size (4 MB for a 256×256×16 float state in a ``.tflite`` file).
    """

    QUANTIZE = "none"

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels

    def call(self, x):
        return x[..., :1] * tf.zeros([self.channels], dtype=x.dtype)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


@serializable
class Stack(layers.Layer):
    """Stacks a list of same-shaped tensors along a new ``axis`` (stage outputs → ``stages``)."""

    QUANTIZE = "output"

    def __init__(self, axis: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, xs):
        return tf.stack(xs, axis=self.axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class ConvLSTMCell:
    """One step of a convolutional LSTM with four separate gate convolutions.

    The gate order and the ``[x, h]`` concatenation follow PReNet's official code: each gate is
    its own 3×3 convolution over ``concat([x, h])``; ``c' = f·c + i·g``, ``h' = o·tanh(c')``.
    Calling the cell again reuses the same weights (weight sharing across stages); ``tag`` makes
    the names of the per-call merge layers unique.
    """

    def __init__(self, channels: int, kernel_size: int = 3, prefix: str = "conv_"):
        self.channels = channels
        self.gates = {
            g: conv(channels, kernel_size, activation=act, name=f"{prefix}{g}")
            for g, act in (("i", "sigmoid"), ("f", "sigmoid"), ("g", "tanh"), ("o", "sigmoid"))
        }

    def __call__(self, x, h, c, tag: str):
        z = layers.Concatenate(name=f"{tag}_lstm_xh")([x, h])
        i, f, g, o = (self.gates[k](z) for k in "ifgo")
        fc = layers.Multiply(name=f"{tag}_lstm_fc")([f, c])
        ig = layers.Multiply(name=f"{tag}_lstm_ig")([i, g])
        c = layers.Add(name=f"{tag}_lstm_c")([fc, ig])
        tanh_c = layers.Activation("tanh", name=f"{tag}_lstm_tanh_c")(c)
        h = layers.Multiply(name=f"{tag}_lstm_h")([o, tanh_c])
        return h, c


# --------------------------------------------------------------------------- Restormer-style blocks
#
# Restormer's transformer block (MDTA attention + GDFN feed-forward), its two channel LayerNorms
# and its pixel-(un)shuffle resampling, shared by every architecture built from them. Layers are
# named after the official ``state_dict`` module paths (dots → underscores), so a model's key
# table is ``{module_name(m): m for m in modules}``.

#: torch ``LayerNorm`` epsilon, inside the square root.
TORCH_LN_EPS = 1e-5
#: Restormer's two channel LayerNorms, by their official ``LayerNorm_type`` names.
LAYER_NORM_TYPES = ("WithBias", "BiasFree")
#: Restormer's GDFN expansion factor (hidden width ``int(width · 2.66)``).
DEFAULT_FFN_EXPANSION = 2.66
#: Restormer's attention heads of the four U-Net levels.
DEFAULT_HEADS = (1, 2, 4, 8)


def module_name(module: str) -> str:
    """Keras layer name of an official module path (``a.b.0`` → ``a_b_0``)."""
    return module.replace(".", "_")


@serializable
class BiasFreeLayerNorm(layers.Layer):
    """Restormer's ``BiasFree_LayerNorm`` over channels: ``x / sqrt(var(x) + eps) · weight``.

    ``x`` is scaled, not centred (the variance is still taken around the mean), and there is no
    shift; so this is not ``LayerNormalization(center=False)``, which subtracts the mean.
    """

    QUANTIZE = "output"
    FLOAT_IN_INT8 = True
    TORCH_PARAMS = ("weight",)

    def __init__(self, epsilon: float = TORCH_LN_EPS, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape):
        self.weight = self.add_weight(
            name="weight", shape=(int(input_shape[-1]),), initializer="ones"
        )
        super().build(input_shape)

    def call(self, x):
        variance = tf.math.reduce_variance(x, axis=-1, keepdims=True)
        return x * tf.math.rsqrt(variance + self.epsilon) * self.weight

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@serializable
class TransposedAttention(layers.Layer):
    """Core of MDTA: channel ("transposed") self-attention of the ``q, k, v`` thirds of the input.

    Input: ``(N, H, W, 3C)`` (the depthwise-convolved 1×1 projection); output ``(N, H, W, C)``.
    Channels split into ``num_heads`` heads (head-major: channel ``head · C/heads + c``); per head,
    ``q`` and ``k`` are L2-normalised over all pixels and ``softmax(q kᵀ · temperature) v`` mixes
    the head's channels. The per-head ``temperature`` is the official parameter of shape
    ``(heads, 1, 1)``.
    """

    TORCH_PARAMS = ("temperature",)

    def __init__(self, num_heads: int, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads

    def build(self, input_shape):
        channels = int(input_shape[-1])
        if channels % 3 or (channels // 3) % self.num_heads:
            raise ValueError(
                f"{self.name}: {channels} input channels are not 3 × a multiple of "
                f"{self.num_heads} heads"
            )
        self.temperature = self.add_weight(
            name="temperature", shape=(self.num_heads, 1, 1), initializer="ones"
        )
        super().build(input_shape)

    def _heads_first(self, t, batch, pixels):
        """``(N, H, W, C)`` → ``(N, heads, C / heads, H·W)``."""
        per_head = t.shape[-1] // self.num_heads
        t = tf.reshape(t, [batch, pixels, self.num_heads, per_head])
        return tf.transpose(t, [0, 2, 3, 1])

    @staticmethod
    def _normalize(t):
        """torch ``F.normalize(t, dim=-1)``: ``t / max(‖t‖₂, 1e-12)``."""
        norm = tf.sqrt(tf.reduce_sum(tf.square(t), axis=-1, keepdims=True))
        return t / tf.maximum(norm, 1e-12)

    def call(self, qkv):
        shape = tf.shape(qkv)
        batch, height, width = shape[0], shape[1], shape[2]
        pixels = height * width
        q, k, v = tf.split(qkv, 3, axis=-1)
        q = self._normalize(self._heads_first(q, batch, pixels))
        k = self._normalize(self._heads_first(k, batch, pixels))
        v = self._heads_first(v, batch, pixels)
        attn = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) * self.temperature, axis=-1)
        out = tf.transpose(tf.matmul(attn, v), [0, 3, 1, 2])  # (N, H·W, heads, C / heads)
        return tf.reshape(out, [batch, height, width, qkv.shape[-1] // 3])

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads}


@serializable
class GatedGELU(layers.Layer):
    """GDFN gate: ``gelu(x₁) · x₂`` of the two channel halves, with the exact (erf) GELU."""

    def call(self, x):
        x1, x2 = tf.split(x, 2, axis=-1)
        return tf.nn.gelu(x1, approximate=False) * x2


def _shuffle_permutation(channels: int, factor: int) -> np.ndarray:
    """``perm[k·C + c] = c·r² + k``: torch pixel-shuffle channel → TF depth-to-space channel."""
    blocks = factor * factor
    c, k = np.meshgrid(np.arange(channels), np.arange(blocks))  # both (r², C)
    return (c * blocks + k).reshape(-1)


@serializable
class PixelShuffle(layers.Layer):
    """torch ``nn.PixelShuffle(factor)``: ``(N, H, W, C·r²)`` → ``(N, r·H, r·W, C)``.

    Input channel ``c·r² + i·r + j`` goes to output channel ``c`` at offset ``(i, j)``, whereas
    ``tf.nn.depth_to_space`` reads channel ``(i·r + j)·C + c``; the channels are permuted first.
    """

    QUANTIZE = "output"

    def __init__(self, factor: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        channels = x.shape[-1] // (self.factor * self.factor)
        x = tf.gather(x, _shuffle_permutation(channels, self.factor), axis=-1)
        return tf.nn.depth_to_space(x, self.factor)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@serializable
class PixelUnshuffle(layers.Layer):
    """torch ``nn.PixelUnshuffle(factor)``: ``(N, r·H, r·W, C)`` → ``(N, H, W, C·r²)``.

    Output channel ``c·r² + i·r + j`` holds input channel ``c`` at offset ``(i, j)``, whereas
    ``tf.nn.space_to_depth`` writes it to ``(i·r + j)·C + c``; the channels are permuted after.
    """

    QUANTIZE = "output"

    def __init__(self, factor: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        channels = x.shape[-1]
        x = tf.nn.space_to_depth(x, self.factor)
        inverse = np.argsort(_shuffle_permutation(channels, self.factor))
        return tf.gather(x, inverse, axis=-1)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def layer_norm(kind: str, module: str) -> layers.Layer:
    """Restormer's ``LayerNorm(dim, kind).body`` over channels, named after ``module``.

    ``"WithBias"`` is a Keras ``LayerNormalization`` (biased variance, ``eps=1e-5``);
    ``"BiasFree"`` is :class:`BiasFreeLayerNorm`.
    """
    if kind == "WithBias":
        return layers.LayerNormalization(epsilon=TORCH_LN_EPS, name=module_name(module))
    if kind == "BiasFree":
        return BiasFreeLayerNorm(epsilon=TORCH_LN_EPS, name=module_name(module))
    raise ValueError(f"layer norm type must be one of {LAYER_NORM_TYPES}, got {kind!r}")


def transformer_block(
    x: tf.Tensor,
    width: int,
    heads: int,
    module: str,
    *,
    ffn_expansion_factor: float = DEFAULT_FFN_EXPANSION,
    bias: bool = False,
    norm: str = "WithBias",
) -> tf.Tensor:
    """Restormer's ``TransformerBlock``: ``x + MDTA(LN(x))``, then ``x + GDFN(LN(x))``.

    MDTA: 1×1 conv to ``3·width``, depthwise 3×3, :class:`TransposedAttention`, 1×1 conv.
    GDFN: 1×1 conv to ``2·hidden`` (``hidden = int(width · ffn_expansion_factor)``), depthwise
    3×3, :class:`GatedGELU`, 1×1 conv back to ``width``. ``bias`` applies to all six
    convolutions; ``norm`` is ``"WithBias"`` or ``"BiasFree"``. ``module`` is the official
    module path of the block (``encoder_level1.0``).
    """
    tag = module_name(module)
    hidden = int(width * ffn_expansion_factor)

    def pointwise(filters: int, suffix: str) -> layers.Conv2D:
        return conv(filters, 1, use_bias=bias, name=module_name(f"{module}.{suffix}"))

    def depthwise(suffix: str) -> layers.DepthwiseConv2D:
        name = module_name(f"{module}.{suffix}")
        return layers.DepthwiseConv2D(3, padding="same", use_bias=bias, name=name)

    y = layer_norm(norm, f"{module}.norm1.body")(x)
    y = depthwise("attn.qkv_dwconv")(pointwise(3 * width, "attn.qkv")(y))
    y = TransposedAttention(heads, name=f"{tag}_attn")(y)
    y = pointwise(width, "attn.project_out")(y)
    x = layers.Add(name=f"{tag}_attn_add")([x, y])
    y = layer_norm(norm, f"{module}.norm2.body")(x)
    y = depthwise("ffn.dwconv")(pointwise(2 * hidden, "ffn.project_in")(y))
    y = GatedGELU(name=f"{tag}_ffn_gate")(y)
    y = pointwise(width, "ffn.project_out")(y)
    return layers.Add(name=f"{tag}_ffn_add")([x, y])


def transformer_stack(
    x: tf.Tensor, width: int, heads: int, blocks: int, stack: str, **block_options
) -> tf.Tensor:
    """``blocks`` transformer blocks in sequence, official modules ``stack.0`` … ``stack.{n-1}``."""
    for i in range(blocks):
        x = transformer_block(x, width, heads, f"{stack}.{i}", **block_options)
    return x


def transformer_block_modules(module: str) -> list[str]:
    """Official modules with parameters inside the transformer block ``module`` (key tables)."""
    return [
        f"{module}.{sub}"
        for sub in (
            "norm1.body",
            "attn",
            "attn.qkv",
            "attn.qkv_dwconv",
            "attn.project_out",
            "norm2.body",
            "ffn.project_in",
            "ffn.dwconv",
            "ffn.project_out",
        )
    ]


def downsample(width: int, module: str) -> Callable[[tf.Tensor], tf.Tensor]:
    """Restormer's ``Downsample``: bias-free ``Conv3×3(n → n/2)`` then ``PixelUnshuffle(2)``.

    ``(H, W, n)`` → ``(H/2, W/2, 2n)``; the layers are ``{module}_body_0`` and ``_body_1``.
    Returned as a callable, so every application shares the same layers.
    """
    convolution = conv(width // 2, 3, use_bias=False, name=module_name(f"{module}.body.0"))
    unshuffle = PixelUnshuffle(2, name=module_name(f"{module}.body.1"))
    return lambda x: unshuffle(convolution(x))


def upsample(width: int, module: str) -> Callable[[tf.Tensor], tf.Tensor]:
    """Restormer's ``Upsample``: bias-free ``Conv3×3(n → 2n)`` then ``PixelShuffle(2)``.

    ``(H, W, n)`` → ``(2H, 2W, n/2)``; the layers are ``{module}_body_0`` and ``_body_1``.
    Returned as a callable, so every application shares the same layers.
    """
    convolution = conv(width * 2, 3, use_bias=False, name=module_name(f"{module}.body.0"))
    shuffle = PixelShuffle(2, name=module_name(f"{module}.body.1"))
    return lambda x: shuffle(convolution(x))


def check_transformer_unet(
    dim: int,
    num_blocks: Sequence[int],
    num_refinement_blocks: int,
    heads: Sequence[int],
    ffn_expansion_factor: float,
    norm: str,
    norm_arg: str,
) -> None:
    """Clear errors for a four-level transformer U-Net config (level ``l`` has width dim·2^l).

    ``norm_arg`` is the builder's name for the LayerNorm type, used in the message.
    """
    if len(num_blocks) != 4 or len(heads) != 4:
        raise ValueError(f"num_blocks and heads need 4 entries, got {num_blocks}, {heads}")
    if dim < 2 or dim % 2 or min(heads) < 1:
        raise ValueError(
            f"heads must be positive and dim even and positive; got dim={dim}, heads={heads}"
        )
    if min(num_blocks) < 0 or num_refinement_blocks < 0:
        raise ValueError(
            f"block counts must be non-negative, got {num_blocks}, {num_refinement_blocks}"
        )
    for level, n_heads in enumerate(heads):
        width = dim * 2**level
        if width % n_heads:
            raise ValueError(
                f"level {level + 1} width {width} is not a multiple of {n_heads} heads"
            )
        if int(width * ffn_expansion_factor) < 1:
            raise ValueError(f"ffn_expansion_factor {ffn_expansion_factor} leaves no hidden units")
    if norm not in LAYER_NORM_TYPES:
        raise ValueError(f"{norm_arg} must be one of {LAYER_NORM_TYPES}, got {norm!r}")


def count_blocks(state_dict: Mapping[str, np.ndarray], stack: str) -> int:
    """Number of transformer blocks ``stack.0``, ``stack.1``, … in an official state dict."""
    n = 0
    while f"{stack}.{n}.attn.temperature" in state_dict:
        n += 1
    return n


def _first_block(state_dict: Mapping[str, np.ndarray], stack: str) -> dict[str, Any] | None:
    """``heads``, ``width``, GDFN ``hidden`` width and LayerNorm type of block ``stack.0``."""
    block = f"{stack}.0"
    if f"{block}.attn.temperature" not in state_dict:
        return None
    project_out = state_dict[f"{block}.ffn.project_out.weight"]
    return {
        "heads": int(state_dict[f"{block}.attn.temperature"].shape[0]),
        "width": int(project_out.shape[0]),
        "hidden": int(project_out.shape[1]),
        "norm": "WithBias" if f"{block}.norm1.body.bias" in state_dict else "BiasFree",
    }


def infer_transformer_levels(
    state_dict: Mapping[str, np.ndarray],
    level_stacks: Sequence[Sequence[str]],
    default_heads: Sequence[int],
) -> dict[str, Any]:
    """Heads per level, LayerNorm type and GDFN expansion factor from an official state dict.

    ``level_stacks[l]`` names the transformer stacks of level ``l`` in order of preference; the
    first one with a block gives the level's heads (a level without blocks keeps its entry of
    ``default_heads``). ``norm`` is ``None`` unless every level agrees, ``ffn_expansion_factor``
    is ``None`` unless one factor (Restormer's 2.66 preferred, else the first level's ratio)
    reproduces every level's hidden width.
    """
    heads = list(default_heads)
    widths = []  # (width, hidden width) of one block per level
    norms = set()
    for level, stacks in enumerate(level_stacks):
        found = next(filter(None, (_first_block(state_dict, stack) for stack in stacks)), None)
        if found is not None:
            heads[level] = found["heads"]
            widths.append((found["width"], found["hidden"]))
            norms.add(found["norm"])
    factor = None
    for candidate in (DEFAULT_FFN_EXPANSION, *(h / w for w, h in widths[:1])):
        if widths and all(int(w * candidate) == h for w, h in widths):
            factor = candidate
            break
    return {
        "heads": heads,
        "norm": norms.pop() if len(norms) == 1 else None,
        "ffn_expansion_factor": factor,
    }


#: The 0-based levels of a transformer U-Net's decoder, in the order they run.
_DECODER_LEVELS = (2, 1, 0)


@dataclass(frozen=True)
class TransformerUNet:
    """Restormer's four-level transformer U-Net, under one architecture's official module names.

    Level ``l`` (0-based) has width ``dim · 2^l``. Encoder level ``l`` runs the transformer stack
    ``encoder[l]`` and, except the last, the :func:`downsample` ``down[l]`` into level ``l + 1``.
    Decoder levels 3, 2 and 1, in that order, are ``decoder`` entries ``(upsampler, channel
    reduction, stack)``: :func:`upsample` the features from below, concatenate ``[upsampled,
    skip]`` (layer ``{stack}_in``), reduce the channels to the level's width with a 1×1
    convolution and run the stack. A level without a reduction (``None``) runs its stack at the
    concatenation's width, twice the level's. The ``refinement`` stack follows at the width of
    decoder level 1.

    Attributes:
        encoder: transformer stacks of encoder levels 1–4.
        down: downsamplers from level 1 to 2, 2 to 3 and 3 to 4.
        decoder: ``(upsampler, channel reduction or None, stack)`` of decoder levels 3, 2, 1.
        refinement: transformer stack after decoder level 1.
        decoder_blocks: for decoder levels 3, 2, 1, the entry of ``num_blocks`` giving their
            number of blocks.
        norm_arg: the builder's name for the LayerNorm type, in errors and inferred configs.
        coupling: multi-scale coupling (DTPNet): after each decoder level, its upsampler is
            applied a second time, to the encoder's input of the level below, and the result is
            added to the level's output (layer ``{stack}_coupling``).
    """

    encoder: tuple[str, str, str, str]
    down: tuple[str, str, str]
    decoder: tuple[tuple[str, str | None, str], ...]
    refinement: str
    decoder_blocks: tuple[int, int, int]
    norm_arg: str
    coupling: bool = False

    def stack_lengths(
        self, num_blocks: Sequence[int], num_refinement_blocks: int
    ) -> dict[str, int]:
        """Transformer stack name → number of blocks."""
        lengths = dict(zip(self.encoder, num_blocks, strict=True))
        for (_, _, stack), index in zip(self.decoder, self.decoder_blocks, strict=True):
            lengths[stack] = num_blocks[index]
        lengths[self.refinement] = num_refinement_blocks
        return lengths

    def modules(self, num_blocks: Sequence[int], num_refinement_blocks: int) -> list[str]:
        """Official modules with parameters: resamplers, channel reductions, transformer blocks."""
        modules = [f"{down}.body.0" for down in self.down]
        modules += [f"{up}.body.0" for up, _, _ in self.decoder]
        modules += [reduce for _, reduce, _ in self.decoder if reduce is not None]
        for stack, length in self.stack_lengths(num_blocks, num_refinement_blocks).items():
            for i in range(length):
                modules += transformer_block_modules(f"{stack}.{i}")
        return modules

    def infer_config(
        self, state_dict: Mapping[str, np.ndarray], dim_weight: str, bias_key: str
    ) -> dict[str, Any]:
        """Width, block counts, heads, bias, LayerNorm type and FFN expansion from a checkpoint.

        ``dim`` is the output channels of the weight ``dim_weight``; ``bias`` is whether the
        checkpoint has ``bias_key``. The LayerNorm type (under ``norm_arg``) and
        ``ffn_expansion_factor`` are left out when the checkpoint does not settle them.
        """
        config: dict[str, Any] = {
            "dim": int(state_dict[dim_weight].shape[0]),
            "num_blocks": [count_blocks(state_dict, stack) for stack in self.encoder],
            "num_refinement_blocks": count_blocks(state_dict, self.refinement),
            "bias": bias_key in state_dict,
        }
        # Heads per level, from the encoder or else from a decoder/refinement stack of that level.
        sources = [[stack] for stack in self.encoder]
        for level, (_, _, stack) in zip(_DECODER_LEVELS, self.decoder, strict=True):
            sources[level].append(stack)
        sources[0].append(self.refinement)
        levels = infer_transformer_levels(state_dict, sources, DEFAULT_HEADS)
        config["heads"] = levels["heads"]
        if levels["norm"] is not None:
            config[self.norm_arg] = levels["norm"]
        if levels["ffn_expansion_factor"] is not None:
            config["ffn_expansion_factor"] = levels["ffn_expansion_factor"]
        return config

    def configure(
        self,
        dim: int,
        num_blocks: Sequence[int],
        num_refinement_blocks: int,
        heads: Sequence[int],
        ffn_expansion_factor: float,
        bias: bool,
        norm: str,
    ) -> Callable[[tf.Tensor], tf.Tensor]:
        """Check a config (clear errors before any layer exists) and return its U-Net.

        The U-Net maps the embedded image (``dim`` channels) to the refinement stack's output.
        ``bias`` applies to the transformer blocks and the channel reductions, never to the
        resampling convolutions.
        """
        num_blocks, heads = tuple(num_blocks), tuple(heads)
        check_transformer_unet(
            dim,
            num_blocks,
            num_refinement_blocks,
            heads,
            ffn_expansion_factor,
            norm,
            norm_arg=self.norm_arg,
        )
        lengths = self.stack_lengths(num_blocks, num_refinement_blocks)
        block = {"ffn_expansion_factor": ffn_expansion_factor, "bias": bias, "norm": norm}
        return lambda x: self._build(x, dim, heads, lengths, block)

    def _build(self, x, dim: int, heads: tuple[int, ...], lengths: dict[str, int], block: dict):
        widths = [dim * 2**level for level in range(4)]
        # level_input[l] enters encoder level l, encoded[l] leaves it.
        level_input, encoded = [x], []
        for level, stack in enumerate(self.encoder):
            x = transformer_stack(
                level_input[level], widths[level], heads[level], lengths[stack], stack, **block
            )
            encoded.append(x)
            if level < 3:
                level_input.append(downsample(widths[level], self.down[level])(x))
        for level, (up_name, reduce, stack) in zip(_DECODER_LEVELS, self.decoder, strict=True):
            up = upsample(widths[level + 1], up_name)
            x = layers.Concatenate(name=f"{module_name(stack)}_in")([up(x), encoded[level]])
            width = widths[level]
            if reduce is None:
                width *= 2
            else:
                x = conv(width, 1, use_bias=block["bias"], name=module_name(reduce))(x)
            x = transformer_stack(x, width, heads[level], lengths[stack], stack, **block)
            if self.coupling:
                coupled = up(level_input[level + 1])
                x = layers.Add(name=f"{module_name(stack)}_coupling")([x, coupled])
        return transformer_stack(
            x, width, heads[0], lengths[self.refinement], self.refinement, **block
        )
