"""Specification of tfderain.losses: hand-computed values on tiny inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tfderain import losses
from tfderain._keras import tf

C1, C2 = 0.01**2, 0.03**2


def _window_center_weight() -> float:
    """Weight of the centre tap of the normalised 11x11 Gaussian (sigma 1.5), by hand."""
    s = sum(math.exp(-((k - 5) ** 2) / (2 * 1.5**2)) for k in range(11))
    return (1.0 / s) ** 2


def _reference_ssim_same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Float64 loop reading of PReNet's SSIM.py: 2-D window, zero padding by 5, per channel."""
    k = np.arange(11) - 5
    g = np.exp(-(k**2) / (2 * 1.5**2))
    g /= g.sum()
    window = np.outer(g, g)
    n, h, w, c = a.shape

    def filt(x: np.ndarray) -> np.ndarray:
        padded = np.zeros((n, h + 10, w + 10, c))
        padded[:, 5 : 5 + h, 5 : 5 + w] = x
        out = np.zeros_like(x)
        for i in range(h):
            for j in range(w):
                patch = padded[:, i : i + 11, j : j + 11, :]
                out[:, i, j, :] = np.einsum("nuvc,uv->nc", patch, window)
        return out

    a = a.astype(np.float64)
    b = b.astype(np.float64)
    mu1, mu2 = filt(a), filt(b)
    s11 = filt(a * a) - mu1**2
    s22 = filt(b * b) - mu2**2
    s12 = filt(a * b) - mu1 * mu2
    ssim_map = ((2 * mu1 * mu2 + C1) * (2 * s12 + C2)) / ((mu1**2 + mu2**2 + C1) * (s11 + s22 + C2))
    return ssim_map.mean(axis=(1, 2, 3))


def test_ssim_same_of_a_single_pixel_has_the_closed_form_of_a_zero_padded_window():
    # On a 1x1 image only the window's centre tap g0 sees the pixel, the rest sees zero padding:
    # mu = g0 x, E[x^2] = g0 x^2, so sigma^2 = g0 (1 - g0) x^2 and sigma_12 = g0 (1 - g0) x y.
    x, y = 0.2, 0.6
    g0 = _window_center_weight()
    v = g0 * (1 - g0)
    expected = ((2 * g0**2 * x * y + C1) * (2 * v * x * y + C2)) / (
        (g0**2 * (x * x + y * y) + C1) * (v * (x * x + y * y) + C2)
    )
    a = tf.fill((1, 1, 1, 1), x)
    b = tf.fill((1, 1, 1, 1), y)
    np.testing.assert_allclose(losses.ssim_same(a, b).numpy(), [expected], rtol=1e-5)


def test_ssim_same_matches_a_float64_reference_of_prenets_ssim():
    rng = np.random.default_rng(0)
    for shape in [(2, 7, 9, 3), (1, 16, 13, 3)]:  # smaller and larger than the 11x11 window
        a = rng.random(shape, dtype=np.float32)
        b = np.clip(a + 0.1 * rng.standard_normal(shape, dtype=np.float32), 0, 1)
        got = losses.ssim_same(a, b).numpy()
        np.testing.assert_allclose(got, _reference_ssim_same(a, b), rtol=1e-5, atol=1e-6)


def test_ssim_same_differs_from_valid_filtering_at_the_borders():
    rng = np.random.default_rng(1)
    a = rng.random((1, 24, 24, 3), dtype=np.float32)
    b = np.clip(a + 0.2 * rng.standard_normal(a.shape, dtype=np.float32), 0, 1)
    same = float(losses.ssim_same(a, b)[0])
    valid = float(losses.ssim(a, b)[0])
    assert abs(same - valid) > 1e-3


