"""Export the Android demo's models into ``android_demo/app/src/main/assets/models/``.

One command::

    python export/android_assets.py [--weights-dir ../shared/weights] [--out DIR]

writes, for each model variant the app offers, a folder ``<variant>/`` holding the ``.tflite``
file and its ``model_spec.json`` (schema: ``org.tfderain.core.ModelSpec`` and the README of
``android_demo/``):

* ``prenet_int8`` — PReNet, quantization-aware trained, full-integer with uint8 input/output
  (``prenet_qat_int8.tflite``), the app's default;
* ``prenet_fp16`` — the same network with float16 weights and float32 input/output
  (``prenet_fp16.tflite``);
* ``mcodenet_fp16`` (``--with-density``) — mCODE-Net, density-aware (its official weights are
  read from ``--weights-dir``).

All models take fixed 256 × 256 tiles; the app tiles larger photos per the spec. The weights are
the official PReNet Rain100H checkpoint when ``--weights-dir`` holds it
(``PReNet/logs/Rain100H/PReNet6/net_latest.pth``, csdwren/PReNet), otherwise the bundled default
model of tfderain. Conversion goes through ``tfderain.export.export_tflite`` (QAT fine-tuning
on ``--qat-data``, synthetic rain by default; int8 calibration on ``--data``); when that module
is not available, ``none``/``fp16``/``int8`` (post-training) exports fall back to a plain
``TFLiteConverter`` here and the spec is written by :func:`write_spec` (QAT needs
``tfderain.export``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
#: Where the app reads its models from (``ModelAssets.kt``).
DEFAULT_OUT = REPO / "android_demo" / "app" / "src" / "main" / "assets" / "models"
#: Name of the spec file beside each model (``ModelAssets.SPEC_FILE`` in the app).
SPEC_FILE = "model_spec.json"
SPEC_FORMAT = "tfderain-model-spec"
SPEC_VERSION = 1
#: Tile side of the exported models.
TILE = 256
#: Logical tensor names shared with the app.
INPUT_NAME = "rainy"
OUTPUT_NAMES = ("derained", "density")
#: The official PReNet checkpoint used when ``--weights-dir`` is given.
PRENET_WEIGHTS = Path("PReNet/logs/Rain100H/PReNet6/net_latest.pth")
MCODENET_WEIGHTS = Path("CODE-Net/mCODENET-rain1200.pth")

#: variant folder → (registry model, .tflite file name, quantization).
VARIANTS: dict[str, tuple[str, str, str]] = {
    "prenet_int8": ("prenet", "prenet_qat_int8.tflite", "qat"),
    "prenet_fp16": ("prenet", "prenet_fp16.tflite", "fp16"),
    "mcodenet_fp16": ("mcodenet", "mcodenet_fp16.tflite", "fp16"),
}
DEFAULT_VARIANTS = ("prenet_int8", "prenet_fp16")


class AssetError(RuntimeError):
    """A model could not be exported; the message is one line."""


# ------------------------------------------------------------------------------------ spec


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def tensor_entries(tflite_path: str | os.PathLike) -> tuple[list[dict], list[dict]]:
    """``inputs`` and ``outputs`` spec entries of a ``.tflite`` file.

    Logical names come from the model's serving signature (its input/output keys must be
    ``rainy`` and ``derained``/``density``); ``index`` is the tensor's position in the
    interpreter's input/output lists (what LiteRT's ``runForMultipleInputsOutputs`` uses).
    """
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(tflite_path))
    signatures = interpreter.get_signature_list()
    if len(signatures) != 1:
        raise AssetError(f"{tflite_path}: expected one signature, found {sorted(signatures)}")
    runner = interpreter.get_signature_runner(next(iter(signatures)))
    by_tensor_in = {d["index"]: key for key, d in runner.get_input_details().items()}
    by_tensor_out = {d["index"]: key for key, d in runner.get_output_details().items()}

    def entries(details: list[dict], names: dict[int, str], allowed: Iterable[str]) -> list[dict]:
        result = []
        for position, d in enumerate(details):
            name = names.get(d["index"])
            if name not in allowed:
                raise AssetError(
                    f"{tflite_path}: tensor {d['name']!r} has signature name {name!r}, "
                    f"expected one of {sorted(allowed)}"
                )
            dtype = np.dtype(d["dtype"]).name
            if dtype not in ("uint8", "int8", "float32"):
                raise AssetError(f"{tflite_path}: tensor {name!r} has unsupported dtype {dtype}")
            scale, zero_point = d["quantization"]
            quant = None
            if dtype != "float32":
                quant = {"scale": float(np.float32(scale)), "zero_point": int(zero_point)}
            result.append(
                {
                    "name": name,
                    "index": position,
                    "shape": [int(s) for s in d["shape"]],
                    "dtype": dtype,
                    "quantization": quant,
                }
            )
        return result

    inputs = entries(interpreter.get_input_details(), by_tensor_in, (INPUT_NAME,))
    outputs = entries(interpreter.get_output_details(), by_tensor_out, OUTPUT_NAMES)
    if "derained" not in {o["name"] for o in outputs}:
        raise AssetError(f"{tflite_path}: no 'derained' output")
    return inputs, outputs


def make_spec(
    tflite_path: str | os.PathLike,
    *,
    model: str,
    config: dict[str, Any],
    quantization: str,
    tile: tuple[int, int] | None,
    multiple: int,
    halo: int,
) -> dict[str, Any]:
    """The ``model_spec.json`` content for a ``.tflite`` file (the fixed schema, key order)."""
    import tfderain

    path = Path(tflite_path)
    inputs, outputs = tensor_entries(path)
    return {
        "format": SPEC_FORMAT,
        "spec_version": SPEC_VERSION,
        "model": model,
        "config": config,
        "tfderain_version": tfderain.__version__,
        "file": path.name,
        "sha256": _sha256(path),
        "quantization": quantization,
        "tile": None if tile is None else {"height": int(tile[0]), "width": int(tile[1])},
        "multiple": int(multiple),
        "halo": int(halo),
        "overlap": 2 * int(halo),
        "value_range": [0.0, 1.0],
        "inputs": inputs,
        "outputs": outputs,
    }


def write_spec(path: str | os.PathLike, spec: dict[str, Any]) -> None:
    """Write a spec as JSON, atomically."""
    _write_atomic(Path(path), (json.dumps(spec, indent=2) + "\n").encode())


def check_spec(spec_path: Path, tflite_path: Path) -> dict[str, Any]:
    """Load a spec and check it against its ``.tflite`` file; one-line errors naming the file."""
    try:
        spec = json.loads(spec_path.read_text())
    except (OSError, ValueError) as exc:
        raise AssetError(f"{spec_path}: unreadable spec ({exc})") from None
    expected = [
        "format",
        "spec_version",
        "model",
        "config",
        "tfderain_version",
        "file",
        "sha256",
        "quantization",
        "tile",
        "multiple",
        "halo",
        "overlap",
        "value_range",
        "inputs",
        "outputs",
    ]
    missing = [k for k in expected if k not in spec]
    if missing:
        raise AssetError(f"{spec_path}: missing key(s) {', '.join(missing)}")
    if spec["format"] != SPEC_FORMAT or spec["spec_version"] != SPEC_VERSION:
        raise AssetError(f"{spec_path}: not a version-{SPEC_VERSION} {SPEC_FORMAT}")
    if spec["file"] != tflite_path.name:
        raise AssetError(f"{spec_path}: names file {spec['file']!r}, not {tflite_path.name!r}")
    if spec["sha256"] != _sha256(tflite_path):
        raise AssetError(f"{spec_path}: sha256 does not match {tflite_path.name}")
    if spec["tile"] is None:
        raise AssetError(f"{spec_path}: the app needs a fixed tile size (tile is null)")
    return spec


# ------------------------------------------------------------------------------ conversion


def fixed_size_model(model: Any, tile: tuple[int, int]) -> Any:
    """``model`` with a fixed ``(1, h, w, 3)`` input named ``rainy`` and only the outputs the app
    reads (``derained``, and ``density`` when the model has it)."""
    from tfderain._keras import keras

    inp = keras.Input((tile[0], tile[1], 3), batch_size=1, name=INPUT_NAME)
    out = model(inp, training=False)
    if not isinstance(out, dict):
        out = {"derained": out}
    # Named identity layers make the signature's output keys the logical names.
    kept = {k: keras.layers.Activation("linear", name=k)(out[k]) for k in OUTPUT_NAMES if k in out}
    return keras.Model(inp, kept, name=f"{model.name}_tile")


def convert_fallback(
    model: Any,
    path: str | os.PathLike,
    *,
    quant: str,
    tile: tuple[int, int],
    representative: Callable[[], Iterable[list[np.ndarray]]] | None = None,
) -> Path:
    """A ``.tflite`` file of ``model`` at a fixed tile size (``none``, ``fp16`` or ``int8`` with
    uint8 input/output), for when ``tfderain.export`` is not available."""
    from tfderain._keras import tf

    converter = tf.lite.TFLiteConverter.from_keras_model(fixed_size_model(model, tile))
    if quant == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quant == "int8":
        if representative is None:
            raise AssetError("int8 export needs representative data")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    elif quant != "none":
        raise AssetError(f"quantization {quant!r} needs tfderain.export (not available)")
    path = Path(path)
    _write_atomic(path, converter.convert())
    return path


def check_tile(name: str, tile: tuple[int, int], label: str) -> None:
    """A fixed tile must be a multiple of the model's ``multiple`` and exceed ``2 × halo``."""
    from tfderain import models

    registry = models.spec(name)
    for side in tile:
        if side % registry.multiple or side <= 2 * registry.halo:
            raise AssetError(
                f"{label}: tile {tile[0]}x{tile[1]} must be a multiple of "
                f"{registry.multiple} and exceed the overlap of {2 * registry.halo} pixels"
            )


