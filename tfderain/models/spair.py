"""SPAIR: spatially-adaptive image restoration with distortion-guided networks.

Paper: K. Purohit, M. Suin, A. N. Rajagopalan, V. N. Boddeti, "Spatially-Adaptive Image
Restoration using Distortion-Guided Networks", ICCV 2021, pp. 2309–2319 (arXiv:2108.08617).
Official code (announced): https://github.com/human-analysis/spatially-adaptive-image-restoration.

**Implemented from the paper; no official code was available.** The official repository could not
be obtained, and of the paper only the abstract and a short summary of its two main modules could
be read. What is taken from the paper:

* Two networks. A *localization network* (NetL) predicts where the image is degraded (a per-pixel
  distortion mask ``M``: 1 = degraded, 0 = clean); a *restoration network* (NetR) uses NetL's
  knowledge "in filter and feature domain" to restore the degraded pixels selectively.
* Distortion-guided modules performing *sparse normalization*, *feature extraction* and
  *attention*. The first is the **Spatial Feature Modulator (SFM)**: it normalises the fused
  features in the degraded region (``M = 1``) so that their mean and variance match those of the
  features in the clean region (``M = 0``). The second is the **mask-guided Sparse Convolution
  (SC)**, which processes the degraded region only. The third is a distortion-guided attention.
* The design is degradation-agnostic (no rain formation model).

Everything else is a design choice of this implementation, listed here so that it is not
mistaken for the paper's:

1. **Backbones.** NetL and NetR are both three-level U-Nets (widths ``w, 2w, 4w``; 3×3 stride-2
   convolutions down, 2×2 stride-2 transposed convolutions up, skip connections added). Each
   level holds residual blocks ``x + conv3×3(ReLU(conv3×3(x)))`` without normalisation layers.
   NetL: width ``loc_width`` (16), ``loc_blocks`` (1) residual blocks per encoder and decoder
   level. NetR: width ``width`` (32), ``blocks`` (2) residual blocks per encoder and decoder
   level. A 3×3 convolution with ReLU embeds the image in each network.
2. **Mask head.** NetL ends in a 3×3 convolution to one channel with a sigmoid: ``M`` is a soft
   probability map in [0, 1] at full resolution (output ``rain``).
3. **Mask thresholding.** By default the guidance uses the soft ``M`` (so the whole model is
   differentiable end to end). With ``mask_threshold=t`` the guidance uses the binary mask
   ``M > t`` (straight-through gradient); the ``rain`` output stays soft.
4. **Mask at lower resolutions.** Max-pooled by 2 and 4 (a coarse cell counts as degraded if any
   of its pixels is), so a mask of zeros stays zero at every level.
5. **Where the guidance enters.** NetR's encoder is plain. Each of the three decoder levels
   (bottleneck first) starts with one *distortion-guided block* (DGB), followed by ``blocks``
   residual blocks. The NetR input is the image only: NetL reaches NetR only through the DGBs.
6. **Feature-domain knowledge (fusion).** A DGB concatenates the NetR features with NetL's
   decoder features of the same level (NetL's bottleneck for level 3) and fuses them with a 1×1
   convolution back to the NetR width.
7. **SFM.** Parameter-free. Per image and channel, masked means and variances of the fused
   features are taken with weights ``M`` (degraded) and ``1 − M`` (clean); the modulated feature
   is ``(F − μ_d) / sqrt(σ²_d + ε) · sqrt(σ²_c + ε) + μ_c`` and the output blends it in where the
   image is degraded, ``F + M · (F̂ − F)`` (``ε = 1e-5``). No learned affine terms.
8. **SC, realised densely.** A true sparse convolution would skip clean positions; a Keras graph
   computes everywhere and gates instead, with built-in ``Multiply`` layers:
   ``SC(F) = M ⊙ conv3×3(ReLU(conv3×3(M ⊙ F)))``. Inputs outside the mask are zeroed and outputs
   outside it are discarded, which is what a sparse convolution over the masked positions
   computes (without the renormalisation by the local mask density of Uhrig et al.'s sparsity
   invariant convolution: ``M`` may be soft, and the convolution learns its scale). The SC output
   is added to a dense residual block that processes every pixel.
9. **Distortion-guided attention (DGA).** Linear in the number of pixels: a 1×1 convolution
   scores every position; a softmax over the *clean* positions (scores weighted by ``1 − M``)
   pools one context vector per image; two 1×1 convolutions (width ÷ 4, ReLU) transform it, and
   it is added to the features at the degraded positions only (``M ⊙ context``): degraded pixels
   borrow global context from clean ones. (The paper's attention module could not be read.)
10. **Output.** ``derained = rainy + conv3×3(features)`` (global residual), not clamped.
11. **Training.** The paper's losses could not be read. The natural recipe is a restoration loss
    on ``derained`` plus binary cross-entropy of ``rain`` against a thresholded ``|rainy − clean|``
    mask (e.g. NetL pre-trained that way, then both fine-tuned); ``tfderain/configs/spair.yaml``
    trains both jointly (L1 on ``derained``, ``rain_mask_bce`` on ``rain``). There is no official
    checkpoint (no converter key table).

Outputs:
    ``derained``: the restored image ``(N, H, W, 3)`` (not clamped).
    ``rain``: NetL's predicted rain (distortion) mask ``M``, ``(N, H, W, 1)`` in [0, 1]: the
    probability that a pixel is degraded by rain. It is a mask, not a rain layer.

Parameters: the default config has 2,658,175 (NetL 154,145; NetR 2,504,030). The paper's count
could not be obtained, so there is nothing to compare it with.

Height and width must be multiples of 4 (two stride-2 levels). The DGA context is pooled over the
whole image, so tiled inference differs slightly from a whole-image pass.
"""

