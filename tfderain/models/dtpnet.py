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
      ``x − mean``) by ``sqrt(var + eps)`` and has no shift (``BiasFreeLayerNorm`` of
      :mod:`tfderain.models.blocks`).
    * MDTA: ``q, k, v`` are the thirds of ``dwconv3×3(conv1×1(x))`` in that order, the channel
      index is ``head · (C / heads) + c``, ``q`` and ``k`` are L2-normalised over all pixels
      (``F.normalize``, floor ``1e-12``), the ``(C/heads) × (C/heads)`` attention is scaled by a
      learned per-head temperature before the softmax. GDFN uses the exact (erf) GELU on the
      first half of the depthwise-convolved channels, gating the second half; the hidden width is
      ``int(width · ffn_expansion_factor)`` per level.
    * torch ``PixelShuffle``/``PixelUnshuffle`` order channels as ``c · 4 + i · 2 + j``, while
      ``tf.nn.depth_to_space``/``space_to_depth`` use ``(i · 2 + j) · C + c``; the layers
      ``PixelShuffle`` and ``PixelUnshuffle`` of :mod:`tfderain.models.blocks` permute channels
      to match.

Height and width must be multiples of 8 (three pixel-unshuffle levels; the detail scaling needs
4). MDTA attends over the whole image, so tiled inference only approximates a whole-image run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from tfderain._keras import keras
from tfderain.models import Tiny, register
from tfderain.models.blocks import (
    DEFAULT_FFN_EXPANSION,
    DEFAULT_HEADS,
    ConvLSTMCell,
    Stack,
    TransformerUNet,
    ZerosLike,
    conv,
    module_name,
)

layers = keras.layers

_UNET = TransformerUNet(
    encoder=("conv1_2", "conv2_3", "conv3_4", "conv4_L"),
    down=("down1_2", "down2_3", "down3_4"),
    decoder=(
        ("up4_3", "reduce_chan_level3", "conv4_3_HSI"),
        ("up3_2", "reduce_chan_level2", "conv3_2_HSI"),
        ("up2_1", "reduce_chan_level1", "conv2_1_HSI"),
    ),
    refinement="outc",
    decoder_blocks=(1, 1, 1),  # the official quirk: every decoder level has num_blocks[1]
    norm_arg="layer_norm_type",
    coupling=True,
)
_PRENET_WIDTH = 32
_RES_BLOCKS = 5


# --------------------------------------------------------------------------- key table


def _key_map(
    num_blocks: Sequence[int] = (4, 6, 6, 8), num_refinement_blocks: int = 4, **_
) -> dict[str, str]:
    """Keras layer name → official ``state_dict`` module prefix."""
    modules = ["patch_embed.transform1.0", "patch_embed.transform2", "conv_final"]
    modules += _UNET.modules(num_blocks, num_refinement_blocks)
    modules += ["conv0.0", "conv.0"]
    modules += [f"res_conv{k}.{j}" for k in range(1, _RES_BLOCKS + 1) for j in (0, 2)]
    table = {module_name(m): m for m in modules}
    table.update({f"conv_{g}": f"conv_{g}.0" for g in "ifgo"})  # ConvLSTMCell's gate names
    return table


def _infer_config(state_dict: Mapping[str, np.ndarray]) -> dict:
    """Widths, block counts, heads, norm type, bias and FFN expansion from the checkpoint.

    ``recurrent_iter`` is not stored in the weights and keeps its default.
    """
    return _UNET.infer_config(
        state_dict, "patch_embed.transform2.weight", "reduce_chan_level1.bias"
    )


# --------------------------------------------------------------------------- graph


def _detail_scaling(rainy, dim: int):
    """``OverlapPatchEmbed``: input embedding minus the embedded, enlarged detail band."""
    transform2 = conv(dim, 3, use_bias=False, name="patch_embed_transform2")
    x_real = transform2(rainy)
    x = conv(3, 3, use_bias=False, name="patch_embed_transform1_0")(rainy)
    x = layers.ReLU(name="patch_embed_transform1_1")(x)
    down1 = layers.AveragePooling2D(2, name="patch_embed_down_1")(x)
    down2 = layers.AveragePooling2D(2, name="patch_embed_down_2")(down1)
    up2 = layers.UpSampling2D(2, interpolation="bilinear", name="patch_embed_up_2")(down2)
    detail = layers.Subtract(name="patch_embed_detail")([down1, up2])
    detail = layers.UpSampling2D(2, interpolation="bilinear", name="patch_embed_up_1")(detail)
    return layers.Subtract(name="patch_embed")([x_real, transform2(detail)])


def _progressive_refinement(rainy, pred1, iterations: int) -> list:
    """Layer 3: PReNet-style recurrence seeded with ``pred1``; returns every iteration."""
    width = _PRENET_WIDTH
    conv0 = conv(width, 3, activation="relu", name="conv0_0")
    res_convs = [
        tuple(conv(width, 3, activation="relu", name=f"res_conv{k}_{j}") for j in (0, 2))
        for k in range(1, _RES_BLOCKS + 1)
    ]
    conv_out = conv(3, 3, name="conv_0")
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


@register(
    "dtpnet",
    multiple=8,
    halo=64,
    key_map=_key_map,
    infer_config=_infer_config,
    outputs=("derained", "stages"),
    description="DTPNet (Neurocomputing 2024): detail scaling, transformer U-Net, PReNet stage",
    tiny=Tiny(
        {
            "recurrent_iter": 2,
            "dim": 8,
            "num_blocks": [1, 1, 1, 1],
            "num_refinement_blocks": 1,
            "heads": [1, 1, 1, 1],
        }
    ),
)
def dtpnet(
    recurrent_iter: int = 3,
    dim: int = 64,
    num_blocks: Sequence[int] = (4, 6, 6, 8),
    num_refinement_blocks: int = 4,
    heads: Sequence[int] = DEFAULT_HEADS,
    ffn_expansion_factor: float = DEFAULT_FFN_EXPANSION,
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
    if recurrent_iter < 1:
        raise ValueError(f"recurrent_iter must be positive, got {recurrent_iter}")
    unet = _UNET.configure(
        dim, num_blocks, num_refinement_blocks, heads, ffn_expansion_factor, bias, layer_norm_type
    )
    rainy = keras.Input((None, None, 3), name="rainy")

    # Layer 1: detail scaling. Layer 2: transformer U-Net with multi-scale coupling.
    x = unet(_detail_scaling(rainy, dim))
    pred1 = conv(3, 3, use_bias=bias, name="conv_final")(x)

    # Layer 3: progressive refinement.
    estimates = _progressive_refinement(rainy, pred1, recurrent_iter)
    stages = Stack(axis=1, name="stages")([pred1, *estimates])
    return keras.Model(rainy, {"derained": estimates[-1], "stages": stages}, name="dtpnet")
