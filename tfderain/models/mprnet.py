"""MPRNet: multi-stage progressive image restoration, deraining variant.

Paper: S. W. Zamir, A. Arora, S. Khan, M. Hayat, F. S. Khan, M.-H. Yang, L. Shao, "Multi-Stage
Progressive Image Restoration", IEEE/CVF Conference on Computer Vision and Pattern Recognition
(CVPR), 2021. Official code: https://github.com/swz30/MPRNet (``Deraining/MPRNet.py``, class
``MPRNet``).

Three stages restore the image progressively, each seeing a coarser split of the input:

* **Stage 1** cuts the image into four quarters (top/bottom halves, each cut into left/right).
  Each quarter gets its own shallow features (3×3 conv + channel-attention block, CAB) and runs
  through the stage-1 encoder (a three-level U-Net encoder of CABs, widths ``n_feat``,
  ``n_feat + scale_unetfeats``, ``n_feat + 2·scale_unetfeats``). The encoder features of the
  left and right quarters are joined along the width, and the stage-1 decoder runs on the top and
  the bottom half. A supervised attention module (SAM) turns each half's decoder output into a
  restored half image and attention-gated features for the next stage.
* **Stage 2** cuts the image into top and bottom halves. Shallow features of each half are fused
  with the stage-1 SAM features (``concat12``) and run through the stage-2 encoder, which adds
  1×1-convolved stage-1 encoder and decoder features at every level (cross-stage feature fusion,
  CSFF). The two halves are joined along the height and decoded once; SAM23 gives the stage-2
  image and the features for stage 3.
* **Stage 3** works on the whole image at full resolution: shallow features fused with the SAM23
  features (``concat23``) pass through the original-resolution subnetwork (ORSNet): three
  original-resolution blocks (ORB: ``num_cab`` CABs and a 3×3 conv, with a residual), each
  followed by the addition of 1×1-convolved, upsampled stage-2 encoder and decoder features.
  A 3×3 conv (``tail``) plus the input gives the restored image.

Every stage's encoder, decoder, shallow-feature and SAM weights are shared between the patches of
that stage (the same Keras layers are called on each patch).

Outputs:
    ``derained``: the stage-3 image ``tail(ORSNet(...)) + input`` (not clamped; the official
    test script clamps to [0, 1] afterwards).
    ``stages``: the three stage images stacked on axis 1, shape ``(N, 3, H, W, 3)``:
    ``stages[:, 0]`` is stage 1 (the two SAM12 half images, top over bottom), ``stages[:, 1]``
    stage 2 (SAM23), ``stages[:, 2] == derained``. Training supervises all three. (The official
    forward returns them in the opposite order, ``[stage3, stage2, stage1]``.)

Quirks of the official code, all reproduced:
    * **One PReLU shared network-wide.** ``MPRNet.__init__`` creates a single ``nn.PReLU()`` (one
      scalar slope) and passes it to every CAB: shallow features, all encoder/decoder levels, the
      skip attentions and every ORB block. The state dict repeats the one tensor under every
      ``<CAB>.body.1.weight`` key (55 in the paper config) while ``parameters()`` counts it once.
      Here it is the single Keras layer ``act``. The converter reads it from
      ``shallow_feat1.1.body.1.weight``; the other copies are skipped (``ignore_keys``) after
      :func:`_infer_config` has checked that they all hold the same value.
    * The channel attention inside a CAB (``CALayer``) uses a plain ReLU, not the shared PReLU.
    * The SAMs are built with ``kernel_size=1``: all three SAM convolutions are 1×1.
    * The resampling modules always are bias-free, and so is the final 3×3 conv of every ORB
      (``conv()`` called without ``bias``), whatever the constructor's ``bias``.
    * ``DownSample`` is a bilinear ×0.5 resize (``align_corners=False``) followed by a 1×1 conv
      widening the channels. For even sizes that resize is exactly 2×2 average pooling, used here.
      ``UpSample``/``SkipUpSample`` resize ×2 bilinearly *before* their channel-reducing 1×1 conv.
    * Convolutions see zero padding at the patch borders: the patches are processed separately,
      not cropped from full-image features. Stage 1's halves are cut at ``H // 2`` and the
      quarters at ``W // 2``.
    * ORSNet fuses the stage-2 encoder features *after* CSFF and the stage-2 decoder features;
      the two deepest levels are brought to full resolution by chained ``UpSample`` modules.
    * The constructor arguments ``in_c`` and ``out_c`` must be 3 (the SAMs and the global residual
      hard-code RGB); the builder therefore does not take them.

Height and width must be multiples of 8: each stage-1 quarter (``H/2 × W/2``) goes through two
2× downsamplings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tfderain._keras import keras, tf
from tfderain.models import ConversionError, Tiny, register
from tfderain.models.blocks import Stack

layers = keras.layers

_SHARED_ACT_KEY = "shallow_feat1.1.body.1.weight"
_TORCH_PRELU_INIT = 0.25
_LEVELS = (1, 2, 3)


@keras.saving.register_keras_serializable(package="tfderain")
class MPRNetHalves(layers.Layer):
    """Splits a tensor into two halves along ``axis`` at ``size // 2`` (torch ``int(H / 2)``)."""

    QUANTIZE = "none"

    def __init__(self, axis: int, **kwargs):
        super().__init__(**kwargs)
        if axis not in (1, 2):
            raise ValueError(f"axis must be 1 (height) or 2 (width), got {axis}")
        self.axis = axis

    def call(self, x):
        half = tf.shape(x)[self.axis] // 2
        if self.axis == 1:
            return [x[:, :half], x[:, half:]]
        return [x[:, :, :half], x[:, :, half:]]

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