from __future__ import annotations

from tfderain._keras import keras, tf
from tfderain.models import Tiny, register

layers = keras.layers
serializable = keras.saving.register_keras_serializable(package="tfderain")

#: Resolution levels of both U-Nets (full, 1/2, 1/4).
LEVELS = 3
#: Channel reduction of the attention's context transform.
DGA_REDUCTION = 4
#: Variance epsilon of the SFM.
SFM_EPSILON = 1e-5
#: Guards the masked sums of the SFM and the attention against empty regions.
_TINY = 1e-6


# ------------------------------------------------------------------------------- custom layers


@serializable
class SPAIRSpatialFeatureModulator(layers.Layer):
    """SFM: give the degraded region's features the clean region's per-channel statistics.

    Inputs ``[features (N, H, W, C), mask (N, H, W, 1)]``. Statistics are per image and channel,
    weighted by ``mask`` (degraded) and ``1 − mask`` (clean). Where ``mask == 0`` the features
    pass unchanged, exactly.
    """

    QUANTIZE = "output"
    FLOAT_IN_INT8 = True

    def __init__(self, epsilon: float = SFM_EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    @staticmethod
    def _moments(x, weight):
        total = tf.reduce_sum(weight, axis=[1, 2], keepdims=True) + _TINY
        mean = tf.reduce_sum(weight * x, axis=[1, 2], keepdims=True) / total
        var = tf.reduce_sum(weight * tf.square(x - mean), axis=[1, 2], keepdims=True) / total
        return mean, var

    def call(self, inputs):
        x, mask = inputs
        dtype = x.dtype
        x = tf.cast(x, tf.float32)
        mask = tf.cast(mask, tf.float32)
        mean_d, var_d = self._moments(x, mask)
        mean_c, var_c = self._moments(x, 1.0 - mask)
        scale = tf.sqrt(var_c + self.epsilon) * tf.math.rsqrt(var_d + self.epsilon)
        modulated = (x - mean_d) * scale + mean_c
        return tf.cast(x + mask * (modulated - x), dtype)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@serializable
class SPAIRCleanContext(layers.Layer):
    """The attention's pooling: one context vector per image, attending to clean positions.

    Inputs ``[features (N, H, W, C), scores (N, H, W, 1), mask (N, H, W, 1)]``; output
    ``(N, 1, 1, C)``: ``Σ a·x`` with ``a ∝ (1 − mask)·exp(score)`` over all positions (zero
    when the whole image is degraded).
    """

    QUANTIZE = "output"
    FLOAT_IN_INT8 = True

    def call(self, inputs):
        x, scores, mask = inputs
        dtype = x.dtype
        x, scores, mask = (tf.cast(t, tf.float32) for t in (x, scores, mask))
        scores = scores - tf.reduce_max(scores, axis=[1, 2], keepdims=True)
        weight = (1.0 - mask) * tf.exp(scores)
        total = tf.reduce_sum(weight, axis=[1, 2], keepdims=True) + _TINY
        return tf.cast(tf.reduce_sum(weight * x, axis=[1, 2], keepdims=True) / total, dtype)


@serializable
class SPAIRBinarizeMask(layers.Layer):
    """``mask > threshold`` as 0/1 in the forward pass, identity gradient (straight-through)."""

    def __init__(self, threshold: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.threshold = threshold

    def call(self, mask):
        hard = tf.cast(mask > self.threshold, mask.dtype)
        return mask + tf.stop_gradient(hard - mask)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


# ------------------------------------------------------------------------------ plain blocks


def _conv(filters: int, kernel_size: int, name: str, **kwargs) -> layers.Conv2D:
    return layers.Conv2D(filters, kernel_size, padding="same", name=name, **kwargs)


def residual_block(x: tf.Tensor, width: int, name: str) -> tf.Tensor:
    """``x + conv3×3(ReLU(conv3×3(x)))``."""
    y = _conv(width, 3, f"{name}_conv1", activation="relu")(x)
    y = _conv(width, 3, f"{name}_conv2")(y)
    return layers.Add(name=f"{name}_add")([x, y])


def _blocks(x: tf.Tensor, width: int, count: int, name: str) -> tf.Tensor:
    for i in range(count):
        x = residual_block(x, width, f"{name}_rb{i}")
    return x


def _down(x: tf.Tensor, width: int, name: str) -> tf.Tensor:
    return layers.Conv2D(width, 3, strides=2, padding="same", name=name)(x)


def _up(x: tf.Tensor, skip: tf.Tensor, width: int, name: str) -> tf.Tensor:
    x = layers.Conv2DTranspose(width, 2, strides=2, name=name)(x)
    return layers.Add(name=f"{name}_skip")([x, skip])


def _encoder(rainy: tf.Tensor, width: int, blocks: int, net: str) -> list[tf.Tensor]:
    """Embedding and encoder of a U-Net; the output of each level (width ``width·2^l``)."""
    x = _conv(width, 3, f"{net}_conv_in", activation="relu")(rainy)
    skips = []
    for level in range(LEVELS):
        if level:
            x = _down(x, width * 2**level, f"{net}_down{level + 1}")
        x = _blocks(x, width * 2**level, blocks, f"{net}_enc{level + 1}")
        skips.append(x)
    return skips


# ------------------------------------------------------------------- distortion-guided modules


def sparse_convolution(x: tf.Tensor, mask: tf.Tensor, width: int, name: str) -> tf.Tensor:
    """SC: ``mask ⊙ conv3×3(ReLU(conv3×3(mask ⊙ x)))`` (a dense, gated sparse convolution).

    The last ``Multiply`` is the layer ``{name}_gate``: zero wherever ``mask`` is zero.
    """
    y = layers.Multiply(name=f"{name}_in")([x, mask])
    y = _conv(width, 3, f"{name}_conv1", activation="relu")(y)
    y = _conv(width, 3, f"{name}_conv2")(y)
    return layers.Multiply(name=f"{name}_gate")([y, mask])


def distortion_guided_attention(x: tf.Tensor, mask: tf.Tensor, width: int, name: str) -> tf.Tensor:
    """DGA: context pooled from the clean positions, added at the degraded ones.

    Returns the injected term ``mask ⊙ context`` (layer ``{name}_gate``), to be added to ``x``.
    """
    scores = _conv(1, 1, f"{name}_score")(x)
    context = SPAIRCleanContext(name=f"{name}_pool")([x, scores, mask])
    hidden = max(width // DGA_REDUCTION, 1)
    context = _conv(hidden, 1, f"{name}_fc1", activation="relu")(context)
    context = _conv(width, 1, f"{name}_fc2")(context)
    return layers.Multiply(name=f"{name}_gate")([mask, context])


def distortion_guided_block(
    x: tf.Tensor, guide: tf.Tensor, mask: tf.Tensor, width: int, name: str
) -> tf.Tensor:
    """DGB: fuse NetL features, SFM, dense residual block + SC, then DGA.

    Layers: ``{name}_fuse`` (1×1 over ``concat([x, guide])``), ``{name}_sfm``, the dense block
    ``{name}_dense``, the sparse convolution ``{name}_sc`` and the attention ``{name}_dga``.
    With a mask of zeros the block reduces to ``dense(fuse(x, guide))``.
    """
    fused = _conv(width, 1, f"{name}_fuse")(layers.Concatenate(name=f"{name}_cat")([x, guide]))
    fused = SPAIRSpatialFeatureModulator(name=f"{name}_sfm")([fused, mask])
    dense = residual_block(fused, width, f"{name}_dense")
    sparse = sparse_convolution(fused, mask, width, f"{name}_sc")
    y = layers.Add(name=f"{name}_merge")([dense, sparse])
    attention = distortion_guided_attention(y, mask, width, f"{name}_dga")
    return layers.Add(name=f"{name}_out")([y, attention])


# ---------------------------------------------------------------------------------- networks


def localization_network(
    rainy: tf.Tensor, width: int, blocks: int
) -> tuple[tf.Tensor, list[tf.Tensor]]:
    """NetL: soft distortion mask ``(N, H, W, 1)`` and its decoder features per level.

    ``features[l]`` has width ``width·2^l`` at resolution ``1/2^l`` (``l = 0, 1, 2``; level 2 is
    the bottleneck).
    """
    skips = _encoder(rainy, width, blocks, "netl")
    x = skips[-1]
    features = [x]
    for level in reversed(range(LEVELS - 1)):
        x = _up(x, skips[level], width * 2**level, f"netl_up{level + 1}")
        x = _blocks(x, width * 2**level, blocks, f"netl_dec{level + 1}")
        features.insert(0, x)
    mask = _conv(1, 3, "netl_mask", activation="sigmoid")(x)
    return mask, features


def restoration_network(
    rainy: tf.Tensor,
    guides: list[tf.Tensor],
    masks: list[tf.Tensor],
    width: int,
    blocks: int,
) -> tf.Tensor:
    """NetR: a U-Net whose decoder levels each start with a distortion-guided block."""
    skips = _encoder(rainy, width, blocks, "netr")
    x = skips[-1]
    for level in reversed(range(LEVELS)):
        level_width = width * 2**level
        if level < LEVELS - 1:
            x = _up(x, skips[level], level_width, f"netr_up{level + 1}")
        x = distortion_guided_block(
            x, guides[level], masks[level], level_width, f"netr_dgb{level + 1}"
        )
        x = _blocks(x, level_width, blocks, f"netr_dec{level + 1}")
    residual = _conv(3, 3, "netr_conv_out")(x)
    return layers.Add(name="derained")([rainy, residual])


@register(
    "spair",
    multiple=2 ** (LEVELS - 1),
    halo=64,
    key_map=None,
    outputs=("derained", "rain"),
    description="SPAIR (ICCV 2021, from the paper): distortion mask + mask-guided restoration",
    tiny=Tiny({"width": 8, "blocks": 1, "loc_width": 4, "loc_blocks": 1}),
    phone=True,
)
def spair(
    width: int = 32,
    blocks: int = 2,
    loc_width: int = 16,
    loc_blocks: int = 1,
    mask_threshold: float | None = None,
) -> keras.Model:
    """SPAIR: localization network (NetL) guiding a restoration network (NetR).

    Args:
        width: NetR channels at full resolution (``2·width``, ``4·width`` below).
        blocks: residual blocks per NetR encoder and decoder level.
        loc_width: NetL channels at full resolution.
        loc_blocks: residual blocks per NetL encoder and decoder level.
        mask_threshold: ``None`` guides NetR with the soft mask; a value in (0, 1) guides it
            with the binary mask ``M > mask_threshold`` (straight-through gradient).
    """
    if min(width, loc_width, blocks, loc_blocks) < 1:
        raise ValueError(
            "width, loc_width, blocks and loc_blocks must be positive; got "
            f"{width}, {loc_width}, {blocks}, {loc_blocks}"
        )
    if mask_threshold is not None and not 0.0 < mask_threshold < 1.0:
        raise ValueError(f"mask_threshold must be None or in (0, 1), got {mask_threshold}")
    rainy = keras.Input((None, None, 3), name="rainy")
    mask, guides = localization_network(rainy, loc_width, loc_blocks)
    guidance = mask
    if mask_threshold is not None:
        guidance = SPAIRBinarizeMask(mask_threshold, name="mask_binarize")(mask)
    masks = [guidance] + [
        layers.MaxPooling2D(2**level, name=f"mask_pool{level + 1}")(guidance)
        for level in range(1, LEVELS)
    ]
    derained = restoration_network(rainy, guides, masks, width, blocks)
    rain = layers.Activation("linear", name="rain")(mask)
    return keras.Model(rainy, {"derained": derained, "rain": rain}, name="spair")
