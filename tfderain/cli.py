"""The ``tfderain`` command line: ``derain``, ``density``, ``evaluate``, ``convert``, ``train``,
``data`` (``pack``, ``info``), ``export`` (``savedmodel``, ``tflite``), ``models``, ``presets``.

Errors caused by the user's input (missing files, bad checkpoints, unknown models) are printed as
one line naming the file and the cause, never as a traceback. Exit codes: 0 success, 1 some inputs
failed (the rest were processed), 2 the command could not run at all.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

import yaml


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["stages=4", "channels=16"]`` → ``{"stages": 4, "channels": 16}`` (values are YAML)."""
    config: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {item!r}")
        config[key.strip()] = yaml.safe_load(value)
    return config


def non_negative_int(text: str) -> int:
    """argparse type of a seed: a whole number ≥ 0 (argparse names the option on error)."""
    if not text.isdecimal():  # also rejects "-1"
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return int(text)


def _model_args(parser: argparse.ArgumentParser, required: bool = False) -> None:
    parser.add_argument(
        "--model",
        "-m",
        required=required,
        help="registered architecture (default: the bundled default model)",
    )
    parser.add_argument(
        "--weights", "-w", help="a converted .keras file, an official .pth or a preset name"
    )


def _load(args):
    from tfderain import api, inference

    model = api.resolve_model(args.model, args.weights)
    return inference.Derainer(model, api.model_spec(model))


def cmd_derain(args) -> int:
    from tfderain import inference

    derainer = _load(args)
    report = inference.derain_files(
        args.inputs, args.output, derainer, overwrite=args.overwrite, progress=not args.quiet
    )
    for path, cause in report.failed:
        print(f"tfderain: skipped {path}: {cause}", file=sys.stderr)
    print(f"derained {len(report.written)} image(s), {len(report.failed)} failed", file=sys.stderr)
    return 1 if report.failed else 0


def cmd_density(args) -> int:
    from tfderain import api, io
    from tfderain._keras import tf

    if args.model not in (None, api.DEFAULT_MODEL):
        api.density_spec(args.model)  # a non-density model fails before weights are loaded
    estimator = api.DensityEstimator(api.resolve_model(args.model, args.weights))
    files, failed = io.find_images(args.inputs)
    done = 0
    for path in files:
        try:
            result = estimator.estimate(io.read_image(path).rgb)
        except (ValueError, OSError, tf.errors.OpError) as exc:
            failed.append((str(path), _cause(exc, path)))
            continue
        print(f"{path}\t{result.value:.4f}\t{result.level}", flush=True)
        done += 1
    for path, cause in failed:
        print(f"tfderain: skipped {path}: {cause}", file=sys.stderr)
    print(f"estimated {done} image(s), {len(failed)} failed", file=sys.stderr)
    return 1 if failed else 0


def _cause(exc: BaseException, path) -> str:
    """One line for a skipped file; an image error's own path is not repeated."""
    from tfderain.io import ImageError

    if isinstance(exc, ImageError) and exc.path == str(path):
        return exc.cause
    return " ".join((str(exc) or type(exc).__name__).split())


def cmd_evaluate(args) -> int:
    from tfderain import evaluation

    derainer = _load(args)
    result = evaluation.evaluate(
        derainer,
        args.data,
        args.protocol,
        save_dir=args.save_outputs,
        progress=not args.quiet,
        layout=args.layout,
        order=args.order,
    )
    for name, cause in result.failed:
        print(f"tfderain: skipped {name}: {cause}", file=sys.stderr)
    if args.csv:
        evaluation.write_csv(result, args.csv)
    print(
        f"protocol {args.protocol}: {len(result.scores)} images, "
        f"PSNR {result.mean_psnr:.3f} dB, SSIM {result.mean_ssim:.4f}"
    )
    return 1 if result.failed or not result.scores else 0