def _export_module() -> Any:
    try:
        from tfderain import export
    except ImportError:
        return None
    return export if hasattr(export, "export_tflite") else None


def export_variant(
    model: Any,
    out_dir: Path,
    *,
    name: str,
    file: str,
    quant: str,
    tile: tuple[int, int] = (TILE, TILE),
    calibration: Path | None = None,
    qat_data: str | Path | None = "synthetic",
    qat_steps: int | None = None,
) -> dict[str, Any]:
    """Export one model into ``out_dir/<file>`` + ``out_dir/model_spec.json``; returns the spec.

    ``name`` is the registry name (spec ``model``; ``multiple`` and ``halo`` come from the
    registry). ``calibration`` is a folder of images for ``int8`` calibration, ``qat_data`` a
    paired dataset folder or ``"synthetic"`` for ``qat`` fine-tuning (``tfderain.export``). The
    folder is filled atomically per file: both are written to a temporary folder first.
    """
    from tfderain import models

    registry = models.spec(name)
    check_tile(name, tile, out_dir.name)
    config = dict(getattr(model, "_tfderain_config", {}) or {})
    export = _export_module()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.") as tmp:
        tflite = Path(tmp) / file
        if export is not None:
            kwargs: dict[str, Any] = {
                "quant": quant,
                "tile": tile,
                "uint8_io": quant in ("int8", "qat"),
            }
            if quant == "int8":
                kwargs["representative"] = str(calibration) if calibration else "synthetic"
            if quant == "qat":
                kwargs["qat_data"] = str(qat_data) if qat_data else "synthetic"
                if qat_steps is not None:
                    kwargs["qat_steps"] = qat_steps
            export.export_tflite(model, tflite, **kwargs)
            written = list(Path(tmp).glob("*.json"))
            if len(written) != 1:
                raise AssetError(f"{tflite}: expected one spec beside it, found {written}")
            spec_path = written[0]
        else:
            if quant == "qat":
                raise AssetError(
                    f"{file}: quantization-aware training needs tfderain.export, which is not "
                    "installed; use --quant fp16/none/int8"
                )
            representative = None
            if quant == "int8":
                if calibration is None:
                    raise AssetError(f"{file}: int8 calibration needs --data")
                representative = representative_tiles(_load_images(calibration), tile)
            convert_fallback(model, tflite, quant=quant, tile=tile, representative=representative)
            spec_path = Path(tmp) / SPEC_FILE
            write_spec(
                spec_path,
                make_spec(
                    tflite,
                    model=name,
                    config=config,
                    quantization=quant,
                    tile=tile,
                    multiple=registry.multiple,
                    halo=registry.halo,
                ),
            )
        spec = check_spec(spec_path, tflite)
        out_dir.mkdir(parents=True, exist_ok=True)
        for old in out_dir.glob("*.tflite"):
            if old.name != file:
                old.unlink()
        _write_atomic(out_dir / file, tflite.read_bytes())
        _write_atomic(out_dir / SPEC_FILE, spec_path.read_bytes())
    return spec


