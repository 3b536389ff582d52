"""Quantization-aware training: configs for the zoo's layers, calibration, QAT int8 export.

QAT bound: the QAT file of a tiny PReNet (2 stages, 4 channels, random weights with a fixed seed,
2 fine-tuning steps at a small learning rate, so the weights barely move) against the float Keras
model on a random 32×32 image. The error is the 8-bit rounding of ~30 activation tensors: with
random weights some of them (the LSTM cell state, the stage estimates, range about 1.7, step
0.0065) are wide, and the final output carries errors of several steps. Measured: 27.8 dB for
this seed (38-48 dB for others; the TFLite file matches the Keras QAT model to 44 dB, so the
loss is the quantization itself, not the conversion). Bound 24 dB: a 0.06 RMS error, ~3 dB
below the measurement for kernel and rounding differences between platforms. Trained models do
much better (see ``export/REPORT.md``).
"""

from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from conftest import dead_relu_model, invoke_tflite
from model_harness import package_classes
from tiny_models import TINY_MODELS, layer_classes

from tfderain import models
from tfderain._keras import keras, tf
from tfderain.export import export_tflite, qat
from tfderain.export.descriptor import descriptor_path, read_descriptor
from tfderain.export.flatbuffer import float_operators, is_flex_free, operators
from tfderain.export.outputs import export_outputs
from tfderain.export.runtime import TFLiteModel, keras_reference
from tfderain.metrics import psnr_float
from tfderain.models import blocks, build

TILE = 32
#: The models whose QAT export is tested: every model for phones (``phone=True`` in its
#: registration), at its reduced config.
QAT_MODELS = tuple(name for name in models.names() if models.spec(name).phone)
#: Where these tests use a config smaller than the model's own reduced one (``tiny=`` of its
#: registration): the signal-to-noise bounds below were measured at these.
QAT_TINY = {
    "remaen": {"stages": 1, "channels": 4},
    "codenet": {"channels": 4, "code_channels": 8, "reduction": 2, "iterations": 1},
    "mprnet": {"n_feat": 4, "scale_unetfeats": 2, "scale_orsnetfeats": 2, "num_cab": 1},
    "spair": {"width": 4, "blocks": 1, "loc_width": 4, "loc_blocks": 1},
}
TINY = {name: QAT_TINY.get(name, TINY_MODELS[name][0]) for name in QAT_MODELS}


@pytest.mark.slow
@pytest.mark.parametrize("name", QAT_MODELS)
def test_the_models_for_phones_are_small_at_their_paper_config(name):
    assert build(name).count_params() < models.PHONE_PARAMS


@pytest.mark.parametrize("name", sorted(TINY))
def test_every_layer_of_the_small_models_has_a_quantize_config(name):
    graph, _ = export_outputs(build(name, **TINY[name]))
    assert qat.unquantizable_layers(graph) == []


def _former_configs() -> dict[type, type]:
    """The layer → config table of :mod:`tfderain.export.qat` before the layers declared their
    own (``QUANTIZE``), written out: the declarations must give every layer the same config."""
    from tfderain.export import rewrite
    from tfderain.models import codenet, didmdn, mprnet, remaen, spair

    layers, output, noop = keras.layers, qat.OutputQuantizeConfig, qat.NoOpQuantizeConfig
    return {
        layers.Multiply: output,
        layers.Subtract: output,
        layers.Rescaling: output,
        layers.LayerNormalization: output,
        layers.PReLU: output,
        blocks.Stack: output,
        blocks.PixelShuffle: output,
        blocks.PixelUnshuffle: output,
        blocks.BiasFreeLayerNorm: output,
        codenet.CODENetThreshold: output,
        codenet.CODENetChannelMean: output,
        didmdn.DIDMDNLabelMap: output,
        spair.SPAIRSpatialFeatureModulator: output,
        spair.SPAIRCleanContext: output,
        blocks.ZerosLike: noop,
        rewrite.DepthToSpace: noop,
        remaen.ReMAENSpaceToBatch: noop,
        remaen.ReMAENBatchToSpace: noop,
        mprnet.MPRNetHalves: noop,
        qat.SequentialSum: output,
    }