def test_ssim_helper_of_constant_images_is_the_luminance_term():
    # Constant images have zero variance and covariance, so SSIM = (2xy + C1) / (x^2 + y^2 + C1).
    x, y = 0.25, 0.75
    a = tf.fill((1, 16, 16, 3), x)
    b = tf.fill((1, 16, 16, 3), y)
    expected = (2 * x * y + C1) / (x * x + y * y + C1)
    # float32 moments of a constant image leave variances of ~1e-7, visible against C2 = 9e-4.
    np.testing.assert_allclose(losses.ssim(a, b).numpy(), [expected], rtol=5e-4)


def test_negative_ssim_of_identical_images_is_minus_one():
    a = np.random.default_rng(2).random((2, 8, 8, 3), dtype=np.float32)
    assert float(losses.NegativeSSIM()(a, a)) == pytest.approx(-1.0, abs=1e-6)


def test_negative_ssim_is_minus_the_batch_mean():
    rng = np.random.default_rng(3)
    a = rng.random((3, 9, 9, 3), dtype=np.float32)
    b = rng.random((3, 9, 9, 3), dtype=np.float32)
    expected = -_reference_ssim_same(a, b).mean()
    assert float(losses.NegativeSSIM()(a, b)) == pytest.approx(expected, rel=1e-5)


def test_negative_ssim_on_stacked_stages_averages_all_stages():
    rng = np.random.default_rng(4)
    clean = rng.random((2, 3, 8, 8, 3), dtype=np.float32)  # (N, T, H, W, C)
    out = rng.random((2, 3, 8, 8, 3), dtype=np.float32)
    flat = -_reference_ssim_same(clean.reshape(6, 8, 8, 3), out.reshape(6, 8, 8, 3)).mean()
    assert float(losses.NegativeSSIM()(clean, out)) == pytest.approx(flat, rel=1e-5)


def test_charbonnier_of_known_differences():
    y_true = np.zeros((1, 1, 2, 1), np.float32)
    y_pred = np.array([0.0, 0.4], np.float32).reshape(1, 1, 2, 1)
    # sqrt(0^2 + 0.3^2) = 0.3 and sqrt(0.4^2 + 0.3^2) = 0.5
    assert float(losses.Charbonnier(eps=0.3)(y_true, y_pred)) == pytest.approx(0.4, rel=1e-6)
    # Default eps: identical images cost exactly eps.
    assert float(losses.Charbonnier()(y_true, y_true)) == pytest.approx(1e-3, rel=1e-5)


def test_charbonnier_ssim_of_identical_images_is_the_weighted_charbonnier_floor():
    # SSIM of an image with itself is 1, the Charbonnier term of a zero difference is eps.
    x = np.random.default_rng(3).random((2, 8, 8, 3)).astype(np.float32)
    loss = losses.get("charbonnier_ssim")
    assert loss.ssim_weight == 0.84  # Zhao et al.'s mix
    assert float(loss(x, x)) == pytest.approx(0.16 * 1e-3, rel=1e-4)


def test_charbonnier_ssim_of_a_single_pixel_has_a_closed_form():
    # Charbonnier: sqrt((0.6 - 0.2)^2 + 0.3^2) = 0.5. SSIM: the zero-padded window of a 1x1 image
    # (see the closed form of test_ssim_same_of_a_single_pixel...).
    x, y, w = 0.2, 0.6, 0.25
    g0 = _window_center_weight()
    v = g0 * (1 - g0)
    ssim = ((2 * g0**2 * x * y + C1) * (2 * v * x * y + C2)) / (
        (g0**2 * (x * x + y * y) + C1) * (v * (x * x + y * y) + C2)
    )
    expected = (1 - w) * 0.5 + w * (1 - ssim)
    loss = losses.CharbonnierSSIM(ssim_weight=w, eps=0.3)
    got = loss(tf.fill((1, 1, 1, 1), x), tf.fill((1, 1, 1, 1), y))
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_charbonnier_ssim_penalises_a_uniform_darkening_through_its_pixel_term():
    # An image darkened by 10 %: every pixel is off by 0.1 x, so the Charbonnier term is
    # ~0.1 mean(x) = 0.05 for a mean of 0.5. SSIM hardly moves: with m2 = 0.9 m1 and
    # s2 = 0.9 s1 (m^2 >> C1, s^2 >> C2) its luminance and contrast terms are both
    # 1.8 / 1.81 = 0.99448, so 1 - SSIM = 1 - 0.99448^2 = 0.0110, a fifth of the pixel term.
    rng = np.random.default_rng(4)
    clean = (0.25 + 0.5 * rng.random((1, 16, 16, 3))).astype(np.float32)
    dark = 0.9 * clean
    charbonnier = losses.CharbonnierSSIM(ssim_weight=0.0)(clean, dark)
    assert float(charbonnier) == pytest.approx(0.1 * clean.mean(), rel=0.01)
    structural = losses.CharbonnierSSIM(ssim_weight=1.0)(clean, dark)
    assert float(structural) == pytest.approx(1 - (1.8 / 1.81) ** 2, abs=0.002)


