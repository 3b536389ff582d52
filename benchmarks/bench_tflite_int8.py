"""Integer vs float TFLite latency in LiteRT: how much faster int8 can be on this CPU.

Interleaved, in one process, for each network: a float32 TFLite file and a full-integer int8
file (post-training quantization, 4 random calibration images; the weights do not change the
speed; one-slope PReLUs as ``LeakyReLU``, as the exporter does), both with a fixed
``1×H×W×3`` input, run by ``ai_edge_litert`` with ``--threads`` threads and its default
(XNNPACK) delegate. Prints the median ``invoke`` time of each and the ratio int8 / float32
(below 1: int8 is faster).

Networks:

* ``convstack``: the ceiling for conv-heavy deraining networks. Ten 3×3 convolutions with
  32 channels and ReLU (the body of PReNet's residual blocks and of most small deraining
  models), nothing else. If int8 is not faster here, no model made of such convolutions can be.
* ``op_<kind>``: what one operator costs, to see where a model's int8 time goes. Two 1×1
  convolutions lift the image to two 32-channel maps ``x`` and ``b`` (``b`` through a
  sigmoid, so that products and means keep their magnitude along the chain: an 8-bit operator
  whose output range is far from its input's falls out of XNNPACK, see the *partitions*
  column), then :data:`OP_CHAIN` operators of one kind run in a chain (``x = op(x, b)`` or
  ``x = op(x)``); ``x`` and ``b`` are the outputs. ``op_none`` is the lift alone.
  Prints, besides each file's time, the time of one operator: (chain − ``op_none``) /
  :data:`OP_CHAIN`. Kinds: ``add``, ``sub``, ``mul``, ``channel_gate`` (global average
  pooling, then a per-channel multiply, as in channel attention), ``leaky_relu``,
  ``sigmoid``, ``conv3x3``, ``conv1x1``, ``depthwise3x3``. PCNet's half-resolution features
  at a 320×480 input are ``--size 160x240``.
* any registered model name (paper configuration, random weights).

``--breakdown FILE``: after measuring the ``op_<kind>`` networks, weight their per-operator
times by the operators of a TFLite file (resized to ``--breakdown-size``; convolutions by their
multiply-adds, other operators by their output elements, ``MEAN`` by its input elements) and
print where the float32 and int8 time of such a network goes. An estimate from isolated
operators, not a profile: padding and data movement are left out (listed as not estimated).

Whether int8 beats float depends on the CPU's integer dot-product instructions (ARM
``dotprod``/``i8mm``, x86 AVX-512 VNNI / AVX-VNNI); the CPU flags that matter are printed.

``--dynamic``: dynamic-size files (``[1, -1, -1, 3]``, resized to ``--size``), as the exporter
writes them by default, each twice: with the model's transposed convolutions as Keras has them
(``TRANSPOSE_CONV`` with an output shape computed at run time) and as the exporter writes them
(sub-pixel convolutions, :func:`tfderain.export.rewrite.with_subpixel_convolutions`). Also
prints the number of XNNPACK delegate partitions of each file (1: the whole graph is delegated).

    python benchmarks/bench_tflite_int8.py [--models convstack,prenet,pcnet] [--size 320x480]
        [--threads 2] [--repeats 7] [--dynamic]
    python benchmarks/bench_tflite_int8.py --size 160x240 --models op_add,op_sub,op_mul,\
op_channel_gate,op_leaky_relu,op_sigmoid,op_conv3x3,op_conv1x1,op_depthwise3x3 \
        [--breakdown pcnet_qat.tflite --breakdown-size 320x480]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._args import two_sizes  # noqa: E402
from tfderain import _machine, models  # noqa: E402
from tfderain._keras import keras, tf  # noqa: E402
from tfderain.export.outputs import export_outputs  # noqa: E402
from tfderain.export.rewrite import with_leaky_relus, with_subpixel_convolutions  # noqa: E402

#: CPU flags of integer dot-product instructions, as /proc/cpuinfo spells them.
DOT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm", "avx2", "avx512f")


def convstack(size: tuple[int, int]) -> keras.Model:
    """Ten 3×3, 32-channel ReLU convolutions between a 3-channel input and output."""
    rainy = keras.Input((*size, 3))
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(rainy)
    for _ in range(8):
        x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    return keras.Model(rainy, keras.layers.Conv2D(3, 3, padding="same")(x), name="convstack")


#: Operators in the chain of an ``op_<kind>`` network.
OP_CHAIN = 20

_OPS = {
    "add": lambda x, b: keras.layers.Add()([x, b]),
    "sub": lambda x, b: keras.layers.Subtract()([x, b]),
    "mul": lambda x, b: keras.layers.Multiply()([x, b]),
    "channel_gate": lambda x, b: keras.layers.Multiply()(
        [x, keras.layers.GlobalAveragePooling2D(keepdims=True)(b)]
    ),
    "leaky_relu": lambda x, b: keras.layers.LeakyReLU(0.25)(x),
    "sigmoid": lambda x, b: keras.layers.Activation("sigmoid")(x),
    "conv3x3": lambda x, b: keras.layers.Conv2D(32, 3, padding="same")(x),
    "conv1x1": lambda x, b: keras.layers.Conv2D(32, 1)(x),
    "depthwise3x3": lambda x, b: keras.layers.DepthwiseConv2D(
        3, padding="same", depthwise_initializer=keras.initializers.RandomNormal(stddev=1 / 3)
    )(x),
    "none": None,
}


def opstack(kind: str, size: tuple[int, int]) -> keras.Model:
    """The ``op_<kind>`` network: a 32-channel lift, then :data:`OP_CHAIN` ``kind`` operators."""
    if kind not in _OPS:
        raise SystemExit(f"unknown operator network op_{kind}; kinds: {', '.join(_OPS)}")
    rainy = keras.Input((*size, 3))
    x = keras.layers.Conv2D(32, 1)(rainy)
    b = keras.layers.Conv2D(32, 1, activation="sigmoid")(rainy)  # in (0, 1), like a gate
    for _ in range(OP_CHAIN if _OPS[kind] else 0):
        x = _OPS[kind](x, b)
    return keras.Model(rainy, [x, b], name=f"op_{kind}")


def network(name: str, size: tuple[int, int]) -> keras.Model:
    """``convstack``, an ``op_<kind>`` network, or a registered model (paper configuration)."""
    if name == "convstack":
        return convstack(size)
    if name.startswith("op_"):
        return opstack(name[3:], size)
    return models.build(name)


def tflite_pair(
    model: keras.Model, size: tuple[int, int], dynamic: bool = False, subpixel: bool = False
) -> tuple[bytes, bytes]:
    """(float32, int8) TFLite bytes of ``model``, ``size`` input (``dynamic``: any size)."""
    own = model.name == "convstack" or model.name.startswith("op_")
    graph = model if own else export_outputs(model)[0]
    if subpixel:
        graph = with_subpixel_convolutions(graph)
    spec = tf.TensorSpec([1, *((None, None) if dynamic else size), 3], tf.float32)
    rng = np.random.default_rng(0)
    files = []
    for integer in (False, True):
        if integer:  # as `export tflite --quant int8`: one-slope PReLUs as LeakyReLU
            graph = with_leaky_relus(graph)
        function = tf.function(lambda x, g=graph: g(x, training=False))
        function = function.get_concrete_function(spec)
        converter = tf.lite.TFLiteConverter.from_concrete_functions([function], graph)
        if integer:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            images = [rng.random((1, *size, 3), dtype=np.float32) for _ in range(4)]
            converter.representative_dataset = lambda images=images: iter([[i] for i in images])
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        files.append(converter.convert())
    return files[0], files[1]


def ready_interpreter(data: bytes, threads: int, size: tuple[int, int]):
    """A LiteRT interpreter of ``data`` with a zero ``size`` input, after a warm-up ``invoke``."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data, num_threads=threads)
    interpreter.resize_tensor_input(0, [1, *size, 3])
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    interpreter.invoke()  # XNNPACK packs the weights on the first run
    return interpreter


