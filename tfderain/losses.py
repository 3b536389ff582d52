"""Training losses of the deraining papers, by name.

Every loss is a Keras loss (a callable ``loss(y_true, y_pred) -> scalar``) that casts both inputs
to float32 first, so it computes in float32 even when the model runs under a mixed-precision
policy. Inputs are NHWC images; stacked stage outputs ``(N, T, H, W, C)`` are accepted too and are
treated as ``N * T`` images (:class:`MPRNetLoss` sums over the stages instead, as MPRNet's
training script does).

The losses by config name (:data:`LOSSES`), and the model outputs they are meant for:

==========================  =========  ============================================================
name                        output     loss (paper, official training script)
==========================  =========  ============================================================
``negative_ssim``           derained   ``-SSIM`` (PReNet, DTPNet); the SSIM of ``SSIM.py``
``charbonnier``             any image  ``mean(sqrt(d**2 + eps**2))``
``charbonnier_ssim``        derained   ``(1 - w) Charbonnier + w (1 - SSIM)``, ``w = 0.84``
                                       (RainUNet, tfderain's default model; Zhao et al.'s mix)
``mse``, ``l1``             any image  mean squared / absolute error (``l1``: CODE-Net, Restormer)
``edge``                    any image  Charbonnier of Laplacian-pyramid details (MPRNet's EdgeLoss)
``mprnet``                  stages     sum over stages of Charbonnier + 0.05 edge (MPRNet)
``pcnet``                   derained,  0.3 Charbonnier + 0.2 edge - 0.15 SSIM (PCNet); on ``rain``
                            rain       with ``target: rainy``, see :class:`PCNetLoss`
``remaen``                  derained   MSE + 0.1 MSE of Laplacian edge maps (ReMAEN)
``crdnet``                  derained   MSE + 0.005 (1 - SSIM) (CRDNet)
``cumulative_density_mse``  density    MSE to the cumulative density label (CRDNet)
``stage_mse``               stages     MSE of one stage, e.g. DTPNet's ``pred1`` (``stage: 0``)
``didmdn``                  derained   L1 of [-1, 1] images, + 1.8 x two VGG-16 feature L1s
                                       when VGG-16 weights are given (DID-MDN)
``didmdn_density``          density    cross-entropy of DID-MDN's 4 density logits
``rain_mask_bce``           rain       binary cross-entropy of a predicted rain mask (SPAIR)
==========================  =========  ============================================================

**Targets.** :func:`tfderain.data.pipeline.as_training_pairs` gives ``derained`` the clean batch,
``stages`` the clean batch repeated per stage, ``density`` the density batch ``(N,)`` (a density
in [0, 1], ``-1`` when unknown) and ``rain`` the rainy and clean batches concatenated on the
channel axis, ``(N, H, W, 6)``. The losses turn these into what their paper compares against:

* density losses map a density ``d`` to a level as :func:`tfderain.data.synthetic.density_level`
  does (light ``d < 1/3``, medium ``d < 2/3``, heavy otherwise) and encode the level as the paper
  does; an element of unknown density (``d < 0``) contributes 0 to the batch mean;
* losses on ``rain`` take from the 6-channel target the rainy image (:func:`rainy_image`, PCNet's
  reconstruction target), the rain layer ``rainy - clean`` (:func:`rain_layer`) or a thresholded
  rain mask (:func:`rain_mask`, SPAIR).

PReNet -- D. Ren, W. Zuo, Q. Hu, P. Zhu, D. Meng, "Progressive Image Deraining Networks: A Better
and Simpler Baseline", CVPR 2019, https://github.com/csdwren/PReNet. Its training scripts
(``train_PReNet.py``, ``train_PReNet_r.py``, ``train_PRN.py``, ``train_PRN_r.py``) all minimise
``-SSIM(clean, output)`` of the final stage only (``out_train, _ = model(input)``; the stage list is
ignored). The SSIM is the one in the repository's ``SSIM.py`` (the widely copied ``pytorch_ssim``),
which differs from the SSIM of the evaluation protocols (:mod:`tfderain.metrics`):

* the 11x11 Gaussian window (sigma 1.5, normalised to sum 1) is applied per channel (a depthwise
  convolution) to RGB images in [0, 1];
* the convolution zero-pads by 5 pixels ('same' output size), so border pixels see a window that
  is partly zeros -- :func:`tf.image.ssim` filters 'valid' and would give another value;
* ``C1 = 0.01**2``, ``C2 = 0.03**2`` (dynamic range 1), and the loss is the plain mean of the SSIM
  map over batch, channels and pixels;
* the network output is not clamped before the loss.

:func:`ssim_same` reproduces that SSIM; :class:`NegativeSSIM` is PReNet's loss. PCNet, CRDNet and
DTPNet ship the same ``SSIM.py`` and use :func:`ssim_same` too. The other papers' losses are
documented on their classes, each with the official script it follows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tfderain._keras import keras, tf

__all__ = [
    "DIDMDN_VGG_LAYERS",
    "EDGE_KERNEL",
    "L1",
    "LOSSES",
    "MSE",
    "REMAEN_GRAY_WEIGHTS",
    "REMAEN_LAPLACIAN",
    "CRDNetLoss",
    "Charbonnier",
    "CharbonnierSSIM",
    "CumulativeDensityMSE",
    "DIDMDNDensityCrossEntropy",
    "DIDMDNLoss",
    "EdgeLoss",
    "MPRNetLoss",
    "NegativeSSIM",
    "PCNetLoss",
    "RainMaskBCE",
    "ReMAENLoss",
    "StageMSE",
    "density_levels",
    "edge_loss",
    "get",
    "laplacian_detail",
    "names",
    "rain_layer",
    "rain_mask",
    "rainy_image",
    "register",
    "remaen_edges",
    "ssim",
    "ssim_same",
    "vgg16_features",
]

_C1 = 0.01**2
_C2 = 0.03**2

#: Loss classes by config name (``loss: negative_ssim`` in a training config), filled by
#: :func:`register`.
LOSSES: dict[str, Callable[..., keras.losses.Loss]] = {}


def register(name: str) -> Callable[[type], type]:
    """Class decorator: the loss is known to training configs as ``name`` (``loss: name``).

    The papers' losses below register themselves; a model's own loss may be registered the same
    way next to its builder (``tfderain.models.<arch>``), which every training run imports.
    """

    def decorate(cls: type) -> type:
        if name in LOSSES:
            raise ValueError(f"loss {name!r} is registered twice")
        LOSSES[name] = cls
        return cls

    return decorate


def _as_images(x: tf.Tensor) -> tf.Tensor:
    """``x`` as float32 NHWC; a rank-5 ``(N, T, H, W, C)`` stack becomes ``N * T`` images."""
    x = tf.cast(x, tf.float32)
    if x.shape.rank == 5:
        shape = tf.shape(x)
        x = tf.reshape(x, tf.concat([[-1], shape[2:]], axis=0))
    elif x.shape.rank != 4:
        raise ValueError(f"expected NHWC images (rank 4) or stacked stages (rank 5), got {x.shape}")
    return x


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """The normalised 1-D Gaussian of ``SSIM.py``: ``exp(-(k - size // 2)**2 / (2 sigma**2))``."""
    k = np.arange(size, dtype=np.float64) - size // 2
    g = np.exp(-(k**2) / (2.0 * sigma**2))
    return g / g.sum()


def ssim(a: tf.Tensor, b: tf.Tensor, max_val: float = 1.0) -> tf.Tensor:
    """Per-image SSIM by :func:`tf.image.ssim` (11x11 Gaussian, sigma 1.5, 'valid' filtering).

    Images must be at least 11x11. Returns shape ``(N,)`` (``N * T`` for stacked stages).
    """
    return tf.image.ssim(_as_images(a), _as_images(b), max_val=max_val)


def ssim_same(a: tf.Tensor, b: tf.Tensor, window: int = 11, sigma: float = 1.5) -> tf.Tensor:
    """Per-image SSIM exactly as PReNet's ``SSIM.py``: zero 'same' padding, per-channel window.

    For each image the SSIM map (same size as the image, one value per channel) is averaged over
    pixels and channels; images of any size work, including ones smaller than the window.
    Returns shape ``(N,)`` (``N * T`` for stacked stages), float32.
    """
    a = _as_images(a)
    b = _as_images(b)
    channels = a.shape[-1]
    if channels is None:
        raise ValueError("ssim_same needs a static channel count")
    g = tf.constant(gaussian_window(window, sigma), tf.float32)
    # The five local moments for all channels in one depthwise pass, separably: the 2-D window is
    # the outer product of ``g`` with itself, and zero padding commutes with separable filtering.
    stacked = tf.concat([a, b, a * a, b * b, a * b], axis=-1)
    n = 5 * channels
    rows = tf.tile(tf.reshape(g, (window, 1, 1, 1)), (1, 1, n, 1))
    cols = tf.tile(tf.reshape(g, (1, window, 1, 1)), (1, 1, n, 1))
    moments = tf.nn.depthwise_conv2d(stacked, rows, strides=(1, 1, 1, 1), padding="SAME")
    moments = tf.nn.depthwise_conv2d(moments, cols, strides=(1, 1, 1, 1), padding="SAME")
    mu1, mu2, e11, e22, e12 = tf.split(moments, 5, axis=-1)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = e11 - mu1_sq
    sigma2_sq = e22 - mu2_sq
    sigma12 = e12 - mu12
    ssim_map = ((2.0 * mu12 + _C1) * (2.0 * sigma12 + _C2)) / (
        (mu1_sq + mu2_sq + _C1) * (sigma1_sq + sigma2_sq + _C2)
    )
    return tf.reduce_mean(ssim_map, axis=(1, 2, 3))


@register("negative_ssim")
@keras.utils.register_keras_serializable(package="tfderain")
class NegativeSSIM(keras.losses.Loss):
    """PReNet's loss: ``-SSIM(clean, derained)`` with the SSIM of ``SSIM.py`` (:func:`ssim_same`).

    The official scripts apply it to the final stage's output only; compile it on the
    ``"derained"`` output. Given stacked ``"stages"`` it averages over all stages with equal
    weights, for experiments that supervise every stage (the official repository ships an ablation
    checkpoint ``PReNet6_RecSSIM`` but not the code that weighted its stages).
    """

    def __init__(
        self, window: int = 11, sigma: float = 1.5, name: str = "negative_ssim", **kwargs: Any
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.window = window
        self.sigma = sigma

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        return -ssim_same(y_true, y_pred, self.window, self.sigma)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "window": self.window, "sigma": self.sigma}


def _pixel_mean(x: tf.Tensor) -> tf.Tensor:
    """Per-image mean over pixels and channels."""
    return tf.reduce_mean(x, axis=(1, 2, 3))


@register("charbonnier")
@keras.utils.register_keras_serializable(package="tfderain")
class Charbonnier(keras.losses.Loss):
    """Charbonnier loss ``mean(sqrt((y_pred - y_true)**2 + eps**2))``, a smooth L1."""

    def __init__(self, eps: float = 1e-3, name: str = "charbonnier", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.eps = eps

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        diff = _as_images(y_pred) - _as_images(y_true)
        return _pixel_mean(tf.sqrt(diff * diff + self.eps**2))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "eps": self.eps}


@register("charbonnier_ssim")
@keras.utils.register_keras_serializable(package="tfderain")
class CharbonnierSSIM(keras.losses.Loss):
    """``(1 - w) Charbonnier + w (1 - SSIM)``: a pixel loss that holds brightness, plus structure.

    The convex mix of a pixel-wise L1-type loss and ``1 - SSIM`` studied by H. Zhao, O. Gallo,
    I. Frosio, J. Kautz, "Loss Functions for Image Restoration with Neural Networks", IEEE TCI
    2017 (their best mix weighs the structural term 0.84, the default of ``ssim_weight``). Here
    the pixel term is :class:`Charbonnier` (a smooth L1) and the structural term single-scale
    :func:`ssim_same`. ``-SSIM`` alone (PReNet's loss) hardly sees the mean intensity: its
    luminance term ``(2 mu1 mu2 + C1) / (mu1**2 + mu2**2 + C1)`` is still 0.9945 for an image
    darkened uniformly by 10 %, while the Charbonnier term grows with every pixel's error.
    ``ssim_weight`` 0 is :class:`Charbonnier`, 1 is ``1 - SSIM``.
    """

    def __init__(
        self,
        ssim_weight: float = 0.84,
        eps: float = 1e-3,
        name: str = "charbonnier_ssim",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        if not 0.0 <= ssim_weight <= 1.0:
            raise ValueError(f"ssim_weight must be in [0, 1], got {ssim_weight}")
        self.ssim_weight = ssim_weight
        self.eps = eps

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        pred, true = _as_images(y_pred), _as_images(y_true)
        diff = pred - true
        pixel = _pixel_mean(tf.sqrt(diff * diff + self.eps**2))
        return (1.0 - self.ssim_weight) * pixel + self.ssim_weight * (1.0 - ssim_same(pred, true))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "ssim_weight": self.ssim_weight, "eps": self.eps}


@register("mse")
@keras.utils.register_keras_serializable(package="tfderain")
class MSE(keras.losses.Loss):
    """Mean squared error over pixels and channels."""

    def __init__(self, name: str = "mse", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        return _pixel_mean(tf.square(_as_images(y_pred) - _as_images(y_true)))


@register("l1")
@keras.utils.register_keras_serializable(package="tfderain")
class L1(keras.losses.Loss):
    """Mean absolute error over pixels and channels."""

    def __init__(self, name: str = "l1", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        return _pixel_mean(tf.abs(_as_images(y_pred) - _as_images(y_true)))


# --------------------------------------------------------------------------------------------
# Building blocks shared by the papers' losses
# --------------------------------------------------------------------------------------------


def _stage_sum(per_image: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """Per-image values ``(N * T,)`` of a stacked ``(N, T, ...)`` batch summed to ``(N,)``."""
    if len(y.shape) == 5:
        return tf.reduce_sum(tf.reshape(per_image, tf.stack([-1, tf.shape(y)[1]])), axis=1)
    return per_image


def _charbonnier_map(a: tf.Tensor, b: tf.Tensor, eps: float) -> tf.Tensor:
    diff = a - b
    return tf.sqrt(diff * diff + eps * eps)


#: The 1-D binomial-like kernel of MPRNet's ``EdgeLoss`` (its outer product is the 5x5 blur).
EDGE_KERNEL = (0.05, 0.25, 0.4, 0.25, 0.05)


def _replicate_pad(x: tf.Tensor, pad: int) -> tf.Tensor:
    """``F.pad(x, (pad,) * 4, mode='replicate')`` for NHWC: border pixels repeated outwards."""
    height, width = tf.shape(x)[1], tf.shape(x)[2]
    rows = tf.clip_by_value(tf.range(-pad, height + pad), 0, height - 1)
    cols = tf.clip_by_value(tf.range(-pad, width + pad), 0, width - 1)
    return tf.gather(tf.gather(x, rows, axis=1), cols, axis=2)


def _edge_blur(x: tf.Tensor) -> tf.Tensor:
    """EdgeLoss ``conv_gauss``: replicate padding by 2, then the 5x5 kernel per channel."""
    channels = x.shape[-1]
    if channels is None:
        raise ValueError("the edge loss needs a static channel count")
    k = np.asarray(EDGE_KERNEL, np.float32)
    kernel = np.tile(np.outer(k, k)[:, :, None, None], (1, 1, channels, 1))
    return tf.nn.depthwise_conv2d(
        _replicate_pad(x, 2), tf.constant(kernel), strides=(1, 1, 1, 1), padding="VALID"
    )


def laplacian_detail(x: tf.Tensor) -> tf.Tensor:
    """The band-pass image of MPRNet's ``EdgeLoss.laplacian_kernel`` (also PCNet's).

    ``x - blur(up(down(blur(x))))``: blur with :data:`EDGE_KERNEL` (outer product, replicate
    padding), keep every second row and column, put them back in place with zeros in between and
    multiplied by 4, blur again. Works for any height and width (odd ones included).
    """
    x = _as_images(x)
    filtered = _edge_blur(x)
    height, width = tf.shape(x)[1], tf.shape(x)[2]
    even_rows = tf.cast(tf.equal(tf.range(height) % 2, 0), tf.float32)
    even_cols = tf.cast(tf.equal(tf.range(width) % 2, 0), tf.float32)
    keep = even_rows[None, :, None, None] * even_cols[None, None, :, None]
    return x - _edge_blur(4.0 * filtered * keep)


def edge_loss(a: tf.Tensor, b: tf.Tensor, eps: float = 1e-3) -> tf.Tensor:
    """Per-image Charbonnier of :func:`laplacian_detail` differences, shape ``(N,)``."""
    return _pixel_mean(_charbonnier_map(laplacian_detail(a), laplacian_detail(b), eps))


def rainy_image(rain_target: tf.Tensor) -> tf.Tensor:
    """The rainy image held by a ``"rain"`` target ``[rainy | clean]`` (its first 3 channels)."""
    rain_target = _check_rain_target(rain_target)
    return rain_target[..., :3]


def rain_layer(rain_target: tf.Tensor) -> tf.Tensor:
    """The rain layer ``rainy - clean`` of a ``"rain"`` target ``[rainy | clean]``."""
    rain_target = _check_rain_target(rain_target)
    return rain_target[..., :3] - rain_target[..., 3:]


def rain_mask(rain_target: tf.Tensor, threshold: float = 0.05) -> tf.Tensor:
    """Where rain is: ``max_c |rainy - clean| > threshold`` as float 0/1, shape ``(N, H, W, 1)``."""
    layer = tf.reduce_max(tf.abs(rain_layer(rain_target)), axis=-1, keepdims=True)
    return tf.cast(layer > threshold, tf.float32)


def _check_rain_target(y: tf.Tensor) -> tf.Tensor:
    y = _as_images(y)
    if y.shape[-1] != 6:
        raise ValueError(
            "a loss on the 'rain' output expects the 'rain' target [rainy | clean] with 6 "
            f"channels (tfderain.data.pipeline.as_training_pairs), got shape {y.shape}"
        )
    return y


def density_levels(density: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """``(level, known)`` of densities: level 0 light (< 1/3), 1 medium (< 2/3), 2 heavy.

    ``density`` has shape ``(N,)`` or ``(N, 1)``; ``known`` is 1.0 where ``density >= 0`` (the
    pipeline marks unknown densities with ``-1``), else 0.0. Both have shape ``(N,)``.
    """
    d = tf.reshape(tf.cast(density, tf.float32), (-1,))
    level = tf.cast(d >= 1.0 / 3.0, tf.int32) + tf.cast(d >= 2.0 / 3.0, tf.int32)
    return level, tf.cast(d >= 0.0, tf.float32)


# --------------------------------------------------------------------------------------------
# The papers' losses
# --------------------------------------------------------------------------------------------


@register("edge")
@keras.utils.register_keras_serializable(package="tfderain")
class EdgeLoss(keras.losses.Loss):
    """MPRNet's ``EdgeLoss``: Charbonnier (eps 1e-3) between :func:`laplacian_detail` images.

    S. W. Zamir et al., "Multi-Stage Progressive Image Restoration", CVPR 2021; official
    ``Deraining/losses.py`` of https://github.com/swz30/MPRNet (PCNet's ``losses.py`` has the
    same class).
    """

    def __init__(self, eps: float = 1e-3, name: str = "edge", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.eps = eps

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        return edge_loss(y_pred, y_true, self.eps)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "eps": self.eps}


@register("mprnet")
@keras.utils.register_keras_serializable(package="tfderain")
class MPRNetLoss(keras.losses.Loss):
    """MPRNet's loss: ``sum_s [Charbonnier(s, clean) + 0.05 EdgeLoss(s, clean)]`` over stages.

    Official ``Deraining/train.py`` of https://github.com/swz30/MPRNet: ``loss_char`` and
    ``loss_edge`` are sums over the three stage outputs of ``CharbonnierLoss()`` (eps 1e-3) and
    ``EdgeLoss()``, and ``loss = loss_char + 0.05 * loss_edge`` (the script writes the sums as
    ``torch.sum`` of a Python list, which PyTorch does not accept; the intended plain sum is what
    is computed here). Compile it on ``"stages"``
    (stacked ``(N, 3, H, W, 3)``, target the clean image per stage): the stage values are
    *summed*, not averaged. On a single image output it is the one-stage loss.
    """

    def __init__(
        self, edge_weight: float = 0.05, eps: float = 1e-3, name: str = "mprnet", **kwargs: Any
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.edge_weight = edge_weight
        self.eps = eps

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        a, b = _as_images(y_pred), _as_images(y_true)
        per_image = _pixel_mean(_charbonnier_map(a, b, self.eps))
        per_image += self.edge_weight * edge_loss(a, b, self.eps)
        return _stage_sum(per_image, y_pred)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "edge_weight": self.edge_weight, "eps": self.eps}


@register("pcnet")
@keras.utils.register_keras_serializable(package="tfderain")
class PCNetLoss(keras.losses.Loss):
    """PCNet's mix: ``c Charbonnier + e EdgeLoss - s SSIM`` (weights 0.3, 0.2, 0.15).

    K. Jiang et al., "Rain-free and Residue Hand-in-Hand: A Progressive Coupled Network for
    Real-Time Image Deraining", IEEE TIP 2021; official ``model/train_PCNet.py`` of
    https://github.com/kuijiang0802/PCNet::

        loss = 0.3 * (char(derained, clean) + 0.2 * char(re_rain, rainy))
               + 0.2 * edge(derained, clean)
               - 0.15 * (SSIM(derained, clean) + 0.2 * SSIM(re_rain, rainy))

    with ``CharbonnierLoss`` (eps 1e-3) and ``EdgeLoss`` of its ``losses.py`` (MPRNet's) and the
    SSIM of its ``SSIM.py`` (:func:`ssim_same`). The second output (the reconstructed rainy image,
    tfderain's ``"rain"``) is supervised by the *rainy input*; its edge loss is computed in the
    script but not added. As two Keras losses this is::

        loss: {derained: pcnet, rain: {name: pcnet, target: rainy, edge_weight: 0.0}}
        loss_weights: {derained: 1.0, rain: 0.2}

    Args:
        charbonnier_weight, edge_weight, ssim_weight: the three weights.
        target: ``"image"`` compares with ``y_true`` as given (``derained`` vs the clean image);
            ``"rainy"`` takes the rainy image from a ``"rain"`` target (:func:`rainy_image`).
        eps: Charbonnier epsilon of both terms.
    """

    def __init__(
        self,
        charbonnier_weight: float = 0.3,
        edge_weight: float = 0.2,
        ssim_weight: float = 0.15,
        target: str = "image",
        eps: float = 1e-3,
        name: str = "pcnet",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        if target not in ("image", "rainy"):
            raise ValueError(f"target must be 'image' or 'rainy', got {target!r}")
        self.charbonnier_weight = charbonnier_weight
        self.edge_weight = edge_weight
        self.ssim_weight = ssim_weight
        self.target = target
        self.eps = eps

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        pred = _as_images(y_pred)
        true = rainy_image(y_true) if self.target == "rainy" else _as_images(y_true)
        value = self.charbonnier_weight * _pixel_mean(_charbonnier_map(pred, true, self.eps))
        if self.edge_weight:
            value += self.edge_weight * edge_loss(pred, true, self.eps)
        if self.ssim_weight:
            value -= self.ssim_weight * ssim_same(pred, true)
        return value

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "charbonnier_weight": self.charbonnier_weight,
            "edge_weight": self.edge_weight,
            "ssim_weight": self.ssim_weight,
            "target": self.target,
            "eps": self.eps,
        }


#: The 3x3 Laplacian of ReMAEN's edge loss (``settings.py``: ``kernel``).
REMAEN_LAPLACIAN = ((-1.0, -1.0, -1.0), (-1.0, 8.0, -1.0), (-1.0, -1.0, -1.0))
#: ``tf.image.rgb_to_grayscale`` weights as ReMAEN applies them: its images are ``cv2.imread``
#: BGR, so on RGB images the weights run in the opposite order (R 0.1140, G 0.5870, B 0.2989).
REMAEN_GRAY_WEIGHTS = (0.1140, 0.5870, 0.2989)


def remaen_edges(x: tf.Tensor, gray_weights=REMAEN_GRAY_WEIGHTS) -> tf.Tensor:
    """ReMAEN's edge map ``ReLU(conv_same(gray(x), Laplacian))`` (zero padding), ``(N,H,W,1)``."""
    x = _as_images(x)
    gray = tf.reduce_sum(x * tf.constant(gray_weights, tf.float32), axis=-1, keepdims=True)
    kernel = tf.constant(np.asarray(REMAEN_LAPLACIAN, np.float32)[:, :, None, None])
    return tf.nn.relu(tf.nn.conv2d(gray, kernel, strides=1, padding="SAME"))


@register("remaen")
@keras.utils.register_keras_serializable(package="tfderain")
class ReMAENLoss(keras.losses.Loss):
    """ReMAEN's loss: ``MSE + 0.1 MSE(edges(derained), edges(clean))``.

    Y. Yang, H. Lu, "Single Image Deraining using a Recurrent Multi-scale Aggregation and
    Enhancement Network", ICME 2019; official ``codes/ReMAEN.py`` (``build``) and
    ``codes/settings.py`` (``kernel``) of https://github.com/nnUyi/ReMAEN (TensorFlow 1). The edge
    map is ``ReLU(conv2d(rgb_to_grayscale(x), K, padding='SAME'))`` with the 3x3 Laplacian
    ``K = [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]`` (:data:`REMAEN_LAPLACIAN`), computed on the
    final output only. The official images are BGR, so ``rgb_to_grayscale`` weighted them
    ``0.2989 B + 0.5870 G + 0.1140 R``; :data:`REMAEN_GRAY_WEIGHTS` applies those weights to RGB
    images, so the loss has the official value (``gray_weights=(0.2989, 0.5870, 0.1140)`` gives
    the BT.601 luma instead).
    """

    def __init__(
        self,
        edge_weight: float = 0.1,
        gray_weights: tuple[float, float, float] = REMAEN_GRAY_WEIGHTS,
        name: str = "remaen",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.edge_weight = edge_weight
        self.gray_weights = tuple(float(w) for w in gray_weights)

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        pred, true = _as_images(y_pred), _as_images(y_true)
        mse = _pixel_mean(tf.square(pred - true))
        edges = remaen_edges(pred, self.gray_weights) - remaen_edges(true, self.gray_weights)
        return mse + self.edge_weight * _pixel_mean(tf.square(edges))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "edge_weight": self.edge_weight,
            "gray_weights": list(self.gray_weights),
        }


@register("crdnet")
@keras.utils.register_keras_serializable(package="tfderain")
class CRDNetLoss(keras.losses.Loss):
    """CRDNet's image loss: ``MSE + 0.005 (1 - SSIM)`` (SSIM of ``Utils/SSIM.py``).

    L. Peng et al., "Cumulative Rain Density Sensing Network for Single Image Derain", IEEE SPL
    2020; official ``derain.py`` of https://github.com/peylnog/CRDNet: ``train_loss =
    train_img_loss + train_classfy_loss + 0.005 * train_ssim_loss`` with ``nn.MSELoss`` on the
    image and ``1 - SSIM(out, label)``. The classifier term is
    :class:`CumulativeDensityMSE` on the ``"density"`` output (weight 1).
    """

    def __init__(self, ssim_weight: float = 0.005, name: str = "crdnet", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.ssim_weight = ssim_weight

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        pred, true = _as_images(y_pred), _as_images(y_true)
        mse = _pixel_mean(tf.square(pred - true))
        return mse + self.ssim_weight * (1.0 - ssim_same(pred, true))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "ssim_weight": self.ssim_weight}


@register("cumulative_density_mse")
@keras.utils.register_keras_serializable(package="tfderain")
class CumulativeDensityMSE(keras.losses.Loss):
    """CRDNet's classifier loss: MSE between the 3 scores and the cumulative density label.

    The official training data name the level in the file name and ``MyDataset/Datasets.py``
    encodes it cost-sensitively: light ``[0, 0, 1]``, medium ``[0, 1, 1]``, heavy ``[1, 1, 1]``
    (``tfderain.models.crdnet.DENSITY_LABELS``); ``derain.py`` compares it with ``nn.MSELoss``.
    Here ``y_true`` is the pipeline's density in [0, 1] (``(N,)`` or ``(N, 1)``), turned into the
    level by :func:`density_levels` and into the label ``[k >= 2 - level for k in 0, 1, 2]``;
    elements of unknown density (``-1``) contribute 0.
    """

    def __init__(self, name: str = "cumulative_density_mse", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        level, known = density_levels(y_true)
        label = tf.cast(tf.range(3)[None, :] >= (2 - level)[:, None], tf.float32)
        scores = tf.reshape(tf.cast(y_pred, tf.float32), (-1, 3))
        return known * tf.reduce_mean(tf.square(scores - label), axis=-1)


@register("stage_mse")
@keras.utils.register_keras_serializable(package="tfderain")
class StageMSE(keras.losses.Loss):
    """MSE of one stage of a stacked ``(N, T, H, W, C)`` output against its target.

    DTPNet (J. Huang et al., Neurocomputing 2024; official ``main.py`` of
    https://github.com/JackAILab/DTPNet) trains with ``loss = -SSIM(target, out) + 0.5 *
    MSE(target, pred1)``, where ``pred1`` is tfderain's ``stages[:, 0]``: ``negative_ssim`` on
    ``derained`` plus ``{name: stage_mse, stage: 0}`` on ``stages`` with loss weight 0.5.
    """

    def __init__(self, stage: int = 0, name: str = "stage_mse", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.stage = int(stage)

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        if len(y_pred.shape) != 5:
            raise ValueError(
                f"stage_mse expects stacked stages (N, T, H, W, C), got {y_pred.shape}"
            )
        pred = tf.cast(y_pred[:, self.stage], tf.float32)
        true = tf.cast(y_true[:, self.stage], tf.float32)
        return _pixel_mean(tf.square(pred - true))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "stage": self.stage}


#: VGG-16 layers (Keras names) of DID-MDN's perceptual loss: ``relu1_2`` and ``relu2_2``.
DIDMDN_VGG_LAYERS = ("block1_conv2", "block2_conv2")


def vgg16_features(weights: str | None) -> keras.Model:
    """VGG-16 up to ``relu2_2``, returning ``[relu1_2, relu2_2]`` (frozen, float32).

    ``weights`` is what ``keras.applications.VGG16`` accepts: ``"imagenet"`` (downloaded by
    Keras) or the path of a weights file of the convolutional part; ``None`` initialises randomly.
    """
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")  # a loss computes in float32
    try:
        vgg = keras.applications.VGG16(
            include_top=False, weights=weights, input_shape=(None, None, 3)
        )
    finally:
        keras.mixed_precision.set_global_policy(policy)
    outputs = [vgg.get_layer(name).output for name in DIDMDN_VGG_LAYERS]
    features = keras.Model(vgg.input, outputs, name="didmdn_vgg16_features")
    features.trainable = False
    return features


@register("didmdn")
@keras.utils.register_keras_serializable(package="tfderain")
class DIDMDNLoss(keras.losses.Loss):
    """DID-MDN's deraining loss: L1 on [-1, 1] images, optionally plus VGG-16 feature L1s.

    H. Zhang, V. M. Patel, "Density-aware Single Image De-raining using a Multi-stream Dense
    Network", CVPR 2018; official ``derain_train_2018.py`` of
    https://github.com/hezhangsprinter/DID-MDN. The script works on images normalised to
    [-1, 1] and minimises::

        L1(x_hat, target) + 1.8 * L1(vgg(x_hat)[1], vgg(target)[1])
                          + 1.8 * L1(vgg(x_hat)[0], vgg(target)[0])

    where ``vgg`` is VGG-16 (fast-neural-style weights) returning ``[relu1_2, relu2_2, …]`` and is
    fed the [-1, 1] images as they are. (The paper writes Euclidean losses on the residual and the
    image plus a feature loss; the released script has no residual term and uses L1.) Here the
    model outputs are in [0, 1], so both images are mapped by ``2 x - 1`` first: the pixel term is
    twice the L1 of [0, 1] images, exactly the official value.

    **Substitution.** VGG-16 weights cannot be downloaded in every environment, so the perceptual
    term is off by default (``vgg_weights=None``): the loss is then the official pixel term only.
    Pass ``vgg_weights="imagenet"`` (Keras' ImageNet VGG-16, converted from the same Caffe model
    as the official weights) or a weights file to add the two feature terms.

    Args:
        pixel_weight: weight of the pixel L1 (official ``lambdaIMG``, 1).
        perceptual_weight: weight of each feature L1 (official 1.8).
        vgg_weights: ``None`` (no perceptual term), ``"imagenet"`` or a weights file path.
    """

    def __init__(
        self,
        pixel_weight: float = 1.0,
        perceptual_weight: float = 1.8,
        vgg_weights: str | None = None,
        name: str = "didmdn",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.pixel_weight = pixel_weight
        self.perceptual_weight = perceptual_weight
        self.vgg_weights = vgg_weights
        self._features = None if vgg_weights is None else vgg16_features(vgg_weights)

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        pred = 2.0 * _as_images(y_pred) - 1.0
        true = 2.0 * _as_images(y_true) - 1.0
        value = self.pixel_weight * _pixel_mean(tf.abs(pred - true))
        if self._features is not None:
            for f_pred, f_true in zip(self._features(pred), self._features(true), strict=True):
                value += self.perceptual_weight * _pixel_mean(tf.abs(f_pred - f_true))
        return value

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "pixel_weight": self.pixel_weight,
            "perceptual_weight": self.perceptual_weight,
            "vgg_weights": self.vgg_weights,
        }


@register("didmdn_density")
@keras.utils.register_keras_serializable(package="tfderain")
class DIDMDNDensityCrossEntropy(keras.losses.Loss):
    """DID-MDN's classifier loss: softmax cross-entropy of the 4 logits, classes 0 heavy,
    1 medium, 2 light (``nn.CrossEntropyLoss`` of the official ``train_rain_class.py``).

    ``y_true`` is the pipeline's density; :func:`density_levels` gives the level and the class
    is ``2 - level``. Elements of unknown density contribute 0.
    """

    def __init__(self, name: str = "didmdn_density", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        level, known = density_levels(y_true)
        logits = tf.cast(y_pred, tf.float32)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=2 - level, logits=logits)
        return known * ce


@register("rain_mask_bce")
@keras.utils.register_keras_serializable(package="tfderain")
class RainMaskBCE(keras.losses.Loss):
    """Binary cross-entropy of a predicted rain mask against :func:`rain_mask` of the target.

    SPAIR's localization network (see :mod:`tfderain.models.spair`, item 11 of its docstring):
    its ``"rain"`` output is a per-pixel probability that rain degrades the pixel, supervised by
    the thresholded difference ``max_c |rainy - clean| > threshold``. The paper's own loss could
    not be read; the threshold (0.05, about 13 grey levels) is this library's choice.
    Probabilities are clipped to ``[1e-7, 1 - 1e-7]`` as Keras' binary cross-entropy does.
    """

    def __init__(self, threshold: float = 0.05, name: str = "rain_mask_bce", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.threshold = threshold

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        mask = rain_mask(y_true, self.threshold)
        p = tf.clip_by_value(_as_images(y_pred), 1e-7, 1.0 - 1e-7)
        bce = -(mask * tf.math.log(p) + (1.0 - mask) * tf.math.log(1.0 - p))
        return _pixel_mean(bce)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "threshold": self.threshold}


def names() -> list[str]:
    """Sorted names of all losses."""
    return sorted(LOSSES)


def get(name: str, **kwargs: Any) -> keras.losses.Loss:
    """A new instance of the loss registered as ``name``; ``kwargs`` go to its constructor."""
    try:
        cls = LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; known losses: {', '.join(names())}") from None
    return cls(**kwargs)