def test_charbonnier_ssim_weight_must_lie_in_the_unit_interval():
    with pytest.raises(ValueError, match="ssim_weight must be in"):
        losses.CharbonnierSSIM(ssim_weight=1.5)


def test_mse_and_l1_of_a_2x2_image():
    y_true = np.zeros((1, 2, 2, 1), np.float32)
    y_pred = np.array([[0.1, 0.2], [0.3, 0.4]], np.float32).reshape(1, 2, 2, 1)
    assert float(losses.MSE()(y_true, y_pred)) == pytest.approx(0.075, rel=1e-6)
    assert float(losses.L1()(y_true, y_pred)) == pytest.approx(0.25, rel=1e-6)


@pytest.mark.parametrize("name", ["negative_ssim", "charbonnier", "charbonnier_ssim", "mse", "l1"])
def test_losses_compute_in_float32_from_half_precision_inputs(name):
    rng = np.random.default_rng(5)
    a = tf.constant(rng.random((2, 12, 12, 3)), tf.float16)
    b = tf.constant(rng.random((2, 12, 12, 3)), tf.bfloat16)
    loss = losses.get(name)
    value = loss(a, b)
    assert value.dtype == tf.float32
    reference = loss(tf.cast(a, tf.float32), tf.cast(tf.cast(b, tf.float32), tf.float32))
    assert float(value) == pytest.approx(float(reference), rel=1e-6)


def test_negative_ssim_has_finite_gradients_on_flat_images():
    clean = tf.fill((1, 8, 8, 3), 0.5)
    out = tf.Variable(tf.fill((1, 8, 8, 3), 0.5))
    with tf.GradientTape() as tape:
        value = losses.NegativeSSIM()(clean, out)
    grad = tape.gradient(value, out)
    assert np.all(np.isfinite(grad.numpy()))


def test_registry_lists_and_builds_losses_by_name():
    assert losses.names() == sorted(losses.LOSSES)
    assert isinstance(losses.get("charbonnier", eps=1e-2), losses.Charbonnier)
    assert losses.get("charbonnier", eps=1e-2).eps == 1e-2
    with pytest.raises(ValueError, match="unknown loss 'ssim_l2'.*charbonnier"):
        losses.get("ssim_l2")


def test_losses_register_themselves_by_their_config_names():
    assert list(losses.LOSSES) == [
        "negative_ssim",
        "charbonnier",
        "charbonnier_ssim",
        "mse",
        "l1",
        "edge",
        "mprnet",
        "pcnet",
        "remaen",
        "crdnet",
        "cumulative_density_mse",
        "stage_mse",
        "didmdn",
        "didmdn_density",
        "rain_mask_bce",
    ]
    assert losses.LOSSES["pcnet"] is losses.PCNetLoss


