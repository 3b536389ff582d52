"""Restormer: an efficient transformer U-Net for high-resolution image restoration.

Paper: S. W. Zamir, A. Arora, S. Khan, M. Hayat, F. S. Khan, M.-H. Yang, "Restormer: Efficient
Transformer for High-Resolution Image Restoration", CVPR 2022. Official code:
https://github.com/swz30/Restormer (``basicsr/models/archs/restormer_arch.py``, class
``Restormer``); the deraining model is ``Deraining/Options/Deraining_Restormer.yml``.

The network, as in the paper's figure: a 3×3 convolution embeds the image (``patch_embed``); a
four-level encoder–decoder of transformer blocks follows, each block ``x + MDTA(LN(x))`` then
``x + GDFN(LN(x))`` (multi-Dconv head transposed attention: channel-to-channel attention per
head; gated-Dconv feed-forward network: GELU-gated depthwise-convolved projections). Levels are
joined by pixel-unshuffle downsampling and pixel-shuffle upsampling with concatenated skips; a
refinement stage of transformer blocks and a 3×3 convolution give a residual that is added to the
input image. The shared blocks live in :mod:`tfderain.models.blocks`.

Outputs:
    ``derained``: ``output(refinement(·)) + input``, not clamped (the official test script clamps
    to [0, 1] afterwards).

Where the official code is more specific than, or differs from, the paper's description:
    * Decoder level 1 has no 1×1 channel reduction: it and the refinement blocks run at
      ``2·dim`` channels with ``heads[0]``; the output convolution maps ``2·dim → 3``. Decoder
      levels 3 and 2 reduce ``concat([upsampled, skip])`` (upsampled first) with a 1×1
      convolution (``reduce_chan_level3``/``2``) and have ``num_blocks[2]``/``num_blocks[1]``
      blocks; decoder level 1 has ``num_blocks[0]``.
    * ``patch_embed`` (``OverlapPatchEmbed``, built with its default ``bias=False``) and the
      resampling convolutions never have a bias, whatever the network's ``bias``; ``bias``
      applies to the transformer blocks, the channel reductions and the output convolution.
    * ``LayerNorm`` normalises each pixel over channels with the biased variance and
      ``eps=1e-5``. ``WithBias`` (deraining) is a Keras ``LayerNormalization``; ``BiasFree`` (the
      denoising configs) divides ``x`` itself, not ``x − mean``, by ``sqrt(var + eps)`` and has
      no shift (``BiasFreeLayerNorm``).
    * MDTA: ``q, k, v`` are the thirds of ``dwconv3×3(conv1×1(x))`` in that order; the channel
      index is ``head · (C / heads) + c``; ``q`` and ``k`` are L2-normalised over all pixels
      (``F.normalize``, floor ``1e-12``); the ``(C/heads) × (C/heads)`` attention is multiplied
      by a learned per-head temperature before the softmax.
    * GDFN: the hidden width is ``int(width · ffn_expansion_factor)`` (truncated: 127, 255, 510
      and 1021 for the paper's widths), the depthwise 3×3 convolution runs over both halves and
      the gate is the exact (erf) GELU of the first half times the second half.
    * torch ``PixelShuffle``/``PixelUnshuffle`` order channels as ``c · 4 + i · 2 + j``, unlike
      ``tf.nn.depth_to_space``/``space_to_depth``; ``PixelShuffle``/``PixelUnshuffle`` of
      :mod:`tfderain.models.blocks` permute channels to match.
    * The constructor's ``inp_channels``/``out_channels`` are fixed at 3 (RGB) and
      ``dual_pixel_task`` (6-channel dual-pixel defocus deblurring with an extra ``skip_conv``
      and no input residual) is not supported; such checkpoints are refused.
    * Published checkpoints wrap the weights as ``{"params": state_dict}``;
      :func:`tfderain.convert.load_state_dict` unwraps them.

Height and width must be multiples of 8 (three pixel-unshuffle levels; the official test script
reflect-pads to a multiple of 8 outside the model). MDTA attends over the whole image, so tiled
inference only approximates a whole-image run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from tfderain._keras import keras
from tfderain.models import Tiny, register
from tfderain.models.blocks import (
    DEFAULT_FFN_EXPANSION,
    DEFAULT_HEADS,
    TransformerUNet,
    conv,
    module_name,
)

layers = keras.layers

_UNET = TransformerUNet(
    encoder=("encoder_level1", "encoder_level2", "encoder_level3", "latent"),
    down=("down1_2", "down2_3", "down3_4"),
    decoder=(
        ("up4_3", "reduce_chan_level3", "decoder_level3"),
        ("up3_2", "reduce_chan_level2", "decoder_level2"),
        ("up2_1", None, "decoder_level1"),
    ),
    refinement="refinement",
    decoder_blocks=(2, 1, 0),  # a decoder level repeats its encoder level's block count
    norm_arg="layer_norm",
)


def _key_map(
    num_blocks: Sequence[int] = (4, 6, 6, 8), num_refinement_blocks: int = 4, **_
) -> dict[str, str]:
    """Keras layer name → official ``state_dict`` module prefix."""
    modules = ["patch_embed.proj", "output", *_UNET.modules(num_blocks, num_refinement_blocks)]
    return {module_name(m): m for m in modules}


def _infer_config(state_dict: Mapping[str, np.ndarray]) -> dict:
    """Width, block counts, heads, LayerNorm type, bias and FFN expansion from the checkpoint."""
    if "skip_conv.weight" in state_dict:
        raise ValueError("dual-pixel Restormer checkpoints (skip_conv, 6 inputs) are not supported")
    return _UNET.infer_config(state_dict, "patch_embed.proj.weight", "output.bias")


@register(
    "restormer",
    multiple=8,
    halo=64,
    key_map=_key_map,
    infer_config=_infer_config,
    outputs=("derained",),
    protocol="B",  # the official evaluate_PSNR_SSIM.m
    description="Restormer (CVPR 2022): MDTA/GDFN transformer U-Net",
    tiny=Tiny(
        {"dim": 8, "num_blocks": [1, 1, 1, 1], "num_refinement_blocks": 1, "heads": [1, 1, 1, 1]}
    ),
)
def restormer(
    dim: int = 48,
    num_blocks: Sequence[int] = (4, 6, 6, 8),
    num_refinement_blocks: int = 4,
    heads: Sequence[int] = DEFAULT_HEADS,
    ffn_expansion_factor: float = DEFAULT_FFN_EXPANSION,
    bias: bool = False,
    layer_norm: str = "WithBias",
) -> keras.Model:
    """Restormer; the defaults are the official deraining configuration (26,126,644 parameters).

    Args:
        dim: width of level 1 (levels 2–4: 2, 4, 8 × ``dim``; decoder level 1 and the
            refinement run at ``2·dim``).
        num_blocks: transformer blocks of encoder levels 1–3 and the latent level 4; decoder
            level ``l`` has ``num_blocks[l - 1]`` blocks.
        num_refinement_blocks: transformer blocks of the refinement stage (``heads[0]``).
        heads: attention heads per level.
        ffn_expansion_factor: GDFN hidden width = ``int(width · ffn_expansion_factor)``.
        bias: biases in the transformer blocks, channel reductions and output convolution.
        layer_norm: ``"WithBias"`` (deraining, deblurring) or ``"BiasFree"`` (denoising).
    """
    unet = _UNET.configure(
        dim, num_blocks, num_refinement_blocks, heads, ffn_expansion_factor, bias, layer_norm
    )
    rainy = keras.Input((None, None, 3), name="rainy")
    x = conv(dim, 3, use_bias=False, name="patch_embed_proj")(rainy)
    residual = conv(3, 3, use_bias=bias, name="output")(unet(x))
    derained = layers.Add(name="derained")([residual, rainy])
    return keras.Model(rainy, {"derained": derained}, name="restormer")
