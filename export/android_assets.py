"""Export the Android demo's models into ``android_demo/app/src/main/assets/models/``.

One command::

    python export/android_assets.py [--weights-dir ../shared/weights] [--out DIR]

writes, for each model variant the app offers, a folder ``<variant>/`` holding the ``.tflite``
file and its descriptor as ``model_spec.json`` (:mod:`tfderain.export.descriptor`; read by
``org.tfderain.core.ModelSpec``, see the README of ``android_demo/``):

* ``rainunet_int8`` — tfderain's bundled default model (RainUNet, preset ``default`` =
  ``rainunet:synthetic``), quantization-aware trained, full-integer with uint8 input/output
  (``rainunet_qat_int8.tflite``), the app's default;
* ``rainunet_fp16`` — the same network with float16 weights and float32 input/output
  (``rainunet_fp16.tflite``);
* ``prenet_int8`` (``--with-prenet``) — PReNet, quantization-aware trained, full-integer with
  uint8 input/output (``prenet_qat_int8.tflite``), offered by the app as a switch;
  ``prenet_fp16`` (``--variants``) its float16 twin;
* ``mcodenet_fp16`` (``--with-density``) — mCODE-Net, density-aware (its official weights are
  read from ``--weights-dir``).

All models take fixed 256 × 256 tiles; the app tiles larger photos per the descriptor. RainUNet's
weights are the bundled default model's (:data:`PACKAGED`, through :mod:`tfderain.presets`).
PReNet's and mCODE-Net's are the official ones of :data:`OFFICIAL` (presets: PReNet trained on
Rain100H, mCODE-Net released for Rain1200) when ``--weights-dir`` holds a copy of their upstream
files (laid out as ``../shared/weights``, :func:`tfderain.presets.local_copy`; checked against the
presets' sha256), otherwise, for PReNet, tfderain's packaged 16-channel PReNet (preset
``prenet:synthetic16``, the first bundled default model). ``--weights FILE.keras`` replaces the
weights of the variants of that file's architecture. Conversion and the descriptor are
``tfderain.export.export_tflite``'s (QAT fine-tuning on ``--qat-data``, synthetic rain by default;
int8 calibration on ``--data``); this script only checks the descriptor against what the app
needs and lays the files out as the app expects.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: Where the app reads its models from (``ModelAssets.kt``).
DEFAULT_OUT = REPO / "android_demo" / "app" / "src" / "main" / "assets" / "models"
#: Name of the descriptor beside each model (``ModelAssets.SPEC_FILE`` in the app).
DESCRIPTOR_FILE = "model_spec.json"
#: Tile side of the exported models.
TILE = 256
#: Logical tensor names shared with the app.
INPUT_NAME = "rainy"
OUTPUT_NAMES = ("derained", "density")
#: The official weights of each model the app offers (preset names), read from ``--weights-dir``.
OFFICIAL = {"prenet": "prenet:rain100h", "mcodenet": "mcodenet:rain1200"}
#: The PReNet weights packaged with tfderain, used without ``--weights-dir`` or ``--weights``.
FALLBACK_PRESET = "prenet:synthetic16"
#: The weights packaged with tfderain of each architecture (preset names or aliases), used when
#: there is no official copy and no ``--weights``: RainUNet is the bundled default model
#: (alias ``default`` of :mod:`tfderain.presets`).
PACKAGED = {"rainunet": "default", "prenet": FALLBACK_PRESET}

#: variant folder → (registry model, .tflite file name, quantization).
VARIANTS: dict[str, tuple[str, str, str]] = {
    "rainunet_int8": ("rainunet", "rainunet_qat_int8.tflite", "qat"),
    "rainunet_fp16": ("rainunet", "rainunet_fp16.tflite", "fp16"),
    "prenet_int8": ("prenet", "prenet_qat_int8.tflite", "qat"),
    "prenet_fp16": ("prenet", "prenet_fp16.tflite", "fp16"),
    "mcodenet_fp16": ("mcodenet", "mcodenet_fp16.tflite", "fp16"),
}
#: The variants the app requires (``ModelAssets.REQUIRED_SPECS``); the first is its default.
DEFAULT_VARIANTS = ("rainunet_int8", "rainunet_fp16")
#: Optional variants the app offers as switches when bundled: option → variant.
OPTIONAL_VARIANTS = {"with_prenet": "prenet_int8", "with_density": "mcodenet_fp16"}


class AssetError(RuntimeError):
    """A model could not be exported; the message is one line."""


# ------------------------------------------------------------------------------ descriptor


def check_descriptor(path: Path, tflite_path: Path) -> dict[str, Any]:
    """Load a descriptor and check it against its ``.tflite`` file; one-line errors naming the
    file."""
    from tfderain.export.descriptor import FORMAT, KEYS, VERSION

    try:
        descriptor = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise AssetError(f"{path}: unreadable descriptor ({exc})") from None
    missing = [k for k in KEYS if k not in descriptor]
    if missing:
        raise AssetError(f"{path}: missing key(s) {', '.join(missing)}")
    if descriptor["format"] != FORMAT or descriptor["spec_version"] != VERSION:
        raise AssetError(f"{path}: not a version-{VERSION} {FORMAT}")
    if descriptor["file"] != tflite_path.name:
        raise AssetError(f"{path}: names file {descriptor['file']!r}, not {tflite_path.name!r}")
    if descriptor["sha256"] != hashlib.sha256(tflite_path.read_bytes()).hexdigest():
        raise AssetError(f"{path}: sha256 does not match {tflite_path.name}")
    if descriptor["tile"] is None:
        raise AssetError(f"{path}: the app needs a fixed tile size (tile is null)")
    _check_tensors(path, descriptor["inputs"], (INPUT_NAME,))
    _check_tensors(path, descriptor["outputs"], OUTPUT_NAMES)
    if "derained" not in {o["name"] for o in descriptor["outputs"]}:
        raise AssetError(f"{path}: no 'derained' output")
    return descriptor


def _check_tensors(path: Path, tensors: list[dict], allowed: Sequence[str]) -> None:
    """The app reads tensors by these logical names, with these dtypes only."""
    for tensor in tensors:
        if tensor["name"] not in allowed:
            raise AssetError(f"{path}: tensor {tensor['name']!r} is not one of {sorted(allowed)}")
        if tensor["dtype"] not in ("uint8", "int8", "float32"):
            raise AssetError(
                f"{path}: tensor {tensor['name']!r} has unsupported dtype {tensor['dtype']}"
            )


# ------------------------------------------------------------------------------ conversion


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
    """Export one model into ``out_dir/<file>`` + ``out_dir/model_spec.json``; returns its
    descriptor.

    ``name`` is the registry name (its ``multiple`` and ``halo`` bound the tile).
    ``calibration`` is a folder of images for ``int8`` calibration, ``qat_data`` a paired
    dataset folder or ``"synthetic"`` for ``qat`` fine-tuning. ``int8`` and ``qat`` models get
    uint8 input/output. :func:`tfderain.export.export_tflite` writes the model and its
    ``<stem>.json`` descriptor into a temporary folder; the descriptor is checked, then both are
    copied atomically into ``out_dir`` (the descriptor as :data:`DESCRIPTOR_FILE`).
    """
    from tfderain.export import export_tflite
    from tfderain.export.descriptor import descriptor_path
    from tfderain.io import write_bytes_atomically

    check_tile(name, tile, out_dir.name)
    options: dict[str, Any] = {"quant": quant, "tile": tile, "uint8_io": quant in ("int8", "qat")}
    if quant == "int8":
        options["representative"] = str(calibration) if calibration else "synthetic"
    if quant == "qat":
        options["qat_data"] = str(qat_data) if qat_data else "synthetic"
        options["qat_steps"] = qat_steps  # None: the model's recipe
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.") as tmp:
        tflite = export_tflite(model, Path(tmp) / file, **options)
        written = descriptor_path(tflite)
        descriptor = check_descriptor(written, tflite)
        out_dir.mkdir(parents=True, exist_ok=True)
        for old in out_dir.glob("*.tflite"):
            if old.name != file:
                old.unlink()
        write_bytes_atomically(out_dir / file, tflite.read_bytes())
        write_bytes_atomically(out_dir / DESCRIPTOR_FILE, written.read_bytes())
    return descriptor


# -------------------------------------------------------------------------------------- CLI


def _official(arch: str, weights_dir: Path | None) -> Any:
    """The official model of ``arch`` (:data:`OFFICIAL`) from its copy in ``weights_dir``, or
    ``None`` when there is none."""
    from tfderain import presets

    preset = presets.get(OFFICIAL[arch])
    copy = None if weights_dir is None else presets.local_copy(preset, weights_dir)
    if copy is None:
        return None
    try:
        return presets.convert_file(preset, copy)
    except presets.PresetError as exc:
        raise AssetError(str(exc)) from None


def _architecture(weights: Path) -> str:
    """The registry name of the model in the tfderain ``.keras`` file ``weights``."""
    from tfderain import saving

    try:
        return str(saving.read_metadata(weights)["arch"])
    except (saving.ModelFileError, KeyError) as exc:
        raise AssetError(f"{weights}: not a tfderain model file ({exc})") from None


def _model_for(variant: str, weights_dir: Path | None, weights: Path | None = None) -> Any:
    """The model of ``variant``: the ``weights`` file when it holds the variant's architecture,
    else the official weights (:data:`OFFICIAL`) from ``weights_dir``, else the packaged ones
    (:data:`PACKAGED`)."""
    import tfderain
    from tfderain import presets

    arch = VARIANTS[variant][0]
    if weights is not None and _architecture(weights) == arch:
        return tfderain.load_model(weights)
    if arch in OFFICIAL:
        model = _official(arch, weights_dir)
        if model is not None:
            return model
    if arch in PACKAGED:
        return presets.load(PACKAGED[arch])
    raise AssetError(f"{variant}: needs the upstream file of {OFFICIAL[arch]} under --weights-dir")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights-dir", type=Path, help="folder with the official checkpoints")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="assets/models folder")
    parser.add_argument(
        "--variants", nargs="+", choices=sorted(VARIANTS), default=list(DEFAULT_VARIANTS)
    )
    parser.add_argument("--with-prenet", action="store_true", help="also prenet_int8")
    parser.add_argument("--with-density", action="store_true", help="also mcodenet_fp16")
    parser.add_argument(
        "--data", type=Path, default=REPO / "examples", help="int8 calibration images (folder)"
    )
    parser.add_argument(
        "--qat-data",
        default="synthetic",
        help="QAT fine-tuning pairs: a paired dataset folder, or 'synthetic' (default)",
    )
    parser.add_argument(
        "--qat-steps", type=int, help="QAT fine-tuning steps (default: the model's QAT recipe)"
    )
    parser.add_argument(
        "--weights",
        type=Path,
        help="a .keras model to export instead (the variants of its architecture)",
    )
    parser.add_argument(
        "--quant",
        choices=("none", "fp16", "int8", "qat"),
        help="override every variant's quantization (the file names stay the app's)",
    )
    parser.add_argument("--tile", type=int, default=TILE, help="tile side (default 256)")
    args = parser.parse_args(argv)
    variants = list(args.variants)
    variants += [v for option, v in OPTIONAL_VARIANTS.items() if getattr(args, option)]
    variants = list(dict.fromkeys(variants))
    if args.weights is not None:
        try:
            found = _architecture(args.weights)
        except AssetError as exc:
            print(exc, file=sys.stderr)
            return 2
        if found not in {VARIANTS[v][0] for v in variants}:
            print(
                f"{args.weights}: a {found!r} model, but none of the variants "
                f"{', '.join(variants)} is one (choose them with --variants)",
                file=sys.stderr,
            )
            return 2
    tile = (args.tile, args.tile)
    failed = []
    for variant in variants:
        arch, file, quant = VARIANTS[variant]
        quant = args.quant or quant
        try:
            check_tile(arch, tile, variant)
            model = _model_for(variant, args.weights_dir, args.weights)
            descriptor = export_variant(
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
        print(f"{variant}: {file} ({size / 1024:.0f} KB, {descriptor['quantization']})")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
