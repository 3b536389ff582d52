"""Golden vectors for the Android inference core (``org.tfderain.core``), and its Python twin.

The functions here re-implement the core's arithmetic operation for operation in numpy (see the
Javadoc of ``Tiler``, ``Blender``, ``Quantizer`` and ``RgbImage``), so that the Java code can be
checked byte for byte against what this script writes:

* ``<case>/image.rgb``: an 8-bit RGB test image;
* ``<case>/tiles/NNN.in``: each preprocessed (padded, cut, quantized) input tile, as the bytes
  of the model's input tensor;
* ``<case>/tiles/NNN.outK``: the bytes of output ``K`` that LiteRT
  (``ai_edge_litert.interpreter.Interpreter``) produced for that tile, for a tiny PReNet;
* ``<case>/expected.f32`` / ``expected.rgb``: the blended image (float32, little-endian) and its
  8-bit version;
* ``<case>/model_spec.json`` and ``<case>/case.json`` (sizes, tile grid, file names);
* ``tiling.json``: ``tile_starts`` from ``tfderain.inference`` itself for a grid of sizes,
  blending windows, quantization and reflection cases.

Cases: ``int8`` (full-integer model, uint8 input/output, tile 32, halo 8, multiple 4, a 45 × 61
image: padding to the multiple, 2 × 3 tiles) and ``float`` (float32 input/output, tile 24, halo 4,
a 20 × 50 image: padding up to the tile, 1 × 3 tiles). The halo and multiple are set for the test,
not taken from the registry, so that tiny tiles still overlap.

Usage: ``python android_demo/tools/make_golden.py [--out DIR]`` (default: the core's committed
``src/test/resources/golden``). ``--compare`` also prints the largest difference between this
pipeline (with LiteRT float32) and ``tfderain.inference.derain_array`` (Keras) on one image.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "android_demo" / "core" / "src" / "test" / "resources" / "golden"

#: name → (quantization, tile, halo, multiple, image height, image width)
CASES: dict[str, tuple[str, int, int, int, int, int]] = {
    "int8": ("int8", 32, 8, 4, 41, 57),
    "float": ("none", 24, 4, 1, 20, 50),
}
TINY_PRENET = {"stages": 2, "channels": 4}
_RANGES = {"uint8": (0, 255), "int8": (-128, 127)}


# ------------------------------------------------------------------ the core's arithmetic


def to_float(rgb: np.ndarray) -> np.ndarray:
    """``RgbImage.fromRgbBytes``: ``u / 255`` in float32."""
    return rgb.astype(np.float32) / np.float32(255)


def padded_size(height: int, width: int, tile: int, multiple: int) -> tuple[int, int]:
    """``Tiler``: up to the multiple, then up to the tile."""
    up = lambda v: -(-v // multiple) * multiple  # noqa: E731
    return max(up(height), tile), max(up(width), tile)


def pad(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``Tiler.pad``: numpy reflect padding at the bottom and right."""
    h, w = image.shape[:2]
    return np.pad(image, ((0, height - h), (0, width - w), (0, 0)), mode="reflect")


def window(size: int, halo: int, ramp_start: bool, ramp_end: bool) -> np.ndarray:
    """``Blender.window``: the raised cosine in double, rounded to float32 once."""
    w = np.ones(size, np.float32)
    if halo <= 0:
        return w
    margin = halo // 2
    ramp = np.empty(size, np.float32)
    for i in range(size):
        t = min(max(((i + 0.5) - margin) / halo, 0.0), 1.0)
        ramp[i] = np.float32(0.5 - 0.5 * math.cos(math.pi * t))
    if ramp_start:
        w = np.minimum(w, ramp)
    if ramp_end:
        w = np.minimum(w, ramp[::-1])
    return w


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: str) -> np.ndarray:
    """``Quantizer.quantize``: double division, round half away from zero, clamp."""
    v = np.asarray(x, np.float32).astype(np.float64) / np.float64(np.float32(scale))
    a = np.abs(v)
    f = np.floor(a)
    r = np.copysign(np.where(a - f >= 0.5, f + 1.0, f), v)
    low, high = _RANGES[dtype]
    return np.clip(r + zero_point, low, high).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """``Quantizer.dequantize``: ``float32(q - zero_point) * float32(scale)``."""
    return (q.astype(np.int32) - zero_point).astype(np.float32) * np.float32(scale)