@pytest.mark.slow
def test_declared_quantization_gives_every_layer_its_former_config():
    former = _former_configs()
    exporter = ("tfderain.export.rewrite", "tfderain.export.qat")
    classes = set(former) | package_classes(keras.layers.Layer, *exporter)
    assert len(classes) > len(former)  # layers without a config (e.g. GatedGELU) are checked too
    for cls in classes:
        assert qat.config_class(cls) is former.get(cls), cls.__name__
    for name in TINY_MODELS:  # every layer of every model, at its reduced config
        for cls in layer_classes(name):
            assert qat.config_class(cls) is former.get(cls), (name, cls.__name__)


def test_a_quantize_declaration_outside_the_known_ones_is_an_error():
    class Odd(keras.layers.Layer):
        QUANTIZE = "weights"

    with pytest.raises(qat.QuantizationError, match="Odd.QUANTIZE is 'weights'; known: 'output'"):
        qat.config_class(Odd)


def test_annotate_lists_every_layer_it_cannot_quantize():
    x = keras.Input((None, None, 4))
    y = blocks.GatedGELU(name="gate_a")(x)
    y = keras.layers.Conv2D(4, 1, name="ok_conv")(y)
    y = blocks.GatedGELU(name="gate_b")(y)
    model = keras.Model(x, y, name="odd")
    with pytest.raises(qat.QuantizationError) as info:
        qat.annotate(model)
    message = str(info.value)
    assert "2 layer(s)" in message
    assert "gate_a (GatedGELU)" in message and "gate_b (GatedGELU)" in message
    assert "ok_conv" not in message


def _pairs(size: int, seed: int) -> tf.data.Dataset:
    rng = np.random.default_rng(seed)
    rainy = rng.random((4, size, size, 3)).astype(np.float32)
    batch = {"rainy": rainy, "clean": np.clip(rainy - 0.1, 0, 1)}
    return tf.data.Dataset.from_tensors(batch).repeat()


@pytest.mark.slow
def test_calibration_sets_ranges_from_the_data_not_the_initial_6():
    keras.utils.set_random_seed(3)
    graph, _ = export_outputs(build("prn_r", stages=1, channels=4))
    qmodel = qat.quantize_model(graph)
    pairs = _pairs(16, 0)  # the same batch, again and again
    qat.finetune(keras.Model(qmodel.inputs, qmodel.outputs[0]), pairs, steps=0)
    ranges = {v.name: float(v.numpy()) for v in qmodel.variables if "output_m" in v.name}
    low, high = ranges["quant_stage1_out/output_min:0"], ranges["quant_stage1_out/output_max:0"]
    # Every calibration batch is the same, so the mean of the per-batch ranges is that batch's
    # range (extended to include 0), with nothing left of TFMOT's initial [-6, 6]. The float
    # output stands in for the fake-quantized one (they differ by a few 8-bit steps).
    out = graph(next(iter(pairs))["rainy"]).numpy()
    want_low, want_high = min(float(out.min()), 0.0), max(float(out.max()), 0.0)
    step = (want_high - want_low) / 255
    assert low == pytest.approx(want_low, abs=4 * step)
    assert high == pytest.approx(want_high, abs=4 * step)


@pytest.mark.slow
def test_calibration_ranges_are_the_mean_of_the_batch_ranges():
    keras.utils.set_random_seed(3)
    graph, _ = export_outputs(build("prn_r", stages=1, channels=4))
    qmodel = qat.quantize_model(graph)
    scales = (1.0, 0.2, 0.3)  # the input range (all values seen) is set by the first
    base = np.random.default_rng(4).random((2, 16, 16, 3)).astype(np.float32)
    qat.calibrate(qmodel, [base * a for a in scales])
    high = next(v for v in qmodel.variables if v.name == "quant_conv0/post_activation_max:0")
    # Each batch's range of the first convolution's output (its input, the model input, is
    # never clipped; the float output stands in for the fake-quantized one, a few 8-bit steps
    # apart); calibration keeps their mean, whatever the order (a constant EMA decay would
    # favour the last batch).
    conv0 = keras.Model(graph.inputs, graph.get_layer("conv0").output)
    highs = [max(float(conv0(base * a).numpy().max()), 0.0) for a in scales]
    step = max(highs) / 255
    want_high = float(np.mean(highs))
    assert abs(highs[-1] - want_high) > 20 * step  # the order would show
    assert float(high.numpy()) == pytest.approx(want_high, abs=4 * step)