def seconds(interpreter) -> float:
    start = time.perf_counter()
    interpreter.invoke()
    return time.perf_counter() - start


def partitions(interpreter) -> int:
    """How many XNNPACK delegate partitions ``interpreter`` runs."""
    return sum(op["op_name"] == "DELEGATE" for op in interpreter._get_ops_details())


def cpu_flags() -> str:
    """The :data:`DOT_FLAGS` of this machine's CPU (:func:`tfderain._machine.cpu`)."""
    cpu = _machine.cpu()
    if not cpu.described:
        return "unknown"
    return " ".join(cpu.having(DOT_FLAGS)) or "none of " + ", ".join(DOT_FLAGS)


#: TFLite operator → the ``op_<kind>`` network whose per-operator time stands for it.
_KIND_OF = {
    "ADD": "add",
    "SUB": "sub",
    "MUL": "mul",
    "LEAKY_RELU": "leaky_relu",
    "PRELU": "leaky_relu",
    "LOGISTIC": "sigmoid",
    "DEPTHWISE_CONV_2D": "depthwise3x3",
}


def _work(interpreter, op: dict, area: int) -> tuple[str, float] | None:
    """(op kind, how many of that kind's ``op_`` operators one TFLite op is worth) or ``None``.

    Convolutions count by multiply-adds (against a 32 → 32 one on ``area`` pixels), ``MEAN`` by
    its input elements, the other kinds by their output elements (against ``area × 32``).
    """

    def shape(tensor) -> list[int]:
        return [int(v) for v in interpreter._interpreter.TensorSize(int(tensor), 0)]

    out, name, unit = shape(op["outputs"][0]), op["op_name"], area * 32
    if name == "CONV_2D":
        kernel = shape(op["inputs"][1])  # out, kh, kw, in
        macs = float(np.prod(out[:3])) * float(np.prod(kernel))
        kind, taps = ("conv3x3", 9) if kernel[1] * kernel[2] > 1 else ("conv1x1", 1)
        return kind, macs / (taps * 32 * unit)
    if name == "MEAN":
        return "mean", float(np.prod(shape(op["inputs"][0]))) / unit
    if name == "DEPTHWISE_CONV_2D":
        kernel = shape(op["inputs"][1])  # 1, kh, kw, channels
        return "depthwise3x3", float(np.prod(out)) * kernel[1] * kernel[2] / (9 * unit)
    return (_KIND_OF[name], float(np.prod(out)) / unit) if name in _KIND_OF else None