def test_a_loss_registered_elsewhere_is_known_by_name(monkeypatch):
    from tfderain._keras import keras

    monkeypatch.setattr(losses, "LOSSES", dict(losses.LOSSES))

    @losses.register("half_l1")
    class HalfL1(keras.losses.Loss):
        def call(self, y_true, y_pred):
            return 0.5 * tf.reduce_mean(tf.abs(y_pred - y_true), axis=(1, 2, 3))

    assert "half_l1" in losses.names()
    assert isinstance(losses.get("half_l1"), HalfL1)
    with pytest.raises(ValueError, match="'half_l1' is registered twice"):
        losses.register("half_l1")(HalfL1)


def test_losses_round_trip_through_keras_serialization():
    from tfderain._keras import keras

    loss = losses.NegativeSSIM(window=7, sigma=1.0)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(restored, losses.NegativeSSIM)
    assert (restored.window, restored.sigma) == (7, 1.0)


# ---------------------------------------------------------------------------- the papers' losses
#
# References below are float64 numpy readings of the official PyTorch/TF1 code, written out loop
# by loop; none of them calls tfderain. The tiny inputs are 1x4x4x3 (or a few such) images.

EDGE_K = np.array([0.05, 0.25, 0.4, 0.25, 0.05])


def _np_charbonnier(a: np.ndarray, b: np.ndarray, eps: float = 1e-3) -> float:
    return float(np.mean(np.sqrt((a - b) ** 2 + eps**2)))


def _np_edge_blur(x: np.ndarray) -> np.ndarray:
    """EdgeLoss.conv_gauss: F.pad(mode='replicate') by 2, then the 5x5 kernel per channel."""
    window = np.outer(EDGE_K, EDGE_K)
    n, h, w, c = x.shape
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="edge")
    out = np.zeros_like(x)
    for i in range(h):
        for j in range(w):
            out[:, i, j] = np.einsum("nuvc,uv->nc", padded[:, i : i + 5, j : j + 5], window)
    return out


def _np_laplacian(x: np.ndarray) -> np.ndarray:
    """EdgeLoss.laplacian_kernel: x - blur(zero-inserted 4 * blur(x)[::2, ::2])."""
    filtered = _np_edge_blur(x)
    new_filter = np.zeros_like(filtered)
    new_filter[:, ::2, ::2] = 4 * filtered[:, ::2, ::2]
    return x - _np_edge_blur(new_filter)


def _np_edge_loss(a: np.ndarray, b: np.ndarray) -> float:
    return _np_charbonnier(_np_laplacian(a), _np_laplacian(b))