@pytest.mark.slow
def test_pcnet_quantization_aware_model_stays_close_to_float():
    keras.utils.set_random_seed(5)
    graph, _ = export_outputs(build("pcnet", **TINY["pcnet"]))
    qmodel = qat.quantize_model(graph)
    qat.calibrate(qmodel, (b["rainy"] for b in _pairs(TILE, 1).take(4)))
    x = np.random.default_rng(2).random((1, TILE, TILE, 3)).astype(np.float32)
    want = graph(x).numpy()
    got = qmodel(x, training=False).numpy()
    # Signal-to-noise ratio against the output's own spread (a random PCNet's output is not an
    # image). Measured 29.3 dB for this seed (29.7, 30.4, 35.1 dB for seeds 7, 1, 2). With the
    # network-wide activation left as one layer, one range for all of its inputs, 18.3 dB (26.7
    # for seed 7). Bound 24 dB; a layer left unquantized or a missing range would give noise at
    # the [-6, 6] scale instead.
    snr = 10 * np.log10(want.var() / np.mean((got - want) ** 2))
    assert snr >= 24


@pytest.mark.slow
def test_qat_export_is_flex_free_int8_and_close_to_float(tmp_path):
    keras.utils.set_random_seed(11)
    model = build("prenet", **TINY["prenet"])
    # 4 patches per step (not PReNet's recipe of 1): the calibration sees 8 batches of 4 tiles,
    # as when the bound of the module docstring was measured
    path = export_tflite(
        model, tmp_path / "tiny_qat.tflite", quant="qat", tile=TILE, qat_steps=2, qat_batch_size=4
    )
    ops = operators(path)
    assert is_flex_free(ops), ops
    assert "QUANTIZE" in ops and "CONV_2D" in ops
    descriptor = read_descriptor(descriptor_path(path))
    assert descriptor["quantization"] == "qat"
    assert descriptor["inputs"][0]["dtype"] == "float32"  # float I/O unless uint8_io
    interpreter = TFLiteModel(path).interpreter
    interpreter.allocate_tensors()
    kernels = [d for d in interpreter.get_tensor_details() if d["dtype"] == np.int8]
    assert kernels, "no int8 tensors in a QAT int8 model"
    x = np.random.default_rng(4).random((TILE, TILE, 3)).astype(np.float32)
    got = TFLiteModel(path).run(x)["derained"]
    assert psnr_float(got, keras_reference(model)(x)["derained"]) >= 24


@pytest.mark.slow
def test_keep_float_layers_run_in_float32_between_int8_ones(tmp_path):
    # PReNet's image head (the last convolution, shared by the stages, and each stage's sum with
    # the input) left in float: exactly those operators compute in float32, the rest is int8.
    keras.utils.set_random_seed(13)
    model = build("prenet", **TINY["prenet"])
    keep = ["conv", "stage*_out"]
    annotated = qat.annotate(export_outputs(model)[0], keep_float=keep)
    configs = {
        layer.layer.name: type(layer.quantize_config).__name__
        for layer in annotated.layers
        if hasattr(layer, "quantize_config")
    }
    assert configs["conv"] == configs["stage1_out"] == "NoOpQuantizeConfig"
    assert configs["conv0"] != "NoOpQuantizeConfig"
    path = export_tflite(
        model, tmp_path / "kf.tflite", quant="qat", tile=TILE, qat_steps=1, qat_keep_float=keep
    )
    assert float_operators(path) == ["ADD", "CONV_2D"]
    x = np.random.default_rng(6).random((TILE, TILE, 3)).astype(np.float32)
    got = TFLiteModel(path).run(x)["derained"]
    assert psnr_float(got, keras_reference(model)(x)["derained"]) >= 24