def encode(tile: np.ndarray, tensor: dict) -> bytes:
    """``Quantizer.encode``: a tile as the input tensor's bytes (little-endian)."""
    if tensor["dtype"] == "float32":
        return tile.astype("<f4").tobytes()
    q = tensor["quantization"]
    return quantize(tile, q["scale"], q["zero_point"], tensor["dtype"]).tobytes()


def decode(data: bytes, tensor: dict) -> np.ndarray:
    """``Quantizer.decode``: output tensor bytes to float32."""
    if tensor["dtype"] == "float32":
        return np.frombuffer(data, "<f4").astype(np.float32)
    q = tensor["quantization"]
    return dequantize(np.frombuffer(data, tensor["dtype"]), q["scale"], q["zero_point"])


def blend(
    predictions: dict[tuple[int, int], np.ndarray],
    ys: list[int],
    xs: list[int],
    padded: tuple[int, int],
    tile: int,
    halo: int,
    size: tuple[int, int],
) -> np.ndarray:
    """``Blender``: float32 accumulation in row-major tile order, two divisions, crop, clip."""
    ph, pw = padded
    win_y = {y: window(tile, halo, y > 0, y + tile < ph) for y in ys}
    win_x = {x: window(tile, halo, x > 0, x + tile < pw) for x in xs}
    acc = np.zeros((ph, pw, 3), np.float32)
    for y in ys:
        for x in xs:
            weight = win_y[y][:, None] * win_x[x][None, :]
            acc[y : y + tile, x : x + tile] += predictions[y, x] * weight[:, :, None]
    sum_y = np.zeros(ph, np.float32)
    sum_x = np.zeros(pw, np.float32)
    for y in ys:
        sum_y[y : y + tile] += win_y[y]
    for x in xs:
        sum_x[x : x + tile] += win_x[x]
    out = acc / sum_y[:, None, None] / sum_x[None, :, None]
    return np.clip(out[: size[0], : size[1]], 0.0, 1.0)


class LiteRTEngine:
    """Runs one tile through ``ai_edge_litert``, bytes in and bytes out (like the app)."""

    def __init__(self, tflite: Path, descriptor: dict):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(tflite))
        self.interpreter.allocate_tensors()
        self.descriptor = descriptor

    def run(self, data: bytes) -> list[bytes]:
        ins = self.interpreter.get_input_details()
        outs = self.interpreter.get_output_details()
        tensor = self.descriptor["inputs"][0]
        array = np.frombuffer(data, np.dtype(tensor["dtype"]).newbyteorder("<"))
        self.interpreter.set_tensor(ins[tensor["index"]]["index"], array.reshape(tensor["shape"]))
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(d["index"]).astype(d["dtype"]).tobytes() for d in outs]


def derain(rgb: np.ndarray, descriptor: dict, run) -> tuple[np.ndarray, list[dict]]:
    """The whole ``TiledDerainer`` pipeline on an 8-bit image: (float32 result, tile records)."""
    from tfderain.inference import tile_starts

    tile, halo, multiple = descriptor["tile"]["height"], descriptor["halo"], descriptor["multiple"]
    height, width = rgb.shape[:2]
    ph, pw = padded_size(height, width, tile, multiple)
    image = pad(to_float(rgb), ph, pw)
    ys = tile_starts(ph, tile, 2 * halo, multiple)
    xs = tile_starts(pw, tile, 2 * halo, multiple)
    derained = next(o for o in descriptor["outputs"] if o["name"] == "derained")
    predictions, records = {}, []
    for y in ys:
        for x in xs:
            data = encode(image[y : y + tile, x : x + tile], descriptor["inputs"][0])
            outputs = run(data)
            predictions[y, x] = decode(outputs[derained["index"]], derained).reshape(tile, tile, 3)
            records.append({"y": y, "x": x, "input": data, "outputs": outputs})
    out = blend(predictions, ys, xs, (ph, pw), tile, halo, (height, width))
    return out, records