def _tiny_pair(seed: int, shape=(1, 4, 4, 3)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    clean = rng.random(shape).astype(np.float32)
    out = np.clip(clean + 0.2 * rng.standard_normal(shape), 0, 1).astype(np.float32)
    return clean, out


def test_laplacian_detail_of_a_constant_4x4_image_has_a_closed_form():
    # blur(c) = c (the kernel sums to 1). Zero insertion keeps rows/columns 0 and 2 (value 4c);
    # replicate padding repeats rows [0, 0, 0, 1, 2, 3, 3, 3], so output row i sees kept rows
    # with the weights R = [.05+.25+.4+.05, .05+.25+.25, .05+.4, .25] = [.75, .55, .45, .25],
    # and the detail is c - 4c R_i R_j.
    c = 0.5
    r = np.array([0.75, 0.55, 0.45, 0.25])
    expected = c * (1 - 4 * np.outer(r, r))
    got = losses.laplacian_detail(np.full((1, 4, 4, 3), c, np.float32)).numpy()
    for ch in range(3):
        np.testing.assert_allclose(got[0, :, :, ch], expected, atol=1e-6)
    # Edge loss of that image against black: mean of sqrt(detail^2 + eps^2).
    value = losses.EdgeLoss()(np.zeros((1, 4, 4, 3), np.float32), np.full((1, 4, 4, 3), c))
    assert float(value) == pytest.approx(np.mean(np.sqrt(expected**2 + 1e-6)), rel=1e-5)


def test_edge_loss_matches_mprnets_edgeloss_on_odd_sizes_too():
    for shape in [(1, 4, 4, 3), (2, 5, 7, 3)]:
        clean, out = _tiny_pair(10, shape)
        np.testing.assert_allclose(
            losses.laplacian_detail(out).numpy(), _np_laplacian(out.astype(np.float64)), atol=1e-6
        )
        assert float(losses.EdgeLoss()(clean, out)) == pytest.approx(
            _np_edge_loss(out.astype(np.float64), clean.astype(np.float64)), rel=1e-5
        )
    a = np.random.default_rng(0).random((1, 4, 4, 3), dtype=np.float32)
    assert float(losses.EdgeLoss()(a, a)) == pytest.approx(1e-3, rel=1e-4)  # only eps is left


def test_mprnet_loss_sums_charbonnier_and_edge_over_the_three_stages():
    rng = np.random.default_rng(11)
    clean = rng.random((1, 4, 4, 3))
    stages = np.stack(
        [np.clip(clean + s * 0.1 * rng.standard_normal(clean.shape), 0, 1) for s in (3, 2, 1)],
        axis=1,
    )  # (1, 3, 4, 4, 3)
    target = np.repeat(clean[:, None], 3, axis=1)
    expected = sum(
        _np_charbonnier(stages[:, s], clean) + 0.05 * _np_edge_loss(stages[:, s], clean)
        for s in range(3)
    )
    got = float(losses.MPRNetLoss()(target.astype(np.float32), stages.astype(np.float32)))
    assert got == pytest.approx(expected, rel=1e-5)
    # On a single image it is one stage's loss.
    one = float(losses.MPRNetLoss()(clean.astype(np.float32), stages[:, 2].astype(np.float32)))
    assert one == pytest.approx(
        _np_charbonnier(stages[:, 2], clean) + 0.05 * _np_edge_loss(stages[:, 2], clean), rel=1e-5
    )


def test_pcnet_loss_is_the_official_mix_on_both_outputs():
    clean, derained = _tiny_pair(12)
    rainy, re_rain = _tiny_pair(13)
    c64, d64, r64, rr64 = (x.astype(np.float64) for x in (clean, derained, rainy, re_rain))
    # train_PCNet.py: 0.3*(char0 + 0.2*char1) + 0.2*edge0 - 0.15*(ssim0 + 0.2*ssim1)
    official = (
        0.3 * (_np_charbonnier(d64, c64) + 0.2 * _np_charbonnier(rr64, r64))
        + 0.2 * _np_edge_loss(d64, c64)
        - 0.15 * (_reference_ssim_same(d64, c64)[0] + 0.2 * _reference_ssim_same(rr64, r64)[0])
    )
    on_derained = float(losses.get("pcnet")(clean, derained))
    rain_target = np.concatenate([rainy, clean], axis=-1)  # the pipeline's "rain" target
    on_rain = float(losses.get("pcnet", target="rainy", edge_weight=0.0)(rain_target, re_rain))
    assert on_derained + 0.2 * on_rain == pytest.approx(official, rel=1e-5)


def test_pcnet_rainy_target_rejects_an_image_target():
    clean, out = _tiny_pair(14)
    with pytest.raises(ValueError, match="6 channels"):
        losses.PCNetLoss(target="rainy")(clean, out)
    with pytest.raises(ValueError, match="target"):
        losses.PCNetLoss(target="rain_layer")


def test_remaen_loss_of_a_constant_image_has_a_closed_form():
    # Zero-padded 3x3 Laplacian of a constant grey g on 4x4: corners 8g - 3g = 5g, other border
    # pixels 8g - 5g = 3g, interior 0; so the edge MSE against black is (4*25 + 8*9) g^2 / 16.
    c = 0.5
    g = c * (0.1140 + 0.5870 + 0.2989)
    expected = c**2 + 0.1 * (4 * 25 + 8 * 9) / 16 * g**2
    value = losses.ReMAENLoss()(np.zeros((1, 4, 4, 3), np.float32), np.full((1, 4, 4, 3), c))
    assert float(value) == pytest.approx(expected, rel=1e-6)  # 0.518696...


def test_remaen_grey_weights_follow_the_official_bgr_images():
    # Official images come from cv2.imread (BGR) and rgb_to_grayscale weighs channel 0 by 0.2989:
    # on RGB input that weight belongs to blue; a pure red image has grey 0.1140.
    red = np.zeros((1, 4, 4, 3), np.float32)
    red[..., 0] = 1.0
    edges = losses.remaen_edges(red).numpy()[0, :, :, 0]
    assert edges[0, 0] == pytest.approx(5 * 0.1140, rel=1e-6)
    assert edges[0, 1] == pytest.approx(3 * 0.1140, rel=1e-6)
    assert edges[1, 1] == pytest.approx(0.0, abs=1e-6)


def test_remaen_loss_matches_a_loop_reading_of_the_official_tf1_loss():
    clean, out = _tiny_pair(15)
    w = np.array([0.1140, 0.5870, 0.2989])
    lap = np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], np.float64)

    def edges(x):
        grey = np.pad(x.astype(np.float64) @ w, ((0, 0), (1, 1), (1, 1)))
        out = np.zeros(x.shape[:3])
        for i in range(x.shape[1]):
            for j in range(x.shape[2]):
                out[:, i, j] = np.einsum("nuv,uv->n", grey[:, i : i + 3, j : j + 3], lap)
        return np.maximum(out, 0)

    expected = np.mean((out - clean) ** 2.0) + 0.1 * np.mean((edges(clean) - edges(out)) ** 2)
    assert float(losses.get("remaen")(clean, out)) == pytest.approx(expected, rel=1e-5)


