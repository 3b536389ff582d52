"""DTPNet: detail scaling, transformer texture extraction and progressive refinement.

Paper: J. Huang, Z. Tang, X. He, J. Zhou, D. Zhou, C. Y.-C. Chen, "Progressive network based on
detail scaling and texture extraction: A more general framework for image deraining",
Neurocomputing 568 (2024) 127066. Official code: https://github.com/JackAILab/DTPNet
(``networks.py``, class ``DTPnet``).

The network has three layers, as in the paper's figure:

1. **Detail scaling** (``patch_embed``, the paper's "detail dilation"): a 3×3 convolution with
   ReLU, two bilinear ×0.5 reductions and a ×2 enlargement give a band-pass detail image
   ``d1 − up(d2)``; it is enlarged ×2 again and embedded by the same 3×3 convolution
   (``transform2``) that embeds the input, and subtracted from the input embedding.
2. **Texture extraction** (multi-scale feature extraction and hybrid strategy): a four-level
   Restormer-style U-Net of transformer blocks (MDTA attention + GDFN feed-forward) with
   pixel-unshuffle downsampling and pixel-shuffle upsampling. Multi-scale coupling: after each
   decoder level, the level's upsampler is applied a second time, to the encoder's downsampled
   input of the level below, and the result is added to the decoder features. Refinement
   transformer blocks (``outc``) and a 3×3 convolution (``conv_final``) give the coarse
   prediction ``pred1``.
3. **Progressive refinement**: a PReNet-style recurrent stage (fixed width 32, conv-LSTM, five
   residual blocks, weights shared across the ``recurrent_iter`` iterations) starts from
   ``pred1`` and adds the rainy input back after every iteration.

Outputs:
    ``derained``: the last recurrent iteration (official ``forward()[0]``), not clamped; the
    official scripts clamp to [0, 1] for display and metrics.
    ``stages``: shape ``(N, 1 + recurrent_iter, H, W, 3)``. ``stages[:, 0]`` is ``pred1``
    (official ``forward()[1]``): the transformer U-Net's coarse prediction ``conv_final(outc(·))``
    that seeds Layer 3, with no residual connection to the input and not clamped (the official
    training supervises it with ``0.5 · MSE``). ``stages[:, t]`` for ``t ≥ 1`` is the estimate
    after recurrent iteration ``t`` (the official ``x_list``, which it collects but does not
    return); ``stages[:, -1] == derained``.

Where the official code is more specific than, or differs from, the paper's description:
    * The constructor hard-codes ``dim=64``, ``num_blocks=[4, 6, 6, 8]``,
      ``num_refinement_blocks=4``, ``heads=[1, 2, 4, 8]``, ``ffn_expansion_factor=2.66``,
      ``bias=False`` and ``LayerNorm_type='WithBias'`` (45,246,322 parameters); the builder
      exposes them with these defaults. The constructor's own arguments other than
      ``recurrent_iter`` (``kernel_size``, ``sep_conv``, ``core_bias``, ``burst_length``,
      ``color``, ``blind_est``, ``factor``, ``channel_att``, ``spatial_att``, ``upMode``,
      ``use_GPU``) only feed an unused variable or device placement and are not exposed.
    * All three decoder levels (``conv4_3_HSI``, ``conv3_2_HSI``, ``conv2_1_HSI``) have
      ``num_blocks[1]`` transformer blocks, not ``num_blocks[2]``/``[1]``/``[0]``; their heads are
      ``heads[2]``, ``heads[1]``, ``heads[0]``.
    * Unlike Restormer, level 1 also has a 1×1 channel reduction (``reduce_chan_level1``), so the
      level-1 decoder and the refinement blocks work at width ``dim`` (Restormer: ``2·dim``).
      Concatenations are ``[upsampled, skip]``.
    * ``up4_3``, ``up3_2`` and ``up2_1`` are each applied twice with the same weights (decoder
      path and multi-scale coupling); here each is one conv layer called twice.
    * ``patch_embed.transform2`` embeds both the input and the enlarged detail image (one layer
      called twice); the detail scaling has no bias anywhere (``OverlapPatchEmbed`` is built with
      its default ``bias=False`` whatever the network's ``bias``), nor do the resampling convs.
    * ``outc`` is a stack of transformer blocks (not a convolution, despite the name) and
      ``conv_final`` is a 3×3 convolution ``dim → 3`` without a residual to the input.
    * Layer 3 is PReNet with width fixed at 32 and 3×3 convolutions with biases, but its first
      estimate is ``pred1`` (PReNet starts from the rainy image); each iteration runs ``conv0`` on
      ``concat([rainy, estimate])`` (rainy first), the LSTM gates on ``concat([x, h])``, residual
      blocks ``ReLU(ReLU(conv(ReLU(conv(x)))) + x)`` and adds the rainy input to ``conv(x)``.
    * All bilinear resampling uses ``align_corners=False`` without antialiasing. A ×0.5 bilinear
      reduction of this kind is exactly a 2×2 average, so it is an ``AveragePooling2D`` here;
      the ×2 enlargement is ``UpSampling2D(interpolation="bilinear")`` (half-pixel centres, edge
      clamping, as torch).
    * ``LayerNorm`` normalises over channels per pixel with the biased variance and ``eps=1e-5``.
      ``WithBias`` is a Keras ``LayerNormalization``; ``BiasFree`` divides ``x`` (not
      ``x − mean``) by ``sqrt(var + eps)`` and has no shift (:class:`DTPNetBiasFreeLayerNorm`).
    * MDTA: ``q, k, v`` are the thirds of ``dwconv3×3(conv1×1(x))`` in that order, the channel
      index is ``head · (C / heads) + c``, ``q`` and ``k`` are L2-normalised over all pixels
      (``F.normalize``, floor ``1e-12``), the ``(C/heads) × (C/heads)`` attention is scaled by a
      learned per-head temperature before the softmax. GDFN uses the exact (erf) GELU on the
      first half of the depthwise-convolved channels, gating the second half; the hidden width is
      ``int(width · ffn_expansion_factor)`` per level.
    * torch ``PixelShuffle``/``PixelUnshuffle`` order channels as ``c · 4 + i · 2 + j``, while
      ``tf.nn.depth_to_space``/``space_to_depth`` use ``(i · 2 + j) · C + c``; the layers
      :class:`DTPNetPixelShuffle` and :class:`DTPNetPixelUnshuffle` permute channels to match.

Height and width must be multiples of 8 (three pixel-unshuffle levels; the detail scaling needs
4). MDTA attends over the whole image, so tiled inference only approximates a whole-image run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from tfderain._keras import keras, tf
from tfderain.models import register
from tfderain.models.blocks import ConvLSTMCell, Stack, ZerosLike

layers = keras.layers
serializable = keras.saving.register_keras_serializable(package="tfderain")

#: Transformer stacks of the encoder, one per level (widths dim, 2·dim, 4·dim, 8·dim).
_ENCODER = ("conv1_2", "conv2_3", "conv3_4", "conv4_L")
#: Decoder levels 3, 2, 1: (upsampler, channel reduction, transformer stack).
_DECODER = (
    ("up4_3", "reduce_chan_level3", "conv4_3_HSI"),
    ("up3_2", "reduce_chan_level2", "conv3_2_HSI"),
    ("up2_1", "reduce_chan_level1", "conv2_1_HSI"),
)
_DOWN = ("down1_2", "down2_3", "down3_4")
_REFINEMENT = "outc"
_TORCH_LN_EPS = 1e-5
_PRENET_WIDTH = 32
_RES_BLOCKS = 5
_LAYER_NORM_TYPES = ("WithBias", "BiasFree")
_DEFAULT_HEADS = (1, 2, 4, 8)
_DEFAULT_FFN_EXPANSION = 2.66


def _name(module: str) -> str:
    """Keras layer name of an official module path."""
    return module.replace(".", "_")


# --------------------------------------------------------------------------- custom layers


@serializable
class DTPNetBiasFreeLayerNorm(layers.Layer):
    """Restormer's ``BiasFree_LayerNorm`` over channels: ``x / sqrt(var(x) + eps) · weight``.

    ``x`` is scaled, not centred (the variance is still taken around the mean), and there is no
    shift.
    """

    TORCH_PARAMS = ("weight",)

    def __init__(self, epsilon: float = _TORCH_LN_EPS, **kwargs):
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
class DTPNetTransposedAttention(layers.Layer):
    """Core of MDTA: channel ("transposed") self-attention of the ``q, k, v`` thirds of the input.

    Input: ``(N, H, W, 3C)`` (the depthwise-convolved 1×1 projection); output ``(N, H, W, C)``.
    Channels split into ``num_heads`` heads (head-major); per head, ``q`` and ``k`` are
    L2-normalised over all pixels and ``softmax(q kᵀ · temperature) v`` mixes the head's channels.
    The per-head ``temperature`` is the official parameter of shape ``(heads, 1, 1)``.
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
class DTPNetGatedGELU(layers.Layer):
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
class DTPNetPixelShuffle(layers.Layer):
    """torch ``nn.PixelShuffle(factor)``: ``(N, H, W, C·r²)`` → ``(N, r·H, r·W, C)``.

    Input channel ``c·r² + i·r + j`` goes to output channel ``c`` at offset ``(i, j)``.
    """

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
class DTPNetPixelUnshuffle(layers.Layer):
    """torch ``nn.PixelUnshuffle(factor)``: ``(N, r·H, r·W, C)`` → ``(N, H, W, C·r²)``.

    Output channel ``c·r² + i·r + j`` holds input channel ``c`` at offset ``(i, j)``.
    """

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