# ------------------------------------------------------------------------------- writing


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def test_image(height: int, width: int) -> np.ndarray:
    """A crop of the repository's sample photo (a seeded random image if it is missing)."""
    from tfderain import io

    sample = REPO / "examples" / "rainy.png"
    if sample.is_file():
        rgb = io.to_uint8(io.read_image(sample).rgb)
        if rgb.shape[0] >= height + 40 and rgb.shape[1] >= width + 40:
            return np.ascontiguousarray(rgb[40 : 40 + height, 40 : 40 + width])
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def tiny_tflite(folder: Path, quant: str, tile: int, halo: int, multiple: int) -> tuple[Path, dict]:
    """A tiny PReNet as ``.tflite`` (``tfderain.export.export_tflite``; ``int8`` calibrated on a
    crop of the test image, with uint8 input/output) plus its descriptor with the test's halo."""
    from tfderain import io, models
    from tfderain._keras import keras
    from tfderain.export import export_tflite
    from tfderain.export.descriptor import descriptor_path, read_descriptor

    keras.utils.set_random_seed(0)
    model = models.build("prenet", **TINY_PRENET)
    calibration = folder / "calibration"
    io.write_image(calibration / "image.png", test_image(64, 64).astype(np.float32) / 255.0)
    path = export_tflite(
        model,
        folder / f"tiny_prenet_{quant}.tflite",
        quant=quant,
        tile=(tile, tile),
        representative=calibration,
        uint8_io=quant == "int8",
        samples=4,
    )
    descriptor = read_descriptor(descriptor_path(path))
    descriptor.update(multiple=multiple, halo=halo, overlap=2 * halo)  # the test's, not registry's
    return path, descriptor


def write_case(out: Path, name: str, work: Path) -> dict:
    """Convert the case's model, run it tile by tile with LiteRT and write the golden files."""
    from tfderain import io

    quant, tile, halo, multiple, height, width = CASES[name]
    tflite, descriptor = tiny_tflite(work, quant, tile, halo, multiple)
    rgb = test_image(height, width)
    engine = LiteRTEngine(tflite, descriptor)
    result, records = derain(rgb, descriptor, engine.run)
    folder = out / name
    _write(folder / "model_spec.json", (json.dumps(descriptor, indent=2) + "\n").encode())
    _write(folder / "image.rgb", rgb.tobytes())
    tiles = []
    for k, record in enumerate(records):
        _write(folder / "tiles" / f"{k:03d}.in", record["input"])
        outputs = []
        for i, data in enumerate(record["outputs"]):
            _write(folder / "tiles" / f"{k:03d}.out{i}", data)
            outputs.append(f"tiles/{k:03d}.out{i}")
        tiles.append({"y": record["y"], "x": record["x"], "input": f"tiles/{k:03d}.in",
                      "outputs": outputs})  # fmt: skip
    _write(folder / "expected.f32", result.astype("<f4").tobytes())
    _write(folder / "expected.rgb", io.to_uint8(result).tobytes())
    case = {
        "image": {"file": "image.rgb", "height": height, "width": width},
        "spec": "model_spec.json",
        "padded": list(padded_size(height, width, tile, multiple)),
        "ys": sorted({t["y"] for t in tiles}),
        "xs": sorted({t["x"] for t in tiles}),
        "tiles": tiles,
        "expected_float": "expected.f32",
        "expected_rgb": "expected.rgb",
    }
    _write(folder / "case.json", (json.dumps(case, indent=2) + "\n").encode())
    return case