def test_crdnet_image_loss_is_mse_plus_a_small_ssim_term():
    clean, out = _tiny_pair(16)
    c64, o64 = clean.astype(np.float64), out.astype(np.float64)
    expected = np.mean((o64 - c64) ** 2) + 0.005 * (1 - _reference_ssim_same(o64, c64)[0])
    assert float(losses.get("crdnet")(clean, out)) == pytest.approx(expected, rel=1e-5)


def test_cumulative_density_label_encoding_and_mse():
    # Densities -> levels light (0.1), medium (0.5), heavy (0.9), unknown (-1);
    # labels [0, 0, 1], [0, 1, 1], [1, 1, 1]; the unknown one contributes 0 to the batch mean.
    density = np.array([0.1, 0.5, 0.9, -1.0], np.float32)
    scores = np.array(
        [[0.0, 0.5, 1.0], [0.2, 0.8, 1.0], [1.0, 0.4, 1.0], [9.0, 9.0, 9.0]], np.float32
    )
    per_element = [0.25 / 3, (0.04 + 0.04) / 3, 0.36 / 3, 0.0]
    loss = losses.get("cumulative_density_mse")
    assert float(loss(density, scores)) == pytest.approx(np.mean(per_element), rel=1e-6)
    # Keras hands a rank-1 target of a rank-2 output over as (N, 1): same value.
    assert float(loss(density[:, None], scores)) == pytest.approx(np.mean(per_element), rel=1e-6)


def test_stage_mse_takes_the_chosen_stage_only():
    target = np.zeros((1, 3, 2, 2, 1), np.float32)
    stages = np.zeros((1, 3, 2, 2, 1), np.float32)
    stages[:, 0] = np.array([[0.1, 0.2], [0.3, 0.4]]).reshape(2, 2, 1)
    stages[:, 1:] = 5.0  # ignored
    assert float(losses.get("stage_mse")(target, stages)) == pytest.approx(0.075, rel=1e-6)
    assert float(losses.get("stage_mse", stage=2)(target, stages)) == pytest.approx(25.0)