def cmd_convert(args) -> int:
    from tfderain.convert import convert
    from tfderain.saving import save_model

    model = convert(args.arch, args.checkpoint, **parse_overrides(args.set))
    path = save_model(model, args.output)
    print(
        f"wrote {path} ({args.arch}, {model.count_params():,} parameters, "
        f"config {model._tfderain_config})"
    )  # noqa: SLF001
    return 0


def cmd_models(args) -> int:
    from tfderain import models

    for name in models.names():
        spec = models.spec(name)
        print(f"{name:12s} {spec.description}  outputs: {', '.join(spec.outputs)}")
    return 0


def cmd_presets(args) -> int:
    import json

    from tfderain import presets

    names = args.names or None
    if args.clear:
        print(f"removed {presets.clear(names):,} bytes from {presets.home()}")
        return 0
    if args.verify:
        report = presets.verify(names)
        for name, status in report.items():
            print(f"{name}: {status}")
        return 1 if any(s.startswith("corrupt") for s in report.values()) else 0
    wanted = None if names is None else {presets.get(n).name for n in names}
    rows = [r for r in presets.describe() if wanted is None or r["name"] in wanted]
    print(json.dumps(rows, indent=1) if args.json else presets.format_table(rows))
    return 0


def cmd_export_savedmodel(args) -> int:
    from tfderain import api
    from tfderain.export import export_savedmodel

    model = api.resolve_model(args.model, args.weights)
    directory = args.output
    if args.version is not None:
        directory = os.path.join(directory, str(args.version))
    path = export_savedmodel(model, directory, overwrite=args.overwrite)
    print(f"wrote {path}")
    return 0


def cmd_export_tflite(args) -> int:
    from tfderain import api
    from tfderain.export import export_tflite
    from tfderain.export.spec import spec_path
    from tfderain.export.tflite import qat_settings

    model = api.resolve_model(args.model, args.weights)
    tile = None if args.dynamic else (args.tile, args.tile)
    if args.quant == "qat":
        sizes = {"steps": args.qat_steps, "batch_size": args.qat_batch_size}
        fine_tune = qat_settings(model, **sizes, patch_size=args.qat_patch_size, tile=tile)
        print(f"QAT fine-tune: {fine_tune}", flush=True)
    path = export_tflite(
        model,
        args.output,
        quant=args.quant,
        tile=tile,
        representative=args.representative,
        qat_data=args.qat_data,
        qat_steps=args.qat_steps,
        qat_batch_size=args.qat_batch_size,
        qat_patch_size=args.qat_patch_size,
        qat_target=args.qat_target,
        qat_loss=args.qat_loss,
        qat_keep_float=[p for p in (args.qat_keep_float or "").split(",") if p],
        uint8_io=args.uint8_io,
        seed=args.seed,
    )
    print(f"wrote {path} ({path.stat().st_size:,} bytes) and {spec_path(path)}")
    return 0


