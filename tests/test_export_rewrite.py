"""Sub-pixel stand-ins of transposed convolutions in dynamic-size TFLite files.

The reference is Keras' own ``Conv2DTranspose`` (TensorFlow's ``conv2d_transpose`` kernel):
the rewritten model must compute the same outputs, for every padding, kernel and stride the
zoo uses (PCNet 3×3 / 2, SPAIR 2×2 / 2, DID-MDN 1×1 / 1, CRDNet 3×3 / 1) and the ones around
them.
"""

from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from tfderain._keras import keras
from tfderain.export import export_tflite
from tfderain.export.flatbuffer import float_operators, operators
from tfderain.export.rewrite import subpixel_kernel, with_subpixel_convolutions
from tfderain.export.runtime import TFLiteModel, keras_reference
from tfderain.models import build

layers = keras.layers
PCNET = {"n_feat": 8, "num_crb": 1, "num_rcab": 1}


def _with_normal_weights(model: keras.Model, seed: int) -> keras.Model:
    """``model`` with every weight drawn from a unit normal."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def _transposed(kernel: int, stride: int, padding: str, bias: bool) -> keras.Model:
    """One Conv2DTranspose called twice (a shared layer), random weights."""
    rainy = keras.Input((None, None, 3))
    up = layers.Conv2DTranspose(5, kernel, strides=stride, padding=padding, use_bias=bias)
    first = up(rainy)
    second = up(layers.Conv2D(3, 1)(rainy))
    model = keras.Model(rainy, [first, layers.ReLU()(second)])
    return _with_normal_weights(model, seed=kernel * 10 + stride)


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("kernel", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_subpixel_convolution_equals_the_transposed_one(padding, kernel, stride):
    model = _transposed(kernel, stride, padding, bias=kernel % 2 == 1)
    rewritten = with_subpixel_convolutions(model)
    kinds = {type(layer).__name__ for layer in rewritten.layers}
    assert "Conv2DTranspose" not in kinds
    assert ("DepthToSpace" in kinds) == (stride > 1)
    x = np.random.default_rng(0).normal(size=(2, 7, 6, 3)).astype(np.float32)
    for want, got in zip(model(x), rewritten(x), strict=True):
        assert got.shape == want.shape
        # Sums of up to 25·3 products of unit normals: float32 rounding is ~1e-6 of ~10.
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-4)


def _cropped(kernel: int, stride: int, padding: str, cropping, also_read: bool) -> keras.Model:
    """Conv2DTranspose → Cropping2D → ReLU; ``also_read``: the transposed output is an output."""
    rainy = keras.Input((None, None, 3))
    up = layers.Conv2DTranspose(4, kernel, strides=stride, padding=padding)(rainy)
    cropped = layers.ReLU()(layers.Cropping2D(cropping)(up))
    model = keras.Model(rainy, [cropped, up] if also_read else cropped)
    return _with_normal_weights(model, seed=kernel * 10 + stride)


@pytest.mark.parametrize(
    "kernel, stride, padding, cropping",
    [
        (3, 2, "valid", ((1, 0), (1, 0))),  # PyTorch padding=1, output_padding=1 (PCNet)
        (3, 2, "valid", ((0, 1), (2, 3))),
        (4, 2, "same", ((1, 1), (0, 2))),
        (5, 3, "valid", ((4, 0), (0, 5))),
        (2, 2, "valid", ((1, 1), (3, 0))),
        (1, 2, "valid", ((0, 1), (1, 0))),
    ],
)
@pytest.mark.parametrize("also_read", [False, True])
def test_a_cropping_after_a_transposed_convolution_is_folded_into_it(
    kernel, stride, padding, cropping, also_read
):
    model = _cropped(kernel, stride, padding, cropping, also_read)
    rewritten = with_subpixel_convolutions(model)
    folded = not any(
        type(layer) is layers.Cropping2D and layer.cropping == cropping
        for layer in rewritten.layers
    )
    # Folded only where the cropping alone reads the transposed output.
    assert folded == (not also_read)
    x = np.random.default_rng(1).normal(size=(2, 7, 6, 3)).astype(np.float32)
    want_all, got_all = model(x), rewritten(x)
    if not also_read:
        want_all, got_all = [want_all], [got_all]
    for want, got in zip(want_all, got_all, strict=True):
        assert got.shape == want.shape
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-4)


def test_pytorch_output_padding_needs_no_padding_or_cropping_operator():
    # ConvTranspose2d(3, stride=2, padding=1, output_padding=1): output row 2m is x[m]·w[1],
    # row 2m + 1 is x[m]·w[2] + x[m + 1]·w[0], so a 2×2 convolution on the input padded by one
    # row after (``same``) computes all four phases exactly: no zero padding, no crop.
    model = _cropped(3, 2, "valid", ((1, 0), (1, 0)), also_read=False)
    kinds = [type(layer).__name__ for layer in with_subpixel_convolutions(model).layers]
    assert kinds == ["InputLayer", "Conv2D", "DepthToSpace", "ReLU"]
    conv = with_subpixel_convolutions(model).layers[1]
    assert conv.kernel_size == (2, 2) and conv.padding == "same"


def test_subpixel_kernel_of_a_single_tap_puts_it_in_its_phase():
    # A 3×3 stride-2 kernel with one non-zero tap at (y, x) = (0, 2): output row 2m + 0 and
    # column 2n + 0 get x[m − 1 + j, n − 1 + i]·w with tap row 0 = 0 + 2·(T − 1 − j) → j = 1,
    # column 2 = 0 + 2·(1 − i) → i = 0; phase (0, 0) is output channel block 0.
    kernel = np.zeros((3, 3, 2, 1), np.float32)  # (kh, kw, out, in)
    kernel[0, 2, 1, 0] = 7.0
    sub = subpixel_kernel(kernel, 2)
    assert sub.shape == (2, 2, 1, 8)  # (T, T, in, s²·out)
    assert np.count_nonzero(sub) == 1 and sub[1, 0, 0, 1] == 7.0


def test_models_without_transposed_convolutions_are_returned_as_they_are():
    model = build("prenet", stages=2, channels=4)
    assert with_subpixel_convolutions(model) is model


def _delegate_partitions(path) -> int:
    interpreter = Interpreter(model_path=str(path))
    interpreter.resize_tensor_input(0, [1, 40, 56, 3])
    interpreter.allocate_tensors()
    return sum(d["op_name"] == "DELEGATE" for d in interpreter._get_ops_details())


@pytest.mark.slow
@pytest.mark.parametrize("quant", ["none", "int8", "qat"])
def test_dynamic_pcnet_files_run_whole_in_xnnpack(tmp_path, quant):
    # A transposed convolution of a dynamic-size graph gets its output shape at run time
    # (SHAPE → PACK → TRANSPOSE_CONV), which XNNPACK does not take: with them, the float and
    # int8 files of this tiny PCNet (2 transposed convolutions) ran in 3 delegate partitions
    # and 2 ops outside; the sub-pixel stand-ins leave one partition, the whole graph.
    keras.utils.set_random_seed(21)
    model = build("pcnet", **PCNET)
    path = export_tflite(
        model, tmp_path / f"pcnet_{quant}.tflite", quant=quant, tile=None, samples=4, qat_steps=1
    )
    assert "TRANSPOSE_CONV" not in operators(path)
    assert "DEPTH_TO_SPACE" in operators(path)
    # PyTorch's output cropping is folded into the sub-pixel convolutions (no STRIDED_SLICE).
    assert "STRIDED_SLICE" not in operators(path)
    assert _delegate_partitions(path) == 1
    x = np.random.default_rng(2).random((40, 56, 3)).astype(np.float32)
    got = TFLiteModel(path).run(x)["derained"]
    want = keras_reference(model)(x)["derained"]
    if quant == "none":
        np.testing.assert_allclose(got, want, atol=1e-4)
    else:
        assert float_operators(path) == []
        # 8-bit rounding of a random-weight network: the int8 PCNet tests bound it by 13 dB
        # PSNR; a sub-pixel convolution computes the same sums, so the same bound holds.
        mse = float(np.mean((got - want) ** 2))
        assert 10 * np.log10(1.0 / mse) > 13