# ------------------------------------------------------------------------------------- data


def representative_tiles(
    images: Sequence[np.ndarray], tile: tuple[int, int], count: int = 16, seed: int = 0
) -> Callable[[], Iterable[list[np.ndarray]]]:
    """A representative dataset: ``count`` random ``tile`` crops (reflect-padded if smaller)."""
    rng = np.random.default_rng(seed)
    crops = []
    for i in range(count):
        image = images[i % len(images)]
        pad_h, pad_w = max(0, tile[0] - image.shape[0]), max(0, tile[1] - image.shape[1])
        if pad_h or pad_w:
            image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect")
        y = int(rng.integers(0, image.shape[0] - tile[0] + 1))
        x = int(rng.integers(0, image.shape[1] - tile[1] + 1))
        crops.append(image[y : y + tile[0], x : x + tile[1]].astype(np.float32)[None])

    def generate() -> Iterable[list[np.ndarray]]:
        for crop in crops:
            yield [crop]

    return generate


def _load_images(folder: Path) -> list[np.ndarray]:
    from tfderain import io

    images = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"):
            try:
                images.append(io.read_image(path).rgb)
            except Exception as exc:  # noqa: BLE001 - report and skip bad files
                print(f"skipping {path}: {exc}", file=sys.stderr)
    if not images:
        raise AssetError(f"{folder}: no readable images for calibration")
    return images