def _name(module: str) -> str:
    """Keras layer name of an official module path."""
    return module.replace(".", "_")


# --------------------------------------------------------------------------- key table


def _cab_modules(cab: str) -> list[str]:
    """Weighted modules of one CAB (its PReLU is the shared ``act``)."""
    return [f"{cab}.body.0", f"{cab}.body.2", f"{cab}.CA.conv_du.0", f"{cab}.CA.conv_du.2"]


def _all_cabs(num_cab: int) -> list[str]:
    """Module paths of every CAB, i.e. of every use of the shared PReLU, in state-dict order."""
    cabs = [f"shallow_feat{s}.1" for s in (1, 2, 3)]
    for s in (1, 2):
        cabs += [f"stage{s}_encoder.encoder_level{i}.{j}" for i in _LEVELS for j in (0, 1)]
        cabs += [f"stage{s}_decoder.decoder_level{i}.{j}" for i in _LEVELS for j in (0, 1)]
        cabs += [f"stage{s}_decoder.skip_attn{i}" for i in (1, 2)]
    cabs += [f"stage3_orsnet.orb{i}.body.{j}" for i in _LEVELS for j in range(num_cab)]
    return cabs


def _weighted_modules(num_cab: int) -> list[str]:
    """Official module paths of every convolution."""
    modules = [f"shallow_feat{s}.0" for s in (1, 2, 3)]
    for cab in _all_cabs(num_cab):
        modules += _cab_modules(cab)
    for s in (1, 2):
        modules += [f"stage{s}_encoder.down12.down.1", f"stage{s}_encoder.down23.down.1"]
        modules += [f"stage{s}_decoder.up21.up.1", f"stage{s}_decoder.up32.up.1"]
    modules += [f"stage2_encoder.csff_{kind}{i}" for kind in ("enc", "dec") for i in _LEVELS]
    orsnet = "stage3_orsnet"
    modules += [f"{orsnet}.orb{i}.body.{num_cab}" for i in _LEVELS]
    for kind in ("enc", "dec"):
        modules += [f"{orsnet}.up_{kind}1.up.1"]
        modules += [f"{orsnet}.up_{kind}2.{j}.up.1" for j in (0, 1)]
        modules += [f"{orsnet}.conv_{kind}{i}" for i in _LEVELS]
    modules += [f"sam{s}.conv{i}" for s in (12, 23) for i in _LEVELS]
    modules += ["concat12", "concat23", "tail"]
    return modules