def _add_export_parser(sub) -> None:
    from tfderain.export.tflite import (
        DEFAULT_QAT_BATCH_SIZE,
        DEFAULT_QAT_PATCH_SIZE,
        DEFAULT_QAT_STEPS,
        QAT_LOSSES,
        QAT_TARGETS,
        QUANTIZATIONS,
    )

    export = sub.add_parser("export", help="export for serving (SavedModel) or phones (TFLite)")
    export_sub = export.add_subparsers(dest="export_command", required=True)
    p = export_sub.add_parser("savedmodel", help="TF Serving SavedModel")
    _model_args(p, required=True)
    p.add_argument("-o", "--output", required=True, help="SavedModel folder (or its parent)")
    p.add_argument("--version", type=int, help="write to OUTPUT/VERSION (TF Serving layout)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    p.set_defaults(run=cmd_export_savedmodel)
    p = export_sub.add_parser(
        "tflite",
        help="TFLite file (+ <stem>.json model spec), optionally quantized",
        description="Writes OUTPUT (.tflite) and its model spec <stem>.json beside it.",
    )
    _model_args(p, required=True)
    p.add_argument(
        "--quant",
        choices=QUANTIZATIONS,
        default="none",
        help="none (float32), fp16, dynamic (int8 weights), int8 (full-integer PTQ), "
        "qat (quantization-aware fine-tune, then int8)",
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument("--tile", type=int, default=256, help="fixed square input size")
    size.add_argument("--dynamic", action="store_true", help="dynamic input size [1, H, W, 3]")
    p.add_argument(
        "--representative",
        default="synthetic",
        help="int8 calibration images: a folder, or 'synthetic' (default)",
    )
    recipe = "default: the model's QAT recipe, else"
    p.add_argument(
        "--qat-steps", type=int, help=f"QAT fine-tuning steps ({recipe} {DEFAULT_QAT_STEPS})"
    )
    p.add_argument(
        "--qat-batch-size",
        type=int,
        help=f"QAT patches per step ({recipe} {DEFAULT_QAT_BATCH_SIZE}; "
        "fewer if the fine-tune runs out of RAM)",
    )
    p.add_argument(
        "--qat-patch-size",
        type=int,
        help=f"side of the QAT patches ({recipe} {DEFAULT_QAT_PATCH_SIZE}; "
        "memory grows with its square)",
    )
    p.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="seed of the int8 calibration crops and the QAT fine-tuning stream (default 0)",
    )
    p.add_argument(
        "--qat-data",
        default="synthetic",
        help="QAT pairs: a dataset folder, or 'synthetic' rain (default)",
    )
    p.add_argument(
        "--qat-target",
        choices=QAT_TARGETS,
        default="teacher",
        help="QAT target: the float model's output (teacher, default) or the clean images",
    )
    p.add_argument(
        "--qat-loss",
        choices=QAT_LOSSES,
        default="l1",
        help="QAT fine-tuning loss against the target (default l1)",
    )
    p.add_argument(
        "--qat-keep-float",
        metavar="PATTERNS",
        help="QAT: comma-separated layer name patterns left in float32 (e.g. conv,stage*_out)",
    )
    p.add_argument(
        "--uint8-io", action="store_true", help="uint8 input/output tensors (int8 and qat only)"
    )
    p.add_argument("-o", "--output", required=True, help="output .tflite file")
    p.set_defaults(run=cmd_export_tflite)


def cmd_train(args) -> int:
    from tfderain import training

    return training.main(args.rest)


def cmd_data_pack(args) -> int:
    from tfderain.data import tfrecord

    if not any(map(os.path.exists, args.source)):
        print(f"tfderain: error: {args.source[0]}: no such file or directory", file=sys.stderr)
        return 2
    source = args.source[0] if len(args.source) == 1 else args.source

    def skipped(path: str, cause: str) -> None:
        print(f"tfderain: skipped {path}: {cause}", file=sys.stderr)

    report = tfrecord.pack(
        source,
        args.output,
        shards=args.shards,
        layout=args.layout,
        order=args.order,
        overwrite=args.overwrite,
        on_skip=skipped,
    )
    print(
        f"packed {report.count} pair(s) into {report.folder} ({args.shards} shard(s)), "
        f"{len(report.skipped)} skipped",
        file=sys.stderr,
    )
    return 1 if report.skipped else 0


def cmd_data_info(args) -> int:
    from tfderain.data import tfrecord

    info = tfrecord.describe(args.path)
    print(f"layout: {info['layout']}")
    print(f"pairs: {info['count']}")
    print("density: " + ", ".join(f"{k} {v}" for k, v in info["density"].items()))
    print(f"warnings: {len(info['warnings'])}")
    for line in info["warnings"]:
        print(f"  {line}")
    return 0


def _add_data_parser(sub) -> None:
    from tfderain.data.layouts import LAYOUTS

    data = sub.add_parser("data", help="training data: pack into TFRecords, describe")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    p = data_sub.add_parser(
        "pack",
        help="pack a paired dataset into TFRecord shards",
        description="Exit codes: 0 all pairs packed, 1 some bad pairs skipped, 2 nothing "
        "packed or the source is missing.",
    )
    p.add_argument("source", nargs="+", help="dataset folder(s) or a mix manifest (.yaml/.txt)")
    p.add_argument("-o", "--output", required=True, help="pack folder to create")
    p.add_argument("--shards", type=int, default=1, help="number of .tfrecord files")
    p.add_argument("--layout", choices=LAYOUTS, help="layout instead of detection")
    p.add_argument(
        "--order",
        choices=("rainy|clean", "clean|rainy"),
        help="halves of side-by-side files, left first",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing pack folder")
    p.set_defaults(run=cmd_data_pack)
    p = data_sub.add_parser("info", help="layout, pairs, density labels and warnings")
    p.add_argument("path", help="dataset folder, mix manifest or pack folder")
    p.set_defaults(run=cmd_data_info)


def build_parser() -> argparse.ArgumentParser:
    from tfderain import __version__
    from tfderain.data import layouts

    parser = argparse.ArgumentParser(prog="tfderain", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"tfderain {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("derain", help="derain image files, folders or glob patterns")
    p.add_argument("inputs", nargs="+")
    p.add_argument("-o", "--output", required=True, help="output file (one input) or folder")
    _model_args(p)
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=cmd_derain)

    p = sub.add_parser(
        "density",
        help="rain density of image files (density-aware models)",
        description="Print one line per image: file, density value in [0, 1] "
        "(on the model's own scale) and level (light, medium or heavy).",
    )
    p.add_argument("inputs", nargs="+", help="image files, folders or glob patterns")
    _model_args(p)
    p.set_defaults(run=cmd_density)

    p = sub.add_parser("evaluate", help="PSNR/SSIM on a paired test set")
    _model_args(p)
    p.add_argument("--data", required=True, help="dataset folder (layout auto-detected)")
    p.add_argument(
        "--protocol",
        choices=("A", "B"),
        default="A",
        help="A: PReNet's MATLAB statistics; B: MPRNet/Restormer evaluate_PSNR_SSIM.m",
    )
    p.add_argument("--csv", help="write per-image metrics to this CSV file")
    p.add_argument("--save-outputs", help="also save the 8-bit outputs to this folder")
    p.add_argument("--layout", choices=layouts.LAYOUTS, help="dataset layout (default: detected)")
    p.add_argument(
        "--order",
        choices=layouts.SPLIT_ORDERS,
        help="side-by-side files: which half is rainy (default: by dataset name)",
    )
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(run=cmd_evaluate)

    p = sub.add_parser("convert", help="official PyTorch checkpoint → self-describing .keras")
    p.add_argument("checkpoint")
    p.add_argument("--arch", required=True, help="registered architecture of the checkpoint")
    p.add_argument("-o", "--output", required=True, help="output .keras file")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config values the checkpoint cannot tell (e.g. stages=6)",
    )
    p.set_defaults(run=cmd_convert)

    p = sub.add_parser(
        "train", help="train with a YAML config (see training/configs)", add_help=False
    )
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("models", help="list registered architectures")
    p.set_defaults(run=cmd_models)
    p = sub.add_parser("presets", help="named official weights: list, verify, clear the cache")
    p.add_argument("names", nargs="*", help="only these presets")
    p.add_argument("--json", action="store_true", help="every recorded fact, as JSON")
    p.add_argument("--verify", action="store_true", help="re-hash the cached downloads")
    p.add_argument("--clear", action="store_true", help="remove cached downloads and models")
    p.set_defaults(run=cmd_presets)
    _add_data_parser(sub)
    _add_export_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tfderain`` console script."""
    args = build_parser().parse_args(argv)
    from tfderain.convert import ConversionError, PthFormatError
    from tfderain.io import ImageError
    from tfderain.presets import PresetError
    from tfderain.saving import ModelFileError

    try:
        return args.run(args)
    except (
        ConversionError,
        PthFormatError,
        ImageError,
        ModelFileError,
        PresetError,
        ValueError,
        FileNotFoundError,
    ) as exc:
        print(f"tfderain: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tfderain: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