def test_keep_float_pattern_matching_no_layer_is_an_error():
    graph, _ = export_outputs(build("prn_r", stages=1, channels=4))
    with pytest.raises(qat.QuantizationError, match="'head\\*' match no layer"):
        qat.annotate(graph, keep_float=["conv", "head*"])


@pytest.mark.slow
def test_qat_uint8_input_takes_raw_bytes(tmp_path):
    # Calibration images need not reach 0 and 1; the input range is set to [0, 1] anyway, so
    # raw bytes are the quantized input (scale 1/255, zero point 0).
    keras.utils.set_random_seed(12)
    model = build("prn_r", stages=1, channels=4)
    graph, _ = export_outputs(model)
    qmodel = qat.quantize_model(graph)
    qat.calibrate(qmodel, [np.full((1, TILE, TILE, 3), 0.5, np.float32)])
    ranges = {
        v.name.split(":")[0][-3:]: float(v.numpy())
        for layer in qmodel.layers
        if type(layer).__name__ == "QuantizeLayer"
        for v in layer.variables
        if v.shape.rank == 0 and v.dtype.is_floating
    }
    assert ranges == {"min": 0.0, "max": 1.0}
    path = export_tflite(
        model, tmp_path / "qat_u8.tflite", quant="qat", tile=TILE, qat_steps=1, uint8_io=True
    )
    rainy = read_descriptor(descriptor_path(path))["inputs"][0]
    assert rainy["dtype"] == "uint8" and rainy["quantization"]["zero_point"] == 0
    assert rainy["quantization"]["scale"] == pytest.approx(1 / 255, rel=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["teacher", "clean"])
def test_finetune_learns_the_teacher_output_or_the_clean_image(target):
    # The rainy input is uniform in [0, 1] and the untrained residual model's output stays close
    # to it (mean ~0.5). The pairs' clean image is 1 everywhere, the teacher outputs 0
    # everywhere: steps at a large learning rate pull the mean to whichever target is used.
    keras.utils.set_random_seed(7)
    graph, _ = export_outputs(build("prn_r", stages=1, channels=4))
    quantized = qat.quantize_model(graph)
    qmodel = keras.Model(quantized.inputs, quantized.outputs[0])
    x = keras.Input((None, None, 3))
    teacher = keras.Model(x, keras.layers.Lambda(tf.zeros_like)(x))
    rainy = np.random.default_rng(1).random((4, 16, 16, 3)).astype(np.float32)
    batch = {"rainy": rainy, "clean": np.ones_like(rainy)}
    pairs = tf.data.Dataset.from_tensors(batch).repeat()
    qat.finetune(
        qmodel,
        pairs,
        steps=30,
        learning_rate=3e-2,
        teacher=teacher if target == "teacher" else None,
    )
    after = float(qmodel(rainy, training=False).numpy().mean())
    assert abs(float(graph(rainy)[0].numpy().mean()) - 0.5) < 0.15
    if target == "teacher":
        assert after < 0.2
    else:
        assert after > 0.8


@pytest.mark.slow
@pytest.mark.parametrize("name", ["prenet", "pcnet"])
def test_qat_files_of_the_phone_models_compute_in_int8_only(tmp_path, name):
    keras.utils.set_random_seed(13)
    path = export_tflite(
        build(name, **TINY[name]), tmp_path / f"{name}.tflite", quant="qat", tile=TILE, qat_steps=0
    )
    assert float_operators(path) == []
    if name == "pcnet":
        # Its one-slope PReLU is exported as LEAKY_RELU: LiteRT's XNNPACK delegate has no int8
        # PRELU kernel, and each PRELU would cut the delegated graph in two.
        ops = operators(path)
        assert "PRELU" not in ops and "LEAKY_RELU" in ops
        interpreter = Interpreter(model_path=str(path))
        interpreter.allocate_tensors()
        details = interpreter._get_ops_details()
        assert sum(d["op_name"] == "DELEGATE" for d in details) == 1
    # The helper does see float kernels: a float32 export computes everything in float.
    none = export_tflite(build(name, **TINY[name]), tmp_path / "f.tflite", quant="none", tile=TILE)
    assert "CONV_2D" in float_operators(none)