def _key_map(num_cab: int = 8, **_) -> dict[str, str]:
    """Keras layer name → official ``state_dict`` module prefix."""
    table = {_name(m): m for m in _weighted_modules(num_cab)}
    table["act"] = _SHARED_ACT_KEY.removesuffix(".weight")
    return table


def _shared_act_copies(num_cab: int = 8, **_) -> tuple[str, ...]:
    """State-dict keys repeating the shared PReLU, except the one the converter reads."""
    keys = (f"{cab}.body.1.weight" for cab in _all_cabs(num_cab))
    return tuple(key for key in keys if key != _SHARED_ACT_KEY)


def _infer_config(state_dict: Mapping[str, np.ndarray]) -> dict:
    """Widths, block count, kernel size, reduction and bias from the checkpoint's shapes.

    Also checks that every copy of the shared PReLU holds the same slope: a checkpoint whose
    copies differ comes from a different network and cannot be represented by this one.
    """
    first = state_dict["shallow_feat1.0.weight"]
    n_feat = int(first.shape[0])
    hidden = int(state_dict["shallow_feat1.1.CA.conv_du.0.weight"].shape[0])
    num_cab = 0
    while f"stage3_orsnet.orb1.body.{num_cab}.CA.conv_du.0.weight" in state_dict:
        num_cab += 1
    config = {
        "n_feat": n_feat,
        "scale_unetfeats": int(state_dict["stage1_encoder.down12.down.1.weight"].shape[0]) - n_feat,
        "scale_orsnetfeats": int(state_dict["concat23.weight"].shape[0]) - n_feat,
        "num_cab": num_cab,
        "kernel_size": int(first.shape[-1]),
        "reduction": n_feat // max(hidden, 1),
        "bias": "shallow_feat1.0.bias" in state_dict,
    }
    shared = np.asarray(state_dict[_SHARED_ACT_KEY])
    differ = [
        key
        for key in _shared_act_copies(num_cab)
        if key not in state_dict or not np.array_equal(np.asarray(state_dict[key]), shared)
    ]
    if differ:
        raise ConversionError(
            f"MPRNet shares one PReLU network-wide, but {len(differ)} of its copies are missing "
            f"or differ from {_SHARED_ACT_KEY!r}: {', '.join(differ[:10])}"
        )
    return config


# --------------------------------------------------------------------------- graph