def test_dtpnet_objective_is_negative_ssim_plus_half_the_pred1_mse():
    clean, out = _tiny_pair(17)
    _, pred1 = _tiny_pair(18)
    c64, o64, p64 = (x.astype(np.float64) for x in (clean, out, pred1))
    official = -_reference_ssim_same(c64, o64)[0] + 0.5 * np.mean((c64 - p64) ** 2)
    stages = np.stack([pred1, out], axis=1)
    targets = np.stack([clean, clean], axis=1)
    value = float(losses.get("negative_ssim")(clean, out)) + 0.5 * float(
        losses.get("stage_mse", stage=0)(targets, stages)
    )
    assert value == pytest.approx(official, rel=1e-5)


def test_didmdn_pixel_loss_is_l1_of_images_in_minus_one_to_one():
    y_true = np.zeros((1, 2, 2, 1), np.float32)
    y_pred = np.array([0.1, 0.2, 0.3, 0.4], np.float32).reshape(1, 2, 2, 1)
    # [-1, 1] images differ by twice as much: 2 * mean(0.1, 0.2, 0.3, 0.4) = 0.5.
    assert float(losses.get("didmdn")(y_true, y_pred)) == pytest.approx(0.5, rel=1e-6)


def _np_conv_same(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """3x3 'same' convolution (Keras HWIO kernel) with ReLU, by explicit sums."""
    n, h, w, _ = x.shape
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = np.zeros((n, h, w, kernel.shape[-1]))
    for i in range(h):
        for j in range(w):
            out[:, i, j] = np.einsum("nuvc,uvcd->nd", padded[:, i : i + 3, j : j + 3], kernel)
    return np.maximum(out + bias, 0)


def test_didmdn_perceptual_terms_use_vgg16_relu1_2_and_relu2_2(tmp_path):
    from tfderain._keras import keras

    vgg = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    path = tmp_path / "vgg16_random.h5"
    vgg.save_weights(path)
    w = {layer.name: layer.get_weights() for layer in vgg.layers if layer.get_weights()}

    def features(x):
        x = 2.0 * x.astype(np.float64) - 1.0  # the official [-1, 1] images, fed as they are
        relu1_2 = _np_conv_same(_np_conv_same(x, *w["block1_conv1"]), *w["block1_conv2"])
        n, h, wd, c = relu1_2.shape
        pooled = relu1_2.reshape(n, h // 2, 2, wd // 2, 2, c).max(axis=(2, 4))
        relu2_2 = _np_conv_same(_np_conv_same(pooled, *w["block2_conv1"]), *w["block2_conv2"])
        return relu1_2, relu2_2

    clean, out = _tiny_pair(19)
    (t1, t2), (p1, p2) = features(clean), features(out)
    expected = (
        2 * np.mean(np.abs(out.astype(np.float64) - clean))
        + 1.8 * np.mean(np.abs(p2 - t2))
        + 1.8 * np.mean(np.abs(p1 - t1))
    )
    # Built under a mixed policy, as the trainer does: the VGG-16 still computes in float32.
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        loss = losses.get("didmdn", vgg_weights=str(path))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert float(loss(clean, out)) == pytest.approx(expected, rel=1e-4)


def test_didmdn_density_cross_entropy_uses_classes_heavy_medium_light():
    density = np.array([0.9, 0.5, 0.1, -1.0], np.float32)  # heavy -> 0, medium -> 1, light -> 2
    logits = np.array(
        [[2.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 3.0], [5.0, 0.0, 0.0, 0.0]],
        np.float32,
    )
    ce = [
        -2.0 + math.log(math.exp(2) + 3),
        -1.0 + math.log(math.e + 3),
        -0.0 + math.log(3 + math.exp(3)),
        0.0,  # unknown density
    ]
    assert float(losses.get("didmdn_density")(density, logits)) == pytest.approx(
        np.mean(ce), rel=1e-6
    )


def test_rain_mask_bce_against_the_thresholded_rain_layer():
    clean = np.full((1, 2, 2, 3), 0.5, np.float32)
    rainy = clean.copy()
    rainy[0, 0, 0, 1] += 0.3  # rain on one pixel (one channel is enough)
    rainy[0, 1, 1, :] += 0.01  # below the 0.05 threshold: not rain
    mask_pred = np.array([0.8, 0.1, 0.3, 0.5], np.float32).reshape(1, 2, 2, 1)
    expected = -(math.log(0.8) + math.log(0.9) + math.log(0.7) + math.log(0.5)) / 4
    target = np.concatenate([rainy, clean], axis=-1)
    assert float(losses.get("rain_mask_bce")(target, mask_pred)) == pytest.approx(
        expected, rel=1e-6
    )
    np.testing.assert_allclose(losses.rain_mask(target).numpy().ravel(), [1.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(losses.rain_layer(target).numpy(), rainy - clean, atol=1e-7)


@pytest.mark.parametrize("name", ["edge", "mprnet", "pcnet", "remaen", "crdnet", "didmdn"])
def test_paper_image_losses_compute_in_float32_and_are_differentiable(name):
    rng = np.random.default_rng(20)
    clean = tf.constant(rng.random((2, 8, 8, 3)), tf.float16)
    out = tf.Variable(tf.constant(rng.random((2, 8, 8, 3)), tf.bfloat16))
    loss = losses.get(name)
    with tf.GradientTape() as tape:
        value = loss(clean, out)
    assert value.dtype == tf.float32
    grad = tape.gradient(value, out)
    assert grad is not None and np.all(np.isfinite(tf.cast(grad, tf.float32).numpy()))


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("mprnet", {"edge_weight": 0.1}),
        ("pcnet", {"target": "rainy", "edge_weight": 0.0}),
        ("remaen", {"gray_weights": (0.2989, 0.587, 0.114)}),
        ("stage_mse", {"stage": 1}),
        ("didmdn", {"perceptual_weight": 1.0}),
        ("rain_mask_bce", {"threshold": 0.1}),
        ("charbonnier_ssim", {"ssim_weight": 0.5, "eps": 1e-2}),
    ],
)
def test_paper_losses_round_trip_through_keras_serialization(name, kwargs):
    from tfderain._keras import keras

    loss = losses.get(name, **kwargs)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is type(loss)
    assert restored.get_config() == loss.get_config()


@pytest.mark.parametrize(
    ("name", "kwargs", "true_shape", "pred_shape"),
    [
        ("edge", {}, (None, None, None, 3), (None, None, None, 3)),
        ("mprnet", {}, (None, 3, None, None, 3), (None, 3, None, None, 3)),
        ("pcnet", {}, (None, None, None, 3), (None, None, None, 3)),
        ("pcnet", {"target": "rainy"}, (None, None, None, 6), (None, None, None, 3)),
        ("remaen", {}, (None, None, None, 3), (None, None, None, 3)),
        ("crdnet", {}, (None, None, None, 3), (None, None, None, 3)),
        ("cumulative_density_mse", {}, (None, 1), (None, 3)),
        ("stage_mse", {}, (None, 4, None, None, 3), (None, 4, None, None, 3)),
        ("didmdn", {}, (None, None, None, 3), (None, None, None, 3)),
        ("didmdn_density", {}, (None, 1), (None, 4)),
        ("rain_mask_bce", {}, (None, None, None, 6), (None, None, None, 1)),
    ],
)
def test_paper_losses_trace_with_unknown_batch_and_image_sizes(
    name, kwargs, true_shape, pred_shape
):
    # Inside model.fit the losses run in a graph where only channels (and stages) are static.
    loss = losses.get(name, **kwargs)
    step = tf.function(
        loss,
        input_signature=[
            tf.TensorSpec(true_shape, tf.float32),
            tf.TensorSpec(pred_shape, tf.float32),
        ],
    )
    rng = np.random.default_rng(21)
    # A batch of 2, every other unknown size 5.
    y_true = rng.random([2, *(d or 5 for d in true_shape[1:])]).astype(np.float32)
    y_pred = rng.random([2, *(d or 5 for d in pred_shape[1:])]).astype(np.float32)
    assert float(step(y_true, y_pred)) == pytest.approx(float(loss(y_true, y_pred)), rel=1e-5)
