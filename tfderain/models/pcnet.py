"""PCNet: the Progressive Coupled Network for real-time deraining.

Paper: K. Jiang, Z. Wang, P. Yi, C. Chen, Z. Wang, X. Wang, J. Jiang, C.-W. Lin, "Rain-free and
Residue Hand-in-Hand: A Progressive Coupled Network for Real-Time Image Deraining", IEEE
Transactions on Image Processing (TIP), 2021. Official code: https://github.com/kuijiang0802/PCNet
(``model/PCNet.py``, class ``PCNet``).

Two feature streams run side by side at half resolution: the rain-free background ``B`` and the
rain residue ``R``. A shared 3×3 convolution embeds the image, a depthwise-separable convolution
and a stride-2 convolution start each stream, and the coupled representation module (CRM, twenty
coupled representation blocks, CRBs) refines both. Each CRB sends ``R`` through a small U-shape
(stride-2 convolution, three depthwise-separable channel-attention blocks at quarter resolution,
a transposed-convolution upsampler added back to ``R``), then exchanges information between the
streams with two per-pixel attention gates: ``B' = B − A_B(B) + A_R(R)`` and
``R' = R − A_R(R) + A_B(B)``. Transposed convolutions bring both streams back to full resolution,
and the reconstruction and reproduction block (RRB) turns ``B`` into the derained image and blends
the ``B`` and ``R`` reconstructions into a re-synthesised rainy image.

Outputs:
    ``derained``: ``RRB.recon_B``, the restored image (not clamped; the official demo clamps).
    ``rain``: the reconstructed rainy image ``recon_B·a + recon_R·(1 − a)``, where ``a`` is a
    per-image, per-colour-channel attention (global average pooling of ``recon_B + recon_R``,
    1×1 conv, PReLU, 1×1 conv, sigmoid). It is the official second output (``re_rain``).

Quirks of the official code, all reproduced:
    * **One PReLU shared network-wide.** ``PCNet.__init__`` creates a single ``nn.PReLU()`` (one
      scalar slope) and hands it to every module that takes ``act``: ``UP_B.1``, ``UP_R.1`` and,
      in every CRB, ``act1``, ``lfsfb.act2`` and the middle activation ``body.1`` of each of its
      channel-attention blocks. The module is registered under all these names, so the state
      dict repeats the one tensor under 102 keys in the paper config while ``parameters()``
      counts it once. Here it is the single Keras layer ``act``, applied at every one of those
      places. The converter reads it from ``model.UP_B.1.weight``; the other copies are skipped
      (``ignore_keys``) after :func:`_infer_config` has checked that they all hold the same value.
      The PReLUs inside the attention layers (``CA``, ``CA_B``, ``CA_R``, ``rrb.conv_du``) are
      separate instances with their own slopes.
    * ``CA_B`` and ``CA_R`` are ``SALayer``: a per-pixel sigmoid gate (1×1 conv → PReLU → 1×1
      conv), with no pooling, despite the ``CA`` in their names.
    * ``LFSFB`` ignores its first argument: it is ``act(ConvTranspose(x))`` of the U-shape output.
    * The depthwise-separable convolutions always are 3×3 and always have biases, whatever the
      constructor's ``kernel_size`` and ``bias``; the transposed convolutions always are 3×3
      without bias. ``kernel_size`` and ``bias`` reach only the plain convolutions and the
      attention layers (all bias-free in the paper config).
    * Both gates of a CRB read the features before the exchange (``A_B(B)`` and ``A_R(R)`` are
      computed first, then both streams are updated), and the ``R`` stream is gated after its
      U-shape residual has been added.
    * There is no global skip from the input image: ``derained`` is a plain 3×3 convolution of the
      upsampled ``B`` features.
    * The constructor arguments ``in_c`` and ``out_c`` are unused (always RGB in and out); the
      builder therefore does not take them.
    * The file also holds classes the model never uses (``CAB``, ``ECAB``, ``CCALayer``,
      ``S2FB_2``, resampling modules); they have no counterpart here.

Ports of torch operations: stride-2 convolutions with symmetric padding use ``ZeroPadding2D`` and
a ``valid`` convolution; ``ConvTranspose2d(3, stride=2, padding=1, output_padding=1)`` is a
``valid`` ``Conv2DTranspose`` (``2H + 1`` pixels) cropped by one pixel at the top and left.
TFLite exports write each such pair as one 2×2 convolution and a depth-to-space
(:func:`tfderain.export.rewrite.with_subpixel_convolutions`).

Height and width must be multiples of 4 (two stride-2 stages). The official demo reflect-pads to
a multiple of 8, which is not needed by the network itself.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from tfderain._keras import keras
from tfderain.models import ConversionError, Tiny, register

layers = keras.layers

#: The shared activation's keys in the official state dict: the first is loaded, the rest are
#: verified to be equal and skipped. Checkpoints with up to this many CRBs / blocks per CRB are
#: covered by the static ``ignore_keys`` of the registration.
_MAX_CRB = 64
_MAX_RCAB = 8
_SHARED_ACT_KEY = "model.UP_B.1.weight"
_TORCH_PRELU_INIT = 0.25


def _name(module: str) -> str:
    """Keras layer name of an official module path (without the leading ``model.``)."""
    return module.replace(".", "_")


def _shared_act_copies(num_crb: int, num_rcab: int) -> list[str]:
    """State-dict keys repeating the shared PReLU, except the one the converter reads."""
    keys = ["model.UP_R.1.weight"]
    for i in range(num_crb):
        crb = f"model.crm.body.{i}"
        keys += [f"{crb}.act1.weight", f"{crb}.lfsfb.act2.weight"]
        keys += [f"{crb}.body.{j}.body.1.weight" for j in range(num_rcab)]
    return keys


def _attention_modules(prefix: str) -> list[str]:
    return [f"{prefix}.conv_du.{k}" for k in range(3)]


def _weighted_modules(num_crb: int, num_rcab: int) -> list[str]:
    """Official module paths (below ``model.``) of every layer with its own parameters."""
    dsc = ("depth_conv", "point_conv")
    modules = ["image_fea"]
    modules += [f"shallow_fea_{s}.{c}" for s in "BR" for c in dsc]
    modules += ["down_B", "down_R"]
    for i in range(num_crb):
        crb = f"crm.body.{i}"
        modules.append(f"{crb}.down_R")
        for j in range(num_rcab):
            cab = f"{crb}.body.{j}"
            modules += [f"{cab}.body.{k}.{c}" for k in (0, 2) for c in dsc]
            modules += _attention_modules(f"{cab}.CA")
        modules.append(f"{crb}.lfsfb.FFU")
        modules += _attention_modules(f"{crb}.CA_B") + _attention_modules(f"{crb}.CA_R")
    modules += ["UP_B.0", "UP_R.0", "rrb.recon_B", "rrb.recon_R"]
    modules += _attention_modules("rrb")
    return modules


def _key_map(num_crb: int = 20, num_rcab: int = 3, **_) -> dict[str, str]:
    """Keras layer name → official ``state_dict`` module prefix."""
    table = {_name(m): f"model.{m}" for m in _weighted_modules(num_crb, num_rcab)}
    table["act"] = _SHARED_ACT_KEY.removesuffix(".weight")
    return table


def _infer_config(state_dict: Mapping[str, np.ndarray]) -> dict:
    """Widths, kernel size, bias and block counts from the checkpoint's keys and shapes.

    Also checks that every copy of the shared PReLU holds the same slope: a checkpoint whose
    copies differ comes from a different network and cannot be represented by this one.
    """
    first = state_dict["model.image_fea.weight"]
    config = {
        "n_feat": int(first.shape[0]),
        "kernel_size": int(first.shape[-1]),
        "bias": "model.image_fea.bias" in state_dict,
    }
    num_crb = 0
    while f"model.crm.body.{num_crb}.down_R.weight" in state_dict:
        num_crb += 1
    config["num_crb"] = num_crb
    num_rcab = 0
    if num_crb:
        while f"model.crm.body.0.body.{num_rcab}.CA.conv_du.0.weight" in state_dict:
            num_rcab += 1
        config["num_rcab"] = num_rcab
        hidden = state_dict["model.crm.body.0.CA_B.conv_du.0.weight"].shape[0]
        config["reduction"] = config["n_feat"] // int(hidden)
    shared = np.asarray(state_dict[_SHARED_ACT_KEY])
    differ = [
        key
        for key in _shared_act_copies(num_crb, num_rcab)
        if key not in state_dict or not np.array_equal(np.asarray(state_dict[key]), shared)
    ]
    if differ:
        raise ConversionError(
            f"PCNet shares one PReLU network-wide, but {len(differ)} of its copies are missing "
            f"or differ from {_SHARED_ACT_KEY!r}: {', '.join(differ[:10])}"
        )
    return config


def _prelu(name: str) -> layers.PReLU:
    """``nn.PReLU()``: one scalar slope shared over all axes, initialised to 0.25."""
    return layers.PReLU(
        alpha_initializer=keras.initializers.Constant(_TORCH_PRELU_INIT),
        shared_axes=[1, 2, 3],
        name=name,
    )


class _PCNetBuilder:
    """Builds the functional graph; holds the config and the shared activation."""

    def __init__(self, n_feat: int, kernel_size: int, reduction: int, bias: bool):
        self.n_feat = n_feat
        self.kernel_size = kernel_size
        self.reduction = reduction
        self.bias = bias
        self.act = _prelu("act")

    def conv(self, x, filters: int, module: str):
        """torch ``conv(...)``: stride 1, padding ``k // 2``."""
        return layers.Conv2D(
            filters, self.kernel_size, padding="same", use_bias=self.bias, name=_name(module)
        )(x)

    def strided_conv(self, x, module: str):
        """torch ``st_conv(...)``: stride 2, symmetric zero padding ``k // 2``."""
        x = layers.ZeroPadding2D(self.kernel_size // 2, name=f"{_name(module)}_pad")(x)
        return layers.Conv2D(
            self.n_feat, self.kernel_size, strides=2, use_bias=self.bias, name=_name(module)
        )(x)

    def upsample(self, x, module: str):
        """``ConvTranspose2d(3, stride=2, padding=1, output_padding=1, bias=False)``."""
        x = layers.Conv2DTranspose(
            self.n_feat, 3, strides=2, padding="valid", use_bias=False, name=_name(module)
        )(x)
        return layers.Cropping2D(((1, 0), (1, 0)), name=f"{_name(module)}_crop")(x)

    def separable(self, x, module: str):
        """``depthwise_separable_conv``: depthwise 3×3 then pointwise 1×1, both with bias."""
        x = layers.DepthwiseConv2D(3, padding="same", name=_name(f"{module}.depth_conv"))(x)
        return layers.Conv2D(self.n_feat, 1, name=_name(f"{module}.point_conv"))(x)

    def gate(self, x, hidden: int, out: int, module: str, pooled: bool):
        """CALayer (``pooled``: per channel) or SALayer (per pixel): ``x · σ(W₂ PReLU(W₁ y))``."""
        y = x
        if pooled:
            y = layers.GlobalAveragePooling2D(keepdims=True, name=f"{_name(module)}_pool")(y)
        y = layers.Conv2D(hidden, 1, use_bias=self.bias, name=_name(f"{module}.conv_du.0"))(y)
        y = _prelu(_name(f"{module}.conv_du.1"))(y)
        return layers.Conv2D(
            out, 1, use_bias=self.bias, activation="sigmoid", name=_name(f"{module}.conv_du.2")
        )(y)

    def attend(self, x, module: str, pooled: bool):
        hidden = self.n_feat // self.reduction
        y = self.gate(x, hidden, self.n_feat, module, pooled)
        return layers.Multiply(name=f"{_name(module)}_mul")([x, y])

    def cab_dsc(self, x, module: str):
        """Channel-attention block with depthwise-separable convolutions and a skip."""
        y = self.separable(x, f"{module}.body.0")
        y = self.act(y)
        y = self.separable(y, f"{module}.body.2")
        y = self.attend(y, f"{module}.CA", pooled=True)
        return layers.Add(name=f"{_name(module)}_add")([y, x])

    def crb(self, b, r, module: str, num_rcab: int):
        """Coupled representation block: U-shaped residue branch, then the B/R exchange."""
        down = self.act(self.strided_conv(r, f"{module}.down_R"))
        y = down
        for j in range(num_rcab):
            y = self.cab_dsc(y, f"{module}.body.{j}")
        up = self.act(self.upsample(y, f"{module}.lfsfb.FFU"))
        r = layers.Add(name=f"{_name(module)}_R_res")([r, up])
        b_to_r = self.attend(b, f"{module}.CA_B", pooled=False)
        r_to_b = self.attend(r, f"{module}.CA_R", pooled=False)
        tag = _name(module)
        b_new = layers.Subtract(name=f"{tag}_B_sub")([b, b_to_r])
        b_new = layers.Add(name=f"{tag}_B_add")([b_new, r_to_b])
        r_new = layers.Subtract(name=f"{tag}_R_sub")([r, r_to_b])
        r_new = layers.Add(name=f"{tag}_R_add")([r_new, b_to_r])
        return b_new, r_new

    def rrb(self, b, r):
        """Reconstruction and reproduction block → (derained, reconstructed rainy image)."""
        recon_b = self.conv(b, 3, "rrb.recon_B")
        recon_r = self.conv(r, 3, "rrb.recon_R")
        total = layers.Add(name="rrb_sum")([recon_b, recon_r])
        att = self.gate(total, self.n_feat, 3, "rrb", pooled=True)
        one_minus = layers.Rescaling(-1.0, offset=1.0, name="rrb_one_minus_att")(att)
        rain_b = layers.Multiply(name="rrb_B_mul")([recon_b, att])
        rain_r = layers.Multiply(name="rrb_R_mul")([recon_r, one_minus])
        rain = layers.Add(name="rrb_rain")([rain_b, rain_r])
        return recon_b, rain


@register(
    "pcnet",
    multiple=4,
    halo=64,
    key_map=_key_map,
    infer_config=_infer_config,
    outputs=("derained", "rain"),
    ignore_keys=tuple(_shared_act_copies(_MAX_CRB, _MAX_RCAB)),
    description="PCNet (TIP 2021): coupled rain-free/residue streams, real-time",
    tiny=Tiny({"n_feat": 8, "num_crb": 1, "num_rcab": 1}),
    phone=True,
)
def pcnet(
    n_feat: int = 32,
    kernel_size: int = 3,
    reduction: int = 4,
    num_crb: int = 20,
    num_rcab: int = 3,
    bias: bool = False,
) -> keras.Model:
    """PCNet with ``num_crb`` coupled blocks of ``num_rcab`` attention blocks each.

    Args:
        n_feat: feature width of both streams.
        kernel_size: size of the plain convolutions (odd).
        reduction: channel reduction inside the attention gates of the CRBs.
        num_crb: coupled representation blocks in the CRM.
        num_rcab: depthwise-separable channel-attention blocks in each CRB's U-shape.
        bias: biases in the plain convolutions and attention gates.
    """
    if n_feat < 1 or reduction < 1 or n_feat // reduction < 1 or min(num_crb, num_rcab) < 0:
        raise ValueError(
            "n_feat and reduction must be positive with n_feat // reduction >= 1, num_crb and "
            f"num_rcab non-negative; got n_feat={n_feat}, reduction={reduction}, "
            f"num_crb={num_crb}, num_rcab={num_rcab}"
        )
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}")
    net = _PCNetBuilder(n_feat, kernel_size, reduction, bias)
    rainy = keras.Input((None, None, 3), name="rainy")
    features = net.conv(rainy, n_feat, "image_fea")
    b = net.strided_conv(net.separable(features, "shallow_fea_B"), "down_B")
    r = net.strided_conv(net.separable(features, "shallow_fea_R"), "down_R")
    for i in range(num_crb):
        b, r = net.crb(b, r, f"crm.body.{i}", num_rcab)
    b = net.act(net.upsample(b, "UP_B.0"))
    r = net.act(net.upsample(r, "UP_R.0"))
    derained, rain = net.rrb(b, r)
    return keras.Model(rainy, {"derained": derained, "rain": rain}, name="pcnet")