# -------------------------------------------------------------------------------------- CLI


def _model_for(variant: str, weights_dir: Path | None, weights: Path | None = None) -> Any:
    import tfderain
    from tfderain.convert import convert_state_dict, load_state_dict

    arch = VARIANTS[variant][0]
    if arch == "prenet":
        if weights is not None:
            model = tfderain.load_model(weights)
            found = getattr(model, "_tfderain_arch", None)
            if found not in ("prenet", None):
                raise AssetError(f"{weights}: a {found!r} model, expected 'prenet'")
            return model
        if weights_dir is not None and (weights_dir / PRENET_WEIGHTS).is_file():
            sd = load_state_dict(weights_dir / PRENET_WEIGHTS)
            return convert_state_dict("prenet", sd, stages=6)
        model = tfderain.load_model(tfderain.api.default_model_path())
        return model
    if weights_dir is None or not (weights_dir / MCODENET_WEIGHTS).is_file():
        raise AssetError(f"{variant}: needs {MCODENET_WEIGHTS} under --weights-dir")
    return convert_state_dict("mcodenet", load_state_dict(weights_dir / MCODENET_WEIGHTS))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights-dir", type=Path, help="folder with the official checkpoints")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="assets/models folder")
    parser.add_argument(
        "--variants", nargs="+", choices=sorted(VARIANTS), default=list(DEFAULT_VARIANTS)
    )
    parser.add_argument("--with-density", action="store_true", help="also mcodenet_fp16")
    parser.add_argument(
        "--data", type=Path, default=REPO / "examples", help="int8 calibration images (folder)"
    )
    parser.add_argument(
        "--qat-data",
        default="synthetic",
        help="QAT fine-tuning pairs: a paired dataset folder, or 'synthetic' (default)",
    )
    parser.add_argument("--qat-steps", type=int, help="QAT fine-tuning steps")
    parser.add_argument(
        "--weights", type=Path, help="a .keras model to export instead (PReNet variants)"
    )
    parser.add_argument(
        "--quant",
        choices=("none", "fp16", "int8", "qat"),
        help="override every variant's quantization (the file names stay the app's)",
    )
    parser.add_argument("--tile", type=int, default=TILE, help="tile side (default 256)")
    args = parser.parse_args(argv)
    variants = list(args.variants) + (["mcodenet_fp16"] if args.with_density else [])
    tile = (args.tile, args.tile)
    failed = []
    for variant in variants:
        arch, file, quant = VARIANTS[variant]
        quant = args.quant or quant
        try:
            check_tile(arch, tile, variant)
            model = _model_for(variant, args.weights_dir, args.weights)
            spec = export_variant(
                model,
                args.out / variant,
                name=arch,
                file=file,
                quant=quant,
                tile=tile,
                calibration=args.data,
                qat_data=args.qat_data,
                qat_steps=args.qat_steps,
            )
        except (AssetError, OSError, ValueError) as exc:
            print(f"{variant}: {exc}", file=sys.stderr)
            failed.append(variant)
            continue
        size = (args.out / variant / file).stat().st_size
        print(f"{variant}: {file} ({size / 1024:.0f} KB, {spec['quantization']})")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