class _MPRNetBuilder:
    """Builds the functional graph.

    Layers are created once per official module path and reused on every later call with the
    same path, which is how the patches of a stage share their weights.
    """

    def __init__(
        self,
        n_feat: int,
        scale_unetfeats: int,
        scale_orsnetfeats: int,
        num_cab: int,
        kernel_size: int,
        reduction: int,
        bias: bool,
    ):
        self.widths = [n_feat + k * scale_unetfeats for k in range(3)]
        self.orsnet_width = n_feat + scale_orsnetfeats
        self.num_cab = num_cab
        self.kernel_size = kernel_size
        self.reduction = reduction
        self.bias = bias
        self._layers: dict[str, layers.Layer] = {}
        # nn.PReLU(): one scalar slope shared over all axes, initialised to 0.25.
        self.act = layers.PReLU(
            alpha_initializer=keras.initializers.Constant(_TORCH_PRELU_INIT),
            shared_axes=[1, 2, 3],
            name="act",
        )

    def layer(self, cls: type[layers.Layer], name: str, **kwargs: Any) -> layers.Layer:
        """The layer called ``name``, created as ``cls(name=name, **kwargs)`` on first use."""
        if name not in self._layers:
            self._layers[name] = cls(name=name, **kwargs)
        return self._layers[name]

    def conv(self, x, module: str, filters: int, kernel_size: int, bias: bool, **kwargs):
        """torch ``Conv2d`` with stride 1 and padding ``k // 2``."""
        conv = self.layer(
            layers.Conv2D,
            _name(module),
            filters=filters,
            kernel_size=kernel_size,
            padding="same",
            use_bias=bias,
            **kwargs,
        )
        return conv(x)

    def add(self, xs, name: str):
        return self.layer(layers.Add, name)(xs)

    def concat(self, xs, axis: int, name: str):
        return self.layer(layers.Concatenate, name, axis=axis)(xs)

    def cab(self, x, module: str, channels: int):
        """Channel-attention block: ``x + CA(conv(act(conv(x))))``."""
        k, bias = self.kernel_size, self.bias
        y = self.conv(x, f"{module}.body.0", channels, k, bias)
        y = self.act(y)
        y = self.conv(y, f"{module}.body.2", channels, k, bias)
        y = self.channel_attention(y, f"{module}.CA", channels)
        return self.add([y, x], f"{_name(module)}_add")

    def channel_attention(self, x, module: str, channels: int):
        """CALayer: ``x · σ(W₂ ReLU(W₁ avgpool(x)))`` with 1×1 convs ``C → C//r → C``."""
        tag = _name(module)
        y = self.layer(layers.GlobalAveragePooling2D, f"{tag}_pool", keepdims=True)(x)
        y = self.conv(y, f"{module}.conv_du.0", channels // self.reduction, 1, self.bias)
        y = self.layer(layers.ReLU, f"{tag}_conv_du_1")(y)
        y = self.conv(y, f"{module}.conv_du.2", channels, 1, self.bias, activation="sigmoid")
        return self.layer(layers.Multiply, f"{tag}_mul")([x, y])

    def cabs(self, x, module: str, count: int, channels: int):
        for j in range(count):
            x = self.cab(x, f"{module}.{j}", channels)
        return x

    def down(self, x, module: str, filters: int):
        """DownSample: bilinear ×0.5 (= 2×2 average pooling here), then a 1×1 conv."""
        x = self.layer(layers.AveragePooling2D, _name(f"{module}.0"), pool_size=2)(x)
        return self.conv(x, f"{module}.1", filters, 1, bias=False)

    def up(self, x, module: str, filters: int):
        """UpSample / SkipUpSample body: bilinear ×2 (half-pixel centres), then a 1×1 conv."""
        upsample = self.layer(
            layers.UpSampling2D, _name(f"{module}.0"), size=2, interpolation="bilinear"
        )
        x = upsample(x)
        return self.conv(x, f"{module}.1", filters, 1, bias=False)

    def shallow(self, image, module: str):
        x = self.conv(image, f"{module}.0", self.widths[0], self.kernel_size, self.bias)
        return self.cab(x, f"{module}.1", self.widths[0])

    def encoder(self, x, module: str, csff=None):
        """U-Net encoder → ``[enc1, enc2, enc3]``; ``csff`` = (encoder, decoder) features."""
        outs = []
        for i, width in zip(_LEVELS, self.widths, strict=True):
            if i > 1:
                x = self.down(x, f"{module}.down{i - 1}{i}.down", width)
            x = self.cabs(x, f"{module}.encoder_level{i}", 2, width)
            if csff is not None:
                enc = self.conv(csff[0][i - 1], f"{module}.csff_enc{i}", width, 1, self.bias)
                dec = self.conv(csff[1][i - 1], f"{module}.csff_dec{i}", width, 1, self.bias)
                x = self.add([x, enc, dec], f"{_name(module)}_csff{i}_add")
            outs.append(x)
        return outs

    def decoder(self, outs, module: str):
        """U-Net decoder → ``[dec1, dec2, dec3]``, with CAB-attended skip connections."""
        w1, w2, w3 = self.widths
        enc1, enc2, enc3 = outs
        dec3 = self.cabs(enc3, f"{module}.decoder_level3", 2, w3)
        skip = self.cab(enc2, f"{module}.skip_attn2", w2)
        x = self.add([self.up(dec3, f"{module}.up32.up", w2), skip], f"{_name(module)}_up32_add")
        dec2 = self.cabs(x, f"{module}.decoder_level2", 2, w2)
        skip = self.cab(enc1, f"{module}.skip_attn1", w1)
        x = self.add([self.up(dec2, f"{module}.up21.up", w1), skip], f"{_name(module)}_up21_add")
        dec1 = self.cabs(x, f"{module}.decoder_level1", 2, w1)
        return [dec1, dec2, dec3]

    def sam(self, x, image, module: str):
        """Supervised attention module → (gated features, restored image); 1×1 convs."""
        n = self.widths[0]
        x1 = self.conv(x, f"{module}.conv1", n, 1, self.bias)
        img = self.conv(x, f"{module}.conv2", 3, 1, self.bias)
        img = self.add([img, image], f"{module}_img")
        gate = self.conv(img, f"{module}.conv3", n, 1, self.bias, activation="sigmoid")
        x1 = self.layer(layers.Multiply, f"{module}_mul")([x1, gate])
        return self.add([x1, x], f"{module}_add"), img

    def orb(self, x, module: str):
        """Original-resolution block: ``num_cab`` CABs and a bias-free 3×3 conv, plus ``x``."""
        y = self.cabs(x, f"{module}.body", self.num_cab, self.orsnet_width)
        y = self.conv(
            y, f"{module}.body.{self.num_cab}", self.orsnet_width, self.kernel_size, False
        )
        return self.add([y, x], f"{_name(module)}_add")

    def orsnet(self, x, enc, dec, module: str = "stage3_orsnet"):
        """ORSNet: three ORBs, each followed by fused, upsampled stage-2 U-Net features."""
        w1, w2, _ = self.widths
        for i in _LEVELS:
            x = self.orb(x, f"{module}.orb{i}")
            fused = []
            for kind, feats in (("enc", enc), ("dec", dec)):
                y = feats[i - 1]
                if i == 2:
                    y = self.up(y, f"{module}.up_{kind}1.up", w1)
                elif i == 3:
                    y = self.up(y, f"{module}.up_{kind}2.0.up", w2)
                    y = self.up(y, f"{module}.up_{kind}2.1.up", w1)
                conv = f"{module}.conv_{kind}{i}"
                fused.append(self.conv(y, conv, self.orsnet_width, 1, self.bias))
            x = self.add([x, *fused], f"{module}_fuse{i}")
        return x

    def __call__(self, image):
        """The three stages → (stage-1, stage-2, stage-3 images)."""
        n, k, bias = self.widths[0], self.kernel_size, self.bias
        split_h = self.layer(MPRNetHalves, "split_h", axis=1)
        split_w = self.layer(MPRNetHalves, "split_w", axis=2)
        halves = split_h(image)  # [top, bottom]
        quarters = [split_w(half) for half in halves]  # [[ltop, rtop], [lbot, rbot]]

        # Stage 1: four quarters through one encoder, two halves through one decoder.
        feat1, res1, sam_feats, stage1_halves = [], [], [], []
        for half, pair in zip(halves, quarters, strict=True):
            encoded = [
                self.encoder(self.shallow(q, "shallow_feat1"), "stage1_encoder") for q in pair
            ]
            joined = [
                self.concat([left, right], axis=2, name=f"stage1_level{i}_join_w")
                for i, left, right in zip(_LEVELS, *encoded, strict=True)
            ]
            decoded = self.decoder(joined, "stage1_decoder")
            feats, img = self.sam(decoded[0], half, "sam12")
            feat1.append(joined)
            res1.append(decoded)
            sam_feats.append(feats)
            stage1_halves.append(img)
        stage1 = self.concat(stage1_halves, axis=1, name="stage1")

        # Stage 2: two halves through one encoder (with CSFF), one decoder on the whole image.
        feat2 = []
        for j, half in enumerate(halves):
            x = self.shallow(half, "shallow_feat2")
            x = self.concat([x, sam_feats[j]], axis=-1, name="concat12_in")
            x = self.conv(x, "concat12", n, k, bias)
            feat2.append(self.encoder(x, "stage2_encoder", csff=(feat1[j], res1[j])))
        feat2 = [
            self.concat([top, bottom], axis=1, name=f"stage2_level{i}_join_h")
            for i, top, bottom in zip(_LEVELS, *feat2, strict=True)
        ]
        res2 = self.decoder(feat2, "stage2_decoder")
        sam_feats3, stage2 = self.sam(res2[0], image, "sam23")

        # Stage 3: full resolution.
        x = self.shallow(image, "shallow_feat3")
        x = self.concat([x, sam_feats3], axis=-1, name="concat23_in")
        x = self.conv(x, "concat23", self.orsnet_width, k, bias)
        x = self.orsnet(x, feat2, res2)
        x = self.conv(x, "tail", 3, k, bias)
        stage3 = self.add([x, image], "stage3")
        return stage1, stage2, stage3


@register(
    "mprnet",
    multiple=8,
    halo=96,
    key_map=_key_map,
    infer_config=_infer_config,
    outputs=("derained", "stages"),
    ignore_keys=_shared_act_copies,
    protocol="B",  # the official evaluate_PSNR_SSIM.m
    description="MPRNet (CVPR 2021): multi-patch, multi-stage U-Nets with SAM and ORSNet",
    tiny=Tiny({"n_feat": 8, "scale_unetfeats": 4, "scale_orsnetfeats": 4, "num_cab": 1}),
    phone=True,
)
def mprnet(
    n_feat: int = 40,
    scale_unetfeats: int = 20,
    scale_orsnetfeats: int = 16,
    num_cab: int = 8,
    kernel_size: int = 3,
    reduction: int = 4,
    bias: bool = False,
) -> keras.Model:
    """MPRNet, deraining configuration by default (3,637,249 parameters).

    Args:
        n_feat: feature width of the shallow features, SAMs and the first U-Net level.
        scale_unetfeats: width added at each deeper U-Net level.
        scale_orsnetfeats: width added to ``n_feat`` in ORSNet.
        num_cab: channel-attention blocks in each ORB.
        kernel_size: size of the spatial convolutions (odd).
        reduction: channel reduction inside the channel attention.
        bias: biases in the convolutions that the official constructor passes ``bias`` to.
    """
    if min(n_feat, reduction) < 1 or n_feat // reduction < 1:
        raise ValueError(
            "n_feat and reduction must be positive with n_feat // reduction >= 1; got "
            f"n_feat={n_feat}, reduction={reduction}"
        )
    if min(scale_unetfeats, scale_orsnetfeats, num_cab) < 0:
        raise ValueError(
            "scale_unetfeats, scale_orsnetfeats and num_cab must be non-negative; got "
            f"{scale_unetfeats}, {scale_orsnetfeats}, {num_cab}"
        )
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}")
    net = _MPRNetBuilder(
        n_feat, scale_unetfeats, scale_orsnetfeats, num_cab, kernel_size, reduction, bias
    )
    rainy = keras.Input((None, None, 3), name="rainy")
    stage1, stage2, stage3 = net(rainy)
    stages = Stack(axis=1, name="stages")([stage1, stage2, stage3])
    return keras.Model(rainy, {"derained": stage3, "stages": stages}, name="mprnet")
