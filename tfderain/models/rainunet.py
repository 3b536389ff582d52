"""RainUNet: a compact multi-scale deraining network of this library, built for CPUs and int8.

Not a published network. It combines ideas from:

* U-Net -- O. Ronneberger, P. Fischer, T. Brox, "U-Net: Convolutional Networks for Biomedical
  Image Segmentation", MICCAI 2015: an encoder-decoder whose levels halve the resolution, with
  skip connections between levels of the same resolution, so that most of the network's depth
  works on few pixels while the full-resolution levels keep fine detail (thin rain streaks);
* NAFNet's simple baselines -- L. Chen, X. Chu, X. Zhang, J. Sun, "Simple Baselines for Image
  Restoration", ECCV 2022 (https://github.com/megvii-research/NAFNet): plain residual blocks
  without attention, 2×2 stride-2 convolutions down, skips merged by addition rather than
  concatenation, and more blocks at the low-resolution levels than at the high ones;
* residual learning of the rain layer -- X. Fu, J. Huang, D. Zeng, Y. Huang, X. Ding, J. Paisley,
  "Removing rain from single images via a deep detail network", CVPR 2017: the network predicts
  the residual ``derained - rainy`` (minus the rain layer) and adds it to its input, so that an
  untrained or uncertain network leaves the image (and its brightness) unchanged;
* the plain residual block of PReNet -- D. Ren, W. Zuo, Q. Hu, P. Zhu, D. Meng, "Progressive
  Image Deraining Networks: A Better and Simpler Baseline", CVPR 2019
  (https://github.com/csdwren/PReNet): two 3×3 convolutions with ReLU and an identity skip, no
  normalisation. PReNet's other idea, recurrence over full-resolution stages, is left out: the
  U-Net's lower levels give the context that repeated stages give PReNet, at a fraction of the
  cost.

Architecture (``levels`` = L, ``widths`` = ``[w0, ..., wL]``)::

    rainy ─ intro (3×3, 3→w0) ─ enc0 ─ down0 ─ enc1 ─ ... ─ down(L-1) ─ middle
                                 │                                        │
                                 └──────────── + ─ dec0 ─ ... up(L-1) ────┘
    derained = rainy + ending(dec0)            (ending: 3×3, w0→3)

* ``enc{i}`` / ``dec{i}``: ``encoder_blocks[i]`` / ``decoder_blocks[i]`` residual blocks of width
  ``w_i`` at resolution ``1 / 2**i``; ``middle``: ``middle_blocks`` blocks of width ``wL``.
* ``down{i}``: 2×2 convolution with stride 2, ``w_i → w_{i+1}``; ``up{i}``: 2×2 transposed
  convolution with stride 2, ``w_{i+1} → w_i``, added to ``enc{i}``'s output.
* Residual block: ``x + conv3×3(ReLU(conv3×3(x)))`` (``18 w²`` multiply-adds per pixel of
  its level).

The default configuration (widths 16/32/48/64, one block per encoder and decoder level, two in
the middle) has 319,203 parameters (a 1.4 MB ``.keras`` file) and costs 29.0 K multiply-adds
per input pixel, against 1.01 M for PReNet's paper configuration (6 stages, 32 channels). It was
chosen by measurement (``benchmarks/bench_default_model.py`` for speed; for quality, 150
CPU-seconds of training each on synthetic rain over scikit-image photos, PSNR on other,
held-out photos: 21.75 dB, from 18.19 dB rainy): widening the full-resolution level to 24
(41 K multiply-adds per pixel: 20.76 dB) or replacing the blocks by MobileNetV2-style
depthwise-separable ones (Sandler et al., CVPR 2018) over four levels (22 K multiply-adds per
pixel, 434 K parameters: 20.31 dB) both did worse; depthwise convolutions run far below their
multiply-add count on CPUs, so fewer multiply-adds bought fewer training steps, not more.

Only built-in ``Conv2D``, ``Conv2DTranspose``, ``ReLU`` and ``Add`` layers: TFMOT quantizes all
of them with its default 8-bit scheme (no normalisation, gating or custom layers whose ranges
would need special care), and the exporter turns the transposed convolutions into sub-pixel
convolutions for TFLite. With those briefly trained weights the int8 file lost 0.26 dB against
the float file after post-training quantization and 0.04 dB after the exporter's default QAT.

Outputs:
    ``derained``: ``rainy + residual``, not clamped (inference clamps to [0, 1]).

Height and width must be multiples of ``2**levels``; the registry declares 8, which covers every
allowed depth (``levels`` 1 to 3). Tiles overlap by twice the registry ``halo`` of 48 pixels:
the theoretical receptive field reaches about 70 pixels each side, and with the briefly trained
weights tiles with a halo of 32 already differed from the whole-image output by less than one 8-bit
level (48: 0.1/255 at most).
"""