# --------------------------------------------------------------------------- key table


def _block_modules(module: str) -> list[str]:
    """Official modules with parameters inside one transformer block ``module``."""
    return [
        f"{module}.norm1.body",
        f"{module}.attn",
        f"{module}.attn.qkv",
        f"{module}.attn.qkv_dwconv",
        f"{module}.attn.project_out",
        f"{module}.norm2.body",
        f"{module}.ffn.project_in",
        f"{module}.ffn.dwconv",
        f"{module}.ffn.project_out",
    ]


def _stack_lengths(num_blocks: Sequence[int], num_refinement_blocks: int) -> dict[str, int]:
    """Transformer stack name → number of blocks (the decoder quirk: all use ``num_blocks[1]``)."""
    lengths = dict(zip(_ENCODER, num_blocks, strict=True))
    lengths.update({stack: num_blocks[1] for _, _, stack in _DECODER})
    lengths[_REFINEMENT] = num_refinement_blocks
    return lengths


def _key_map(
    num_blocks: Sequence[int] = (4, 6, 6, 8), num_refinement_blocks: int = 4, **_
) -> dict[str, str]:
    """Keras layer name → official ``state_dict`` module prefix."""
    modules = ["patch_embed.transform1.0", "patch_embed.transform2", "conv_final"]
    modules += [f"{down}.body.0" for down in _DOWN]
    modules += [f"{up}.body.0" for up, _, _ in _DECODER] + [red for _, red, _ in _DECODER]
    for stack, length in _stack_lengths(num_blocks, num_refinement_blocks).items():
        for i in range(length):
            modules += _block_modules(f"{stack}.{i}")
    modules += ["conv0.0", "conv.0"]
    modules += [f"res_conv{k}.{j}" for k in range(1, _RES_BLOCKS + 1) for j in (0, 2)]
    table = {_name(m): m for m in modules}
    table.update({f"conv_{g}": f"conv_{g}.0" for g in "ifgo"})  # ConvLSTMCell's gate names
    return table