def tiling_cases() -> dict:
    """Reference values of the core's small functions (``tile_starts`` from tfderain itself)."""
    from tfderain.inference import tile_starts

    starts, errors = [], []
    for length in (1, 7, 24, 32, 33, 100, 257, 1000, 4032):
        for tile in (8, 24, 32, 256):
            for overlap in (0, 16, 128):
                for multiple in (1, 4, 8):
                    if length % multiple or tile % multiple:
                        continue
                    try:
                        s = tile_starts(length, tile, overlap, multiple)
                    except ValueError:
                        errors.append([length, tile, overlap, multiple])
                        continue
                    if len(s) <= 20:
                        starts.append({"args": [length, tile, overlap, multiple], "starts": s})
    windows = []
    for size, halo in ((24, 4), (32, 8), (80, 32), (7, 3), (16, 0)):
        for ramp_start in (False, True):
            for ramp_end in (False, True):
                w = window(size, halo, ramp_start, ramp_end)
                windows.append({"args": [size, halo, ramp_start, ramp_end],
                                "values": [float(v) for v in w]})  # fmt: skip
    rng = np.random.default_rng(1)
    xs = np.concatenate(
        [
            np.arange(0, 256, 5, dtype=np.float32) / np.float32(255),
            rng.random(24).astype(np.float32) * np.float32(1.2) - np.float32(0.1),
            np.array([0.5, 1.5, 2.5, -0.5, 126.5], np.float32) / np.float32(255),
        ]
    )
    quant = []
    for scale, zero_point, dtype in (
        (1 / 255, 0, "uint8"),
        (0.004681571386754513, 12, "uint8"),
        (1 / 255, -128, "int8"),
        (0.0078125, 0, "int8"),
        (1.0, 0, "uint8"),
    ):
        scale32 = float(np.float32(scale))
        values = xs if scale != 1.0 else np.array([0.5, 1.5, 2.5, 254.5, -0.5, 3.49], np.float32)
        q = quantize(values, scale32, zero_point, dtype)
        quant.append(
            {
                "scale": scale32,
                "zero_point": zero_point,
                "dtype": dtype,
                "x": [float(v) for v in values],
                "q": [int(v) for v in q],
                "dequantized": [float(v) for v in dequantize(q, scale32, zero_point)],
            }
        )
    reflect = []
    for n in (1, 2, 3, 5):
        padded = np.pad(np.arange(n), (0, 3 * n + 4), mode="reflect")
        reflect.append({"n": n, "indices": [int(i) for i in padded]})
    return {
        "tile_starts": starts,
        "tile_starts_errors": errors,
        "windows": windows,
        "quantize": quant,
        "reflect": reflect,
    }


def compare_with_inference(work: Path) -> float:
    """Max abs difference between this pipeline (LiteRT float32) and ``derain_array`` (Keras)
    for a tiny PReNet with the same tiling, on a 60 × 70 crop (2 × 3 tiles of 32, halo 8)."""
    from tfderain import models
    from tfderain._keras import keras
    from tfderain.inference import derain_array

    tflite, descriptor = tiny_tflite(work, "none", 32, 8, 1)
    keras.utils.set_random_seed(0)
    model = models.build("prenet", **TINY_PRENET)  # the same weights as the converted model
    rgb = test_image(60, 70)
    ours, _ = derain(rgb, descriptor, LiteRTEngine(tflite, descriptor).run)
    reference = derain_array(model, to_float(rgb), multiple=1, halo=8, tile=32, max_pixels=0)
    return float(np.max(np.abs(ours - reference)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=sorted(CASES))
    parser.add_argument("--compare", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases:
            case = write_case(args.out, name, Path(tmp))
            print(f"{name}: {len(case['tiles'])} tiles -> {args.out / name}")
        _write(args.out / "tiling.json", (json.dumps(tiling_cases()) + "\n").encode())
        if args.compare:
            print(f"max |core - derain_array| = {compare_with_inference(Path(tmp)):.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