from __future__ import annotations

from collections.abc import Sequence

from tfderain._keras import keras, tf
from tfderain.models import Tiny, register
from tfderain.models.blocks import conv

layers = keras.layers

#: Most resolution halvings: the registry multiple is ``2**MAX_LEVELS``.
MAX_LEVELS = 3


def residual_block(x: tf.Tensor, width: int, name: str) -> tf.Tensor:
    """``x + conv3×3(ReLU(conv3×3(x)))``, both convolutions of width ``width``."""
    y = conv(width, activation="relu", name=f"{name}_conv1")(x)
    y = conv(width, name=f"{name}_conv2")(y)
    return layers.Add(name=f"{name}_add")([x, y])


def _check(
    levels: int,
    widths: Sequence[int],
    encoder_blocks: Sequence[int],
    middle_blocks: int,
    decoder_blocks: Sequence[int],
) -> None:
    if not 1 <= levels <= MAX_LEVELS:
        raise ValueError(f"levels must be 1 to {MAX_LEVELS}, got {levels}")
    if len(widths) != levels + 1 or min(widths) < 1:
        raise ValueError(f"widths needs {levels + 1} positive widths (levels + 1), got {widths}")
    for key, counts in (("encoder_blocks", encoder_blocks), ("decoder_blocks", decoder_blocks)):
        if len(counts) != levels or min(counts) < 0:
            raise ValueError(f"{key} needs {levels} block counts >= 0 (one a level), got {counts}")
    if middle_blocks < 0:
        raise ValueError(f"middle_blocks must be >= 0, got {middle_blocks}")


def _rain_unet(
    levels: int,
    widths: Sequence[int],
    encoder_blocks: Sequence[int],
    middle_blocks: int,
    decoder_blocks: Sequence[int],
) -> keras.Model:
    _check(levels, widths, encoder_blocks, middle_blocks, decoder_blocks)
    rainy = keras.Input((None, None, 3), name="rainy")
    x = conv(widths[0], name="intro")(rainy)
    skips = []
    for i in range(levels):
        for b in range(encoder_blocks[i]):
            x = residual_block(x, widths[i], f"enc{i}_block{b}")
        skips.append(x)
        x = layers.Conv2D(widths[i + 1], 2, strides=2, name=f"down{i}")(x)
    for b in range(middle_blocks):
        x = residual_block(x, widths[levels], f"middle_block{b}")
    for i in reversed(range(levels)):
        x = layers.Conv2DTranspose(widths[i], 2, strides=2, name=f"up{i}")(x)
        x = layers.Add(name=f"skip{i}")([x, skips[i]])
        for b in range(decoder_blocks[i]):
            x = residual_block(x, widths[i], f"dec{i}_block{b}")
    residual = conv(3, name="ending")(x)
    derained = layers.Add(name="derained")([rainy, residual])
    return keras.Model(rainy, {"derained": derained}, name="rainunet")


@register(
    "rainunet",
    multiple=2**MAX_LEVELS,
    halo=48,
    output_rule="round",
    description="RainUNet: compact int8-friendly U-Net (tfderain's default architecture)",
    tiny=Tiny(
        {
            "levels": 2,
            "widths": [4, 8, 8],
            "middle_blocks": 1,
            "encoder_blocks": [1, 1],
            "decoder_blocks": [1, 1],
        }
    ),
    phone=True,
)
def rainunet(
    levels: int = 3,
    widths: Sequence[int] = (16, 32, 48, 64),
    encoder_blocks: Sequence[int] = (1, 1, 1),
    middle_blocks: int = 2,
    decoder_blocks: Sequence[int] = (1, 1, 1),
) -> keras.Model:
    """RainUNet with ``levels`` resolution halvings (see the module docstring for each option)."""
    return _rain_unet(
        int(levels),
        [int(w) for w in widths],
        [int(n) for n in encoder_blocks],
        int(middle_blocks),
        [int(n) for n in decoder_blocks],
    )