def _count_blocks(state_dict: Mapping[str, np.ndarray], stack: str) -> int:
    n = 0
    while f"{stack}.{n}.attn.temperature" in state_dict:
        n += 1
    return n


def _infer_config(state_dict: Mapping[str, np.ndarray]) -> dict:
    """Widths, block counts, heads, norm type, bias and FFN expansion from the checkpoint.

    ``recurrent_iter`` is not stored in the weights and keeps its default.
    """
    dim = int(state_dict["patch_embed.transform2.weight"].shape[0])
    num_blocks = [_count_blocks(state_dict, stack) for stack in _ENCODER]
    config: dict = {
        "dim": dim,
        "num_blocks": num_blocks,
        "num_refinement_blocks": _count_blocks(state_dict, _REFINEMENT),
        "bias": "reduce_chan_level1.bias" in state_dict,
    }
    # Heads per level, from the encoder or else from a decoder/refinement stack of that level.
    sources = [
        (_ENCODER[0], "conv2_1_HSI", _REFINEMENT),
        (_ENCODER[1], "conv3_2_HSI"),
        (_ENCODER[2], "conv4_3_HSI"),
        (_ENCODER[3],),
    ]
    heads = list(_DEFAULT_HEADS)
    widths: dict[int, tuple[int, int]] = {}  # level → (width, FFN hidden width)
    norm_types = set()
    for level, stacks in enumerate(sources):
        for stack in stacks:
            key = f"{stack}.0.attn.temperature"
            if key in state_dict:
                heads[level] = int(state_dict[key].shape[0])
                hidden = state_dict[f"{stack}.0.ffn.project_out.weight"].shape[1]
                widths[level] = (dim * 2**level, int(hidden))
                has_bias = f"{stack}.0.norm1.body.bias" in state_dict
                norm_types.add("WithBias" if has_bias else "BiasFree")
                break
    config["heads"] = heads
    if len(norm_types) == 1:
        config["layer_norm_type"] = norm_types.pop()
    if widths:
        width, hidden = next(iter(widths.values()))
        for factor in (_DEFAULT_FFN_EXPANSION, hidden / width):
            if all(int(w * factor) == h for w, h in widths.values()):
                config["ffn_expansion_factor"] = factor
                break
    return config