def _snr_db(want: np.ndarray, got: np.ndarray) -> float:
    """Signal-to-noise ratio of ``got`` against ``want``, signal = ``want``'s own variance."""
    return float(10 * np.log10(want.var() / np.mean((got - want) ** 2)))


# Bounds of the QAT files of small random models against their float Keras models (no
# fine-tuning, calibration only). ReMAEN and CODE-Net add a small residual to the input, so the
# output is an image in about [0, 1] and every range is calibrated to it: measured 43.6-44.8 dB
# over 3 seeds (44.7 and 44.8 dB for this one). Bound 30 dB: one range left at TFMOT's initial
# [-6, 6] (8-bit step 0.047) on the output alone gives ~26 dB. SPAIR's random output spreads
# over about [-2, 3] and passes through float statistics between int8 convolutions: measured
# 20.9-24.2 dB (22.7 dB for this seed); bound 13 dB as for PCNet above (error power at most 5 %
# of the output's variance). mCODE-Net: output in about [0, 1] too, but its iterations compound
# the rounding: 44.3, 36.7 and 30.2 dB for seeds 1-3 (44.3 dB for this one); bound 27 dB, above
# the ~26 dB of an uncalibrated output range. MPRNet's random three-stage output spreads over
# about [-90, 50]: 17.7, 15.2, 19.9 and 19.8 dB for seeds 1-4 (17.7 dB for this one); bound 13 dB
# as for SPAIR.
QAT_SNR_BOUND = {"remaen": 30, "codenet": 30, "mcodenet": 27, "mprnet": 13, "spair": 13}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(QAT_SNR_BOUND))
def test_qat_export_of_the_models_with_custom_layers(tmp_path, name):
    # ReMAEN: sub-grid space_to_batch / batch_to_space, sums of three tensors; CODE-Net:
    # learned threshold and the density estimate; mCODE-Net: its iterations; MPRNet: channel
    # attention (a squeeze convolution of one channel, dead for this seed), supervised
    # attention, sums of three tensors; SPAIR: masked feature statistics and attention pooling.
    keras.utils.set_random_seed(1)
    model = build(name, **TINY[name])
    path = export_tflite(model, tmp_path / f"{name}.tflite", quant="qat", tile=TILE, qat_steps=0)
    assert is_flex_free(operators(path))
    if name != "spair":  # SPAIR's masked statistics stay float (see export/README.md)
        assert float_operators(path) == []
    interpreter = TFLiteModel(path).interpreter
    interpreter.allocate_tensors()
    assert any(d["dtype"] == np.int8 for d in interpreter.get_tensor_details())
    x = np.random.default_rng(4).random((TILE, TILE, 3)).astype(np.float32)
    got, want = TFLiteModel(path).run(x), keras_reference(model)(x)
    assert _snr_db(want["derained"], got["derained"]) >= QAT_SNR_BOUND[name]
    if name == "codenet":
        # The density (a mean of sigmoid weights, ~0.5 here) gets a range of its own: the int8
        # sigmoid's step is 1/256, the density's ~0.002, so a few steps at most. A density
        # range left uncalibrated at [-6, 6] (step 0.047) would be off by up to 0.023: 0.017 for
        # this seed when only the derained output was calibrated.
        assert abs(float(np.ravel(got["density"])[0]) - float(np.ravel(want["density"])[0])) <= 0.01