def breakdown(path: str, size: tuple[int, int], each: dict[str, list[float]], area: int) -> None:
    """Print where the time of the TFLite file ``path`` at ``size`` goes (``--breakdown``).

    ``each``: per-operator ``[float32, int8]`` ms of the ``op_<kind>`` networks, whose maps have
    ``area`` pixels and 32 channels.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_path=path,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interpreter.resize_tensor_input(0, [1, *size, 3])
    interpreter.allocate_tensors()
    if "mul" in each and "channel_gate" in each:
        each = {
            **each,
            "mean": [g - m for g, m in zip(each["channel_gate"], each["mul"], strict=True)],
        }
    totals: dict[str, list[float]] = {}
    missing: dict[str, int] = {}
    for op in interpreter._get_ops_details():
        work = _work(interpreter, op, area)
        if work is None or work[0] not in each:
            missing[op["op_name"]] = missing.get(op["op_name"], 0) + 1
            continue
        kind, count = work
        total = totals.setdefault(kind, [0.0, 0.0])
        for k in (0, 1):
            total[k] += each[kind][k] * count
    whole = [sum(t[k] for t in totals.values()) for k in (0, 1)]
    print(f"breakdown of {path} at {size[0]}x{size[1]} (estimate from the operators above):")
    for kind, (f_ms, i_ms) in sorted(totals.items(), key=lambda item: -item[1][1]):
        print(
            f"  {kind:<14} float32 {f_ms:7.1f} ms ({f_ms / whole[0]:4.0%})"
            f"   int8 {i_ms:7.1f} ms ({i_ms / whole[1]:4.0%})"
        )
    print(
        f"  total          float32 {whole[0]:7.1f} ms   int8 {whole[1]:7.1f} ms"
        f"   int8/float {whole[1] / whole[0]:.2f}"
    )
    if missing:
        print("  not estimated: " + ", ".join(f"{n} ×{c}" for n, c in sorted(missing.items())))


#: ``--size`` and ``--breakdown-size``: height × width.
height_width = two_sizes("HxW", "320x480")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="convstack,prenet,pcnet")
    parser.add_argument("--size", type=height_width, default="320x480", help="HxW of the input")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--dynamic", action="store_true", help="dynamic-size files (docstring)")
    parser.add_argument("--breakdown", help="a .tflite file to estimate (docstring)")
    parser.add_argument(
        "--breakdown-size", type=height_width, default="320x480", help="HxW of --breakdown's input"
    )
    args = parser.parse_args(argv)
    if args.breakdown and not Path(args.breakdown).is_file():
        print(f"bench_tflite_int8: {args.breakdown}: no such .tflite file", file=sys.stderr)
        return 2
    if args.breakdown and not any(n.startswith("op_") for n in args.models.split(",")):
        print(
            "bench_tflite_int8: --breakdown needs op_<kind> networks in --models", file=sys.stderr
        )
        return 2
    size = args.size
    print(f"input 1x{size[0]}x{size[1]}x3, {args.threads} threads, {args.repeats} runs")
    print(f"CPU dot-product flags: {cpu_flags()}; load average {os.getloadavg()[0]:.2f}")
    variants = ("transpose", "subpixel") if args.dynamic else ("fixed",)
    print(
        f"{'network':<12} {'file':<10} {'float32 ms':>11} {'int8 ms':>9} {'int8/float':>11}"
        f" {'partitions':>11}"
    )
    names = args.models.split(",")
    if any(n.startswith("op_") for n in names) and "op_none" not in names:
        names.insert(0, "op_none")  # the baseline of the per-operator times
    base: list[float] = []
    each: dict[str, list[float]] = {}
    for name in names:
        model = network(name, size)
        runs = {}
        for variant in variants:
            files = tflite_pair(model, size, args.dynamic, subpixel=variant == "subpixel")
            runs[variant] = [ready_interpreter(f, args.threads, size) for f in files]
        times: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.repeats):  # alternate, so that load changes hit every file alike
            for variant, pair in runs.items():
                for k, interpreter in enumerate(pair):
                    times.setdefault((variant, k), []).append(seconds(interpreter))
        medians = {key: statistics.median(t) * 1e3 for key, t in times.items()}
        for variant, pair in runs.items():
            f_ms, i_ms = medians[variant, 0], medians[variant, 1]
            parts = "/".join(str(partitions(i)) for i in pair)
            print(
                f"{name:<12} {variant:<10} {f_ms:>11.1f} {i_ms:>9.1f} {i_ms / f_ms:>11.2f}"
                f" {parts:>11}",
                flush=True,
            )
        if name == "op_none":
            base = [medians[variants[0], 0], medians[variants[0], 1]]
        elif name.startswith("op_") and base:
            one = [(medians[variants[0], k] - base[k]) / OP_CHAIN for k in (0, 1)]
            each[name[3:]] = one
            ratio = one[1] / one[0] if one[0] > 0 else float("nan")
            print(
                f"{name:<12} one operator: float32 {one[0]:.3f} ms, int8 {one[1]:.3f} ms,"
                f" int8/float {ratio:.2f}",
                flush=True,
            )
        if args.dynamic:
            for k, kind in enumerate(("float32", "int8")):
                ratio = medians["subpixel", k] / medians["transpose", k]
                print(f"{name:<12} {kind} sub-pixel / transposed: {ratio:.2f}")
    if args.breakdown:
        breakdown(args.breakdown, args.breakdown_size, each, size[0] * size[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