# --------------------------------------------------------------------------- graph


class _DTPNetBuilder:
    """Builds the functional graph for one config."""

    def __init__(self, ffn_expansion_factor: float, bias: bool, layer_norm_type: str):
        self.ffn_expansion_factor = ffn_expansion_factor
        self.bias = bias
        self.layer_norm_type = layer_norm_type

    def conv(self, filters: int, kernel_size: int, module: str, bias: bool | None = None):
        use_bias = self.bias if bias is None else bias
        return layers.Conv2D(
            filters, kernel_size, padding="same", use_bias=use_bias, name=_name(module)
        )

    def layer_norm(self, module: str) -> layers.Layer:
        if self.layer_norm_type == "WithBias":
            return layers.LayerNormalization(epsilon=_TORCH_LN_EPS, name=_name(module))
        return DTPNetBiasFreeLayerNorm(epsilon=_TORCH_LN_EPS, name=_name(module))

    def depthwise(self, module: str) -> layers.DepthwiseConv2D:
        return layers.DepthwiseConv2D(3, padding="same", use_bias=self.bias, name=_name(module))

    def transformer_block(self, x, width: int, heads: int, module: str):
        """``x + MDTA(LN(x))``, then ``x + GDFN(LN(x))``."""
        tag = _name(module)
        y = self.layer_norm(f"{module}.norm1.body")(x)
        y = self.conv(3 * width, 1, f"{module}.attn.qkv")(y)
        y = self.depthwise(f"{module}.attn.qkv_dwconv")(y)
        y = DTPNetTransposedAttention(heads, name=tag + "_attn")(y)
        y = self.conv(width, 1, f"{module}.attn.project_out")(y)
        x = layers.Add(name=f"{tag}_attn_add")([x, y])
        hidden = int(width * self.ffn_expansion_factor)
        y = self.layer_norm(f"{module}.norm2.body")(x)
        y = self.conv(2 * hidden, 1, f"{module}.ffn.project_in")(y)
        y = self.depthwise(f"{module}.ffn.dwconv")(y)
        y = DTPNetGatedGELU(name=f"{tag}_ffn_gate")(y)
        y = self.conv(width, 1, f"{module}.ffn.project_out")(y)
        return layers.Add(name=f"{tag}_ffn_add")([x, y])

    def stack(self, x, width: int, heads: int, blocks: int, stack: str):
        for i in range(blocks):
            x = self.transformer_block(x, width, heads, f"{stack}.{i}")
        return x

    def detail_scaling(self, rainy, dim: int):
        """``OverlapPatchEmbed``: input embedding minus the embedded, enlarged detail band."""
        transform2 = self.conv(dim, 3, "patch_embed.transform2", bias=False)
        x_real = transform2(rainy)
        x = self.conv(3, 3, "patch_embed.transform1.0", bias=False)(rainy)
        x = layers.ReLU(name="patch_embed_transform1_1")(x)
        down1 = layers.AveragePooling2D(2, name="patch_embed_down_1")(x)
        down2 = layers.AveragePooling2D(2, name="patch_embed_down_2")(down1)
        up2 = layers.UpSampling2D(2, interpolation="bilinear", name="patch_embed_up_2")(down2)
        detail = layers.Subtract(name="patch_embed_detail")([down1, up2])
        detail = layers.UpSampling2D(2, interpolation="bilinear", name="patch_embed_up_1")(detail)
        return layers.Subtract(name="patch_embed")([x_real, transform2(detail)])

    def downsample(self, width: int, module: str):
        """``Conv3×3(n → n/2)`` then ``PixelUnshuffle(2)``: ``(H, W, n)`` → ``(H/2, W/2, 2n)``."""
        convolution = self.conv(width // 2, 3, f"{module}.body.0", bias=False)
        unshuffle = DTPNetPixelUnshuffle(2, name=f"{module}_body_1")
        return lambda x: unshuffle(convolution(x))

    def upsample(self, width: int, module: str):
        """``Conv3×3(n → 2n)`` then ``PixelShuffle(2)``: ``(H, W, n)`` → ``(2H, 2W, n/2)``.

        Returned as a callable so that both applications share the same layers.
        """
        convolution = self.conv(width * 2, 3, f"{module}.body.0", bias=False)
        shuffle = DTPNetPixelShuffle(2, name=f"{module}_body_1")
        return lambda x: shuffle(convolution(x))

    def progressive_refinement(self, rainy, pred1, iterations: int) -> list:
        """Layer 3: PReNet-style recurrence seeded with ``pred1``; returns every iteration."""
        width = _PRENET_WIDTH
        conv0 = layers.Conv2D(width, 3, padding="same", activation="relu", name="conv0_0")
        res_convs = [
            tuple(
                layers.Conv2D(width, 3, padding="same", activation="relu", name=f"res_conv{k}_{j}")
                for j in (0, 2)
            )
            for k in range(1, _RES_BLOCKS + 1)
        ]
        conv_out = layers.Conv2D(3, 3, padding="same", name="conv_0")
        cell = ConvLSTMCell(width)
        h = ZerosLike(width, name="h0")(rainy)
        c = ZerosLike(width, name="c0")(rainy)
        estimate, estimates = pred1, []
        for t in range(1, iterations + 1):
            tag = f"iter{t}"
            x = conv0(layers.Concatenate(name=f"{tag}_in")([rainy, estimate]))
            h, c = cell(x, h, c, tag)
            x = h
            for k, (conv_a, conv_b) in enumerate(res_convs, start=1):
                x = layers.Add(name=f"{tag}_res{k}_add")([conv_b(conv_a(x)), x])
                x = layers.ReLU(name=f"{tag}_res{k}_relu")(x)
            estimate = layers.Add(name=f"{tag}_out")([conv_out(x), rainy])
            estimates.append(estimate)
        return estimates


def _check_config(
    recurrent_iter: int,
    dim: int,
    num_blocks: Sequence[int],
    num_refinement_blocks: int,
    heads: Sequence[int],
    ffn_expansion_factor: float,
    layer_norm_type: str,
) -> None:
    if len(num_blocks) != 4 or len(heads) != 4:
        raise ValueError(f"num_blocks and heads need 4 entries, got {num_blocks}, {heads}")
    if recurrent_iter < 1 or dim < 2 or dim % 2 or min(heads) < 1:
        raise ValueError(
            "recurrent_iter and heads must be positive and dim even and positive; got "
            f"recurrent_iter={recurrent_iter}, dim={dim}, heads={heads}"
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
    if layer_norm_type not in _LAYER_NORM_TYPES:
        raise ValueError(
            f"layer_norm_type must be one of {_LAYER_NORM_TYPES}, got {layer_norm_type!r}"
        )


@register(
    "dtpnet",
    multiple=8,
    halo=64,
    key_map=_key_map,
    infer_config=_infer_config,
    outputs=("derained", "stages"),
    description="DTPNet (Neurocomputing 2024): detail scaling, transformer U-Net, PReNet stage",
)
def dtpnet(
    recurrent_iter: int = 3,
    dim: int = 64,
    num_blocks: Sequence[int] = (4, 6, 6, 8),
    num_refinement_blocks: int = 4,
    heads: Sequence[int] = _DEFAULT_HEADS,
    ffn_expansion_factor: float = _DEFAULT_FFN_EXPANSION,
    bias: bool = False,
    layer_norm_type: str = "WithBias",
) -> keras.Model:
    """DTPNet; the defaults are the official (and only published) configuration.

    Args:
        recurrent_iter: iterations of the progressive (PReNet-style) stage.
        dim: width of level 1 of the transformer U-Net (levels 2–4: 2, 4, 8 × ``dim``).
        num_blocks: transformer blocks of the four encoder levels; every decoder level has
            ``num_blocks[1]`` blocks, as in the official code.
        num_refinement_blocks: transformer blocks of ``outc`` (level 1, ``heads[0]``).
        heads: attention heads per level.
        ffn_expansion_factor: GDFN hidden width = ``int(width · ffn_expansion_factor)``.
        bias: biases in the transformer blocks, channel reductions and ``conv_final``.
        layer_norm_type: ``"WithBias"`` or ``"BiasFree"`` (Restormer's two LayerNorms).
    """
    num_blocks, heads = tuple(num_blocks), tuple(heads)
    _check_config(
        recurrent_iter,
        dim,
        num_blocks,
        num_refinement_blocks,
        heads,
        ffn_expansion_factor,
        layer_norm_type,
    )
    net = _DTPNetBuilder(ffn_expansion_factor, bias, layer_norm_type)
    widths = [dim * 2**level for level in range(4)]
    rainy = keras.Input((None, None, 3), name="rainy")

    # Layer 1: detail scaling.
    level_input = [net.detail_scaling(rainy, dim)]
    # Layer 2: encoder. level_input[l] enters level l, encoded[l] leaves it.
    encoded = []
    for level, stack in enumerate(_ENCODER):
        x = net.stack(level_input[level], widths[level], heads[level], num_blocks[level], stack)
        encoded.append(x)
        if level < 3:
            level_input.append(net.downsample(widths[level], _DOWN[level])(x))
    # Decoder with multi-scale coupling: level l+1's upsampler also lifts level_input[l+1].
    x = encoded[3]
    for level, (up_name, reduce_name, stack) in zip((2, 1, 0), _DECODER, strict=True):
        up = net.upsample(widths[level + 1], up_name)
        x = layers.Concatenate(name=f"{_name(stack)}_in")([up(x), encoded[level]])
        x = net.conv(widths[level], 1, reduce_name)(x)
        x = net.stack(x, widths[level], heads[level], num_blocks[1], stack)
        x = layers.Add(name=f"{_name(stack)}_coupling")([x, up(level_input[level + 1])])
    x = net.stack(x, dim, heads[0], num_refinement_blocks, _REFINEMENT)
    pred1 = net.conv(3, 3, "conv_final")(x)

    # Layer 3: progressive refinement.
    estimates = net.progressive_refinement(rainy, pred1, recurrent_iter)
    stages = Stack(axis=1, name="stages")([pred1, *estimates])
    return keras.Model(rainy, {"derained": estimates[-1], "stages": stages}, name="dtpnet")