def _random_batch_norm_statistics(model: keras.Model, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            shapes = [w.shape for w in layer.get_weights()]  # gamma, beta, mean, variance
            values = [rng.uniform(0.5, 1.5, s) for s in shapes]
            values[1] = rng.normal(0, 0.2, shapes[1])
            values[2] = rng.normal(0, 0.2, shapes[2])
            layer.set_weights(values)


@pytest.mark.slow
def test_annotated_model_computes_the_float_model():
    # DID-MDN: its batch norms (with non-trivial statistics) and average poolings become
    # depthwise convolutions; before fake-quantization the function must not change.
    keras.utils.set_random_seed(17)
    graph, _ = export_outputs(build("didmdn_derain"))
    _random_batch_norm_statistics(graph, 0)
    annotated = qat.annotate(graph)
    kinds = {type(layer.layer).__name__ for layer in annotated.layers[1:]}
    assert "BatchNormalization" not in kinds and "AveragePooling2D" not in kinds
    x = np.random.default_rng(3).random((1, TILE, TILE, 3)).astype(np.float32)
    np.testing.assert_allclose(annotated(x).numpy(), graph(x).numpy(), atol=1e-5)


@pytest.mark.slow
def test_qat_converts_a_pooled_tensor_shared_by_two_concatenations():
    # DID-MDN's pattern: an average pooling whose output joins two concatenations with
    # different ranges, after a batch norm. TFLite's int8 AVERAGE_POOL_2D must keep its input's
    # scale, which such a tensor cannot have; the depthwise stand-in may rescale.
    layers = keras.layers
    keras.utils.set_random_seed(19)
    x = keras.Input((TILE, TILE, 3))
    pooled = layers.AveragePooling2D(2)(layers.Conv2DTranspose(4, 1, use_bias=False)(x))
    h = layers.Conv2D(4, 3, padding="same")(layers.ReLU()(layers.BatchNormalization()(pooled)))
    h = layers.Concatenate()([pooled, h])
    h = layers.Concatenate()([layers.Conv2D(4, 3, padding="same")(h), pooled])
    model = keras.Model(x, layers.Conv2D(3, 1)(h))
    _random_batch_norm_statistics(model, 1)
    qmodel = qat.quantize_model(model)
    qat.calibrate(qmodel, (b["rainy"] for b in _pairs(TILE, 2).take(4)))
    converter = tf.lite.TFLiteConverter.from_keras_model(qmodel)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    data = converter.convert()
    ops = operators(data)
    assert "AVERAGE_POOL_2D" not in ops and "DEPTHWISE_CONV_2D" in ops
    assert float_operators(data) == []
    image = np.random.default_rng(6).random((1, TILE, TILE, 3)).astype(np.float32)
    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    got = invoke_tflite(interpreter, image)
    # A random 5-layer network with 8-bit activations: bound as for PCNet above.
    assert _snr_db(model(image).numpy(), got) >= 13


@pytest.mark.slow
def test_a_dead_activation_gets_a_range_the_int8_kernels_accept():
    # A ReLU whose input is negative on every calibration image (here a bias of -100; in
    # practice a squeeze convolution of channel attention with few channels) is zero
    # throughout: its calibrated range is about [0, 1e-6], an 8-bit step of ~4e-9. The next
    # convolution's requantization scale (input step × weight step / output step) then exceeds
    # what XNNPACK's int8 kernels take (< 256), and LiteRT fails to prepare the file. The
    # output of the dead branch is exactly 0, which any range holding 0 represents.
    model = dead_relu_model(TILE)
    qmodel = qat.quantize_model(model)
    qat.calibrate(qmodel, (b["rainy"] for b in _pairs(TILE, 2).take(4)))
    converter = tf.lite.TFLiteConverter.from_keras_model(qmodel)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    interpreter = Interpreter(model_content=converter.convert())
    interpreter.allocate_tensors()
    image = np.random.default_rng(7).random((1, TILE, TILE, 3)).astype(np.float32)
    assert _snr_db(model(image).numpy(), invoke_tflite(interpreter, image)) >= 13


def test_sequential_sum_rounds_each_partial_sum_to_its_8_bit_range():
    # Before any calibration every range is TFMOT's initial [-6, 6]: 255 steps of 12/255. The
    # chain (a + b) + c rounds a + b to that grid and adds c exactly (the last sum is the
    # layer's output, quantized by its QuantizeConfig, not by the layer).
    step = 12 / 255
    rng = np.random.default_rng(8)
    a, b, c = (rng.uniform(-1, 1, (1, 4, 4, 2)).astype(np.float32) for _ in range(3))
    got = qat.SequentialSum()([a, b, c], training=False).numpy()
    partial = got - c
    assert np.abs(partial - (a + b)).max() <= step / 2 + 1e-6
    assert np.abs(partial - (a + b)).max() > 1e-3  # rounded, not the float sum
    grid = partial / step  # 0 is a grid point (the range is nudged so), so the grid is k·step
    np.testing.assert_allclose(grid, np.round(grid), atol=1e-3)
    with pytest.raises(ValueError, match="3 or more"):
        qat.SequentialSum()([a, b])


@pytest.mark.slow
def test_a_one_slope_prelu_is_annotated_as_the_leaky_relu_it_equals():
    keras.utils.set_random_seed(29)
    graph, _ = export_outputs(build("pcnet", **TINY["pcnet"]))
    prelus = [layer for layer in graph.layers if isinstance(layer, keras.layers.PReLU)]
    assert prelus
    for layer in prelus:
        layer.set_weights([np.full_like(layer.get_weights()[0], -0.3)])  # not the 0.25 default
    annotated = qat.annotate(graph)
    kinds = {type(layer.layer).__name__ for layer in annotated.layers[1:]}
    assert "PReLU" not in kinds and "LeakyReLU" in kinds
    x = np.random.default_rng(5).uniform(-1, 1, (1, TILE, TILE, 3)).astype(np.float32)
    want, got = graph(x), annotated(x)
    for w, g in zip(want, got, strict=True):
        np.testing.assert_allclose(g.numpy(), w.numpy(), atol=1e-5)


@pytest.mark.slow
def test_int8_export_runs_a_one_slope_prelu_as_leaky_relu(tmp_path):
    # Full-integer post-training quantization gets the same stand-in as QAT (previous test):
    # without it every int8 PRELU runs outside LiteRT's XNNPACK delegate.
    keras.utils.set_random_seed(31)
    model = build("pcnet", **TINY["pcnet"])
    for layer in model.layers:
        if isinstance(layer, keras.layers.PReLU):
            layer.set_weights([np.full_like(layer.get_weights()[0], -0.3)])
    path = export_tflite(model, tmp_path / "pcnet.tflite", quant="int8", tile=TILE, samples=4)
    ops = operators(path)
    assert "PRELU" not in ops and "LEAKY_RELU" in ops
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    assert sum(d["op_name"] == "DELEGATE" for d in interpreter._get_ops_details()) == 1
    x = np.random.default_rng(9).random((TILE, TILE, 3)).astype(np.float32)
    got, want = TFLiteModel(path).run(x), keras_reference(model)(x)
    # Measured 25.8 dB; bound 13 dB as for the QAT PCNet above.
    assert _snr_db(want["derained"], got["derained"]) >= 13


def test_weightless_layers_are_unshared_and_layers_with_weights_stay_shared():
    layers = keras.layers
    keras.utils.set_random_seed(37)
    x = keras.Input((8, 8, 3))
    act, conv = layers.LeakyReLU(0.2, name="act"), layers.Conv2D(3, 3, padding="same", name="c")
    a = act(conv(x))
    b = act(conv(a))
    model = keras.Model(x, layers.Concatenate()([act(layers.Subtract()([a, b])), b]))
    copy = qat.unshare_weightless_layers(model)
    names = [layer.name for layer in copy.layers]
    assert {"act", "act_call1", "act_call2"} <= set(names)
    assert names.count("c") == 1 and len(copy.get_layer("c").inbound_nodes) == 2
    image = np.random.default_rng(10).normal(size=(2, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(copy(image).numpy(), model(image).numpy(), atol=1e-6)
    single = keras.Model(x, act(x))
    assert qat.unshare_weightless_layers(single) is single
