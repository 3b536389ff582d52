"""The ``tfderain`` command line: ``derain``, ``density``, ``evaluate``, ``score``, ``convert``,
``train``, ``data`` (``pack``, ``info``), ``export`` (``savedmodel``, ``tflite``), ``models``,
``presets``.

Errors caused by the user's input (missing files, bad checkpoints, unknown models) are printed as
one line naming the file and the cause, never as a traceback. Exit codes: 0 success, 1 some inputs
failed (the rest were processed), 2 the command could not run at all.

Building the parser and ``--help`` do not load TensorFlow: the choices shown in the help are kept
here (tests check them against the library's own tuples), and each command imports what it needs
after parsing. TensorFlow's log lines are silenced unless ``-v``/``--verbose``
(:mod:`tfderain._quiet`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

import yaml

from tfderain import train_cli
from tfderain._args import add_output_arguments
from tfderain.data.layouts import LAYOUTS, SPLIT_ORDERS
from tfderain.export.options import (
    QAT_TARGETS,
    QUANTIZATIONS,
    TFLiteOptions,
    add_fine_tune_arguments,
)
from tfderain.metrics import PROTOCOLS

#: One line on what the tool does, above the list of commands in ``tfderain --help``.
DESCRIPTION = (
    "Single-image deraining with TensorFlow: derain photos, estimate rain density, convert "
    "official PyTorch checkpoints, evaluate, train and export models."
)


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["stages=4", "channels=16"]`` → ``{"stages": 4, "channels": 16}`` (values are YAML)."""
    config: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {item!r}")
        config[key.strip()] = yaml.safe_load(value)
    return config


def fourcc(text: str) -> str:
    """argparse type of ``--video-codec``: four printable ASCII characters (``mp4v``)."""
    if len(text) != 4 or not all(32 <= ord(c) < 127 for c in text):
        raise argparse.ArgumentTypeError(f"expected a four-character codec (fourcc), got {text!r}")
    return text


def _model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        "-m",
        help="registered architecture (tfderain models); not needed with a .keras file, which "
        "names its own (default: the bundled default model)",
    )
    parser.add_argument(
        "--weights", "-w", help="a converted .keras file, an official .pth or a preset name"
    )


def _resolve(args):
    """The model named by ``--model``/``--weights``; a ``.keras`` file names its architecture."""
    from tfderain import api

    weights, name = args.weights, args.model
    official = weights is not None and not str(weights).endswith(".keras")
    if official and name in (None, api.DEFAULT_MODEL):
        raise ValueError(
            f"{weights}: an official checkpoint needs --model NAME (see tfderain models)"
        )
    return api.resolve_model(name, weights)


def _load(args, **options):
    from tfderain import api, inference

    model = _resolve(args)
    return inference.Derainer(model, api.model_spec(model), **options)


def cmd_derain(args) -> int:
    from tfderain import inference

    derainer = _load(
        args,
        tile=args.tile,
        max_pixels=args.max_pixels,
        batch_size=args.batch_size,
        strength=args.strength,
    )
    report = inference.derain_files(
        args.inputs,
        args.output,
        derainer,
        overwrite=args.overwrite,
        progress=not args.quiet,
        jpeg_quality=args.jpeg_quality,
        video_codec=args.video_codec,
    )
    for path, note in report.notes:
        print(f"tfderain: note: {path}: {note}", file=sys.stderr)
    for path, cause in report.failed:
        print(f"tfderain: skipped {path}: {cause}", file=sys.stderr)
    images = len(report.written) - report.videos
    videos = f", {report.videos} video(s)" if report.videos else ""
    print(f"derained {images} image(s){videos}, {len(report.failed)} failed", file=sys.stderr)
    return 1 if report.failed else 0


def cmd_density(args) -> int:
    from tfderain import api, io
    from tfderain._keras import tf

    if args.model is None and args.weights is None:
        raise ValueError(f"density needs a density-aware model (--model); {api.density_models()}")
    if args.model not in (None, api.DEFAULT_MODEL):
        api.density_spec(args.model)  # a non-density model fails before weights are loaded
    estimator = api.DensityEstimator(_resolve(args))
    files, failed = io.find_images(args.inputs)
    done = 0
    for path in files:
        try:
            result = estimator.estimate(io.read_image(path).rgb)
        except (ValueError, OSError, tf.errors.OpError) as exc:
            failed.append((str(path), io.error_cause(exc, path)))
            continue
        print(f"{path}\t{result.value:.4f}\t{result.level}", flush=True)
        done += 1
    for path, cause in failed:
        print(f"tfderain: skipped {path}: {cause}", file=sys.stderr)
    print(f"estimated {done} image(s), {len(failed)} failed", file=sys.stderr)
    return 1 if failed else 0


class _ModelEntry(argparse.Action):
    """``--model``/``--weights`` of ``evaluate``, paired in the order given: each joins the latest
    model unless that one already has an option of its kind, else it starts the next model."""

    def __call__(self, parser, namespace, values, option_string=None):
        entries = [dict(e) for e in getattr(namespace, "entries", None) or ()]
        if entries and entries[-1][self.dest] is None:
            entries[-1][self.dest] = values
        else:
            entries.append({"model": None, "weights": None, self.dest: values})
        namespace.entries = entries
        setattr(namespace, self.dest, values)


def _summary(protocol: str, result) -> str:
    return (
        f"protocol {protocol}: {len(result.scores)} images, "
        f"PSNR {result.mean_psnr:.3f} dB, SSIM {result.mean_ssim:.4f}, "
        f"brightness off by {100 * result.brightness_error:.1f} %"
    )


def cmd_evaluate(args) -> int:
    entries = args.entries or [{"model": None, "weights": None}]
    if len(entries) > 1 or len(args.data) > 1:
        return _evaluate_table(args, entries)
    from tfderain import evaluation

    args.model, args.weights = entries[0]["model"], entries[0]["weights"]
    derainer = _load(args)
    protocol = args.protocol or derainer.spec.protocol
    result = evaluation.evaluate(
        derainer,
        args.data[0],
        protocol,
        save_dir=args.save_outputs,
        progress=not args.quiet,
        layout=args.layout,
        order=args.order,
    )
    for name, cause in result.failed:
        print(f"tfderain: skipped {name}: {cause}", file=sys.stderr)
    if args.csv:
        evaluation.write_csv(result, args.csv)
    print(_summary(protocol, result))
    return 1 if result.failed or not result.scores else 0


def _short_paths(paths: Sequence[str | None]) -> list[str | None]:
    """Each path's last components, as few as tell the distinct paths apart
    (``Rain100H/PReNet6/net_latest.pth`` and ``Rain100L/PReNet6/net_latest.pth``)."""
    from pathlib import PurePath

    parts = [PurePath(p).parts if p else None for p in paths]
    distinct = {q for q in parts if q}
    depth = 1
    while len({q[-depth:] for q in distinct}) < len(distinct) and depth < max(map(len, distinct)):
        depth += 1
    return [str(PurePath(*q[-depth:])) if q else None for q in parts]


def _labels(names: Sequence[str]) -> list[str]:
    """``names`` with repeats told apart by a ``#k`` suffix."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return out


def _evaluate_table(args, entries: list[dict]) -> int:
    """Every model on every dataset: a markdown table on stdout, optionally one CSV."""
    from pathlib import Path

    from tqdm import tqdm

    from tfderain import api, evaluation
    from tfderain.data.layouts import find_pairs

    data_labels = _labels([Path(d).name or str(d) for d in args.data])
    datasets = [
        (label, find_pairs(d, layout=args.layout, order=args.order))
        for label, d in zip(data_labels, args.data, strict=True)
    ]
    runs, problems, seen = [], 0, {}
    shown = _short_paths([e["weights"] for e in entries])
    for entry, weights_label in zip(entries, shown, strict=True):
        weights = entry["weights"]
        try:
            derainer = _load(argparse.Namespace(**entry))
        except (ValueError, OSError) as exc:
            print(f"tfderain: skipped model {weights or entry['model']}: {exc}", file=sys.stderr)
            problems += 1
            continue
        arch = derainer.spec.name if derainer.spec.name != "unregistered" else entry["model"]
        name = f"{arch} ({weights_label})" if weights else str(arch or api.DEFAULT_MODEL)
        seen[name] = seen.get(name, 0) + 1
        label = name if seen[name] == 1 else f"{name}#{seen[name]}"
        protocol = args.protocol or derainer.spec.protocol
        for data_label, pairs in datasets:
            save_dir = None
            if args.save_outputs:
                folder = label.replace(" (", "-").replace(")", "").replace("#", "-")
                save_dir = Path(args.save_outputs) / folder / data_label
            items = evaluation.score_pairs(derainer, pairs, protocol, save_dir)
            progress = tqdm(items, disable=args.quiet, desc=f"{label} on {data_label}", unit="img")
            result = evaluation.collect(progress, protocol)
            for pair, cause in result.failed:
                print(f"tfderain: skipped {pair} ({label}): {cause}", file=sys.stderr)
            problems += len(result.failed) + int(not result.scores)
            runs.append(evaluation.Run(label, data_label, result))
        del derainer  # one model in memory at a time
    if runs:
        print(evaluation.format_table(runs, forced=args.protocol))
    if args.csv and runs:
        evaluation.write_runs_csv(runs, args.csv)
    return 1 if problems or not runs else 0


def cmd_score(args) -> int:
    from tfderain import evaluation

    result = evaluation.score_predictions(
        args.pred,
        args.data,
        args.protocol,
        layout=args.layout,
        order=args.order,
        progress=not args.quiet,
    )
    for name, cause in result.failed:
        print(f"tfderain: skipped {name}: {cause}", file=sys.stderr)
    if args.csv:
        evaluation.write_csv(result, args.csv)
    print(_summary(args.protocol, result))
    return 1 if result.failed or not result.scores else 0


def cmd_convert(args) -> int:
    from tfderain import models
    from tfderain.convert import convert
    from tfderain.saving import save_model

    model = convert(args.arch, args.checkpoint, **parse_overrides(args.set))
    path = save_model(model, args.output)
    print(
        f"wrote {path} ({args.arch}, {model.count_params():,} parameters, "
        f"config {dict(models.identity(model).config)})"
    )
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
    from tfderain.export import export_savedmodel

    model = _resolve(args)
    path = export_savedmodel(model, args.output, overwrite=args.overwrite, version=args.version)
    print(f"wrote {path}")
    return 0


def cmd_export_tflite(args) -> int:
    from tfderain.export import export_tflite
    from tfderain.export.descriptor import descriptor_path
    from tfderain.export.tflite import qat_settings

    model = _resolve(args)
    options = TFLiteOptions(
        quant=args.quant,
        tile=None if args.dynamic else (args.tile, args.tile),
        representative=args.representative,
        qat_data=args.qat_data,
        qat_steps=args.qat_steps,
        qat_batch_size=args.qat_batch_size,
        qat_patch_size=args.qat_patch_size,
        qat_target=args.qat_target,
        qat_loss=args.qat_loss,
        qat_keep_float=tuple(p for p in (args.qat_keep_float or "").split(",") if p),
        uint8_io=args.uint8_io,
        seed=args.seed,
    )
    if args.quant == "qat":
        sizes = {"steps": args.qat_steps, "batch_size": args.qat_batch_size}
        fine_tune = qat_settings(model, **sizes, patch_size=args.qat_patch_size, tile=options.tile)
        print(f"QAT fine-tune: {fine_tune}", flush=True)
    path = export_tflite(model, args.output, options)
    print(f"wrote {path} ({path.stat().st_size:,} bytes) and {descriptor_path(path)}")
    return 0


def _add_export_parser(sub, common: argparse.ArgumentParser) -> None:
    export = sub.add_parser(
        "export",
        parents=[common],
        help="export for serving (SavedModel) or phones (TFLite)",
        description="Export a .keras file (its architecture is read from it), an official "
        "checkpoint (--model NAME --weights FILE.pth) or, with neither, the bundled default model.",
    )
    export_sub = export.add_subparsers(
        dest="export_command", required=True, metavar="FORMAT", title="formats"
    )
    p = export_sub.add_parser(
        "savedmodel",
        parents=[common],
        help="TF Serving SavedModel",
        description="Writes a SavedModel folder (OUTPUT, or OUTPUT/VERSION with --version) with "
        "the signatures serving_default, derain_uint8 and derain_image_bytes.",
    )
    _model_args(p)
    p.add_argument("-o", "--output", required=True, help="SavedModel folder (or its parent)")
    p.add_argument("--version", type=int, help="write to OUTPUT/VERSION (TF Serving layout)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    p.set_defaults(run=cmd_export_savedmodel)
    p = export_sub.add_parser(
        "tflite",
        parents=[common],
        help="TFLite file (+ <stem>.json descriptor), optionally quantized",
        description="Writes OUTPUT (.tflite) and its descriptor <stem>.json beside it (what an "
        "app needs to run the file: tile, halo, tensors and their quantization).",
    )
    _model_args(p)
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
    add_fine_tune_arguments(p)
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
    train_cli.run_from_args(args)
    return 0


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


def _add_data_parser(sub, common: argparse.ArgumentParser) -> None:
    data = sub.add_parser(
        "data", parents=[common], help="training data: pack into TFRecords, describe"
    )
    data_sub = data.add_subparsers(
        dest="data_command", required=True, metavar="ACTION", title="actions"
    )
    p = data_sub.add_parser(
        "pack",
        parents=[common],
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
        choices=SPLIT_ORDERS,
        help="halves of side-by-side files, left first",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing pack folder")
    p.set_defaults(run=cmd_data_pack)
    p = data_sub.add_parser(
        "info", parents=[common], help="layout, pairs, density labels and warnings"
    )
    p.add_argument("path", help="dataset folder, mix manifest or pack folder")
    p.set_defaults(run=cmd_data_info)


def _verbose_parent() -> argparse.ArgumentParser:
    """``-v/--verbose`` for every command (also accepted after the command's name)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,  # a sub-command must not reset the value given before it
        help="show TensorFlow's log lines (hidden by default)",
    )
    return common


def _dataset_args(parser: argparse.ArgumentParser) -> None:
    """How a paired test set is read (``evaluate`` and ``score``), and a quiet switch."""
    parser.add_argument("--layout", choices=LAYOUTS, help="dataset layout (default: detected)")
    parser.add_argument(
        "--order",
        choices=SPLIT_ORDERS,
        help="side-by-side files: which half is rainy (default: by dataset name)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    """The ``tfderain`` argument parser (building it does not import TensorFlow)."""
    from tfderain._version import __version__

    parser = argparse.ArgumentParser(
        prog="tfderain",
        description=DESCRIPTION,
        epilog="Run 'tfderain COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"tfderain {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show TensorFlow's log lines (hidden by default)",
    )
    common = _verbose_parent()
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")

    p = sub.add_parser(
        "derain",
        parents=[common],
        help="derain image files, folders, glob patterns or videos",
        description="Derain images of any size: images above --max-pixels run in overlapping "
        "tiles. EXIF (orientation reset to 1), ICC profile, XMP, DPI and PNG text are kept where "
        "the output format can hold them; a note names what was dropped. Videos (.mp4, .m4v, "
        ".mov, .avi, .mkv, .webm) are derained frame by frame at the same size and frame rate, "
        "without audio. Bad files are reported and skipped (exit status 1).",
    )
    p.add_argument("inputs", nargs="+", help="image files, folders, glob patterns or video files")
    p.add_argument("-o", "--output", required=True, help="output file (one input) or folder")
    _model_args(p)
    add_output_arguments(p)
    p.add_argument(
        "--video-codec",
        type=fourcc,
        metavar="FOURCC",
        help="codec of video outputs (default: mp4v for .mp4/.m4v/.mov/.mkv, MJPG for .avi, "
        "VP80 for .webm; FFV1 is lossless in .avi/.mkv)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=cmd_derain)

    p = sub.add_parser(
        "density",
        parents=[common],
        help="rain density of image files (density-aware models)",
        description="Print one line per image: file, density value in [0, 1] "
        "(on the model's own scale) and level (light, medium or heavy).",
    )
    p.add_argument("inputs", nargs="+", help="image files, folders or glob patterns")
    _model_args(p)
    p.set_defaults(run=cmd_density)

    p = sub.add_parser(
        "evaluate",
        parents=[common],
        help="PSNR/SSIM of models on paired test sets",
        description="Derain paired test sets and score the outputs. Repeat --model/--weights and "
        "--data to evaluate several models on several datasets: --model and --weights pair up "
        "in the order given (each joins the latest model unless that one already has an option "
        "of its kind, else it starts the next model; a .keras file needs no --model). One model "
        "on one dataset prints a summary line and writes a per-image CSV; more print a markdown "
        "table (a row per model, a column per dataset) and write one CSV row per model, dataset "
        "and image plus a '(mean)' row per model and dataset.",
    )
    p.set_defaults(entries=())
    p.add_argument(
        "--model",
        "-m",
        action=_ModelEntry,
        help="registered architecture (tfderain models); not needed with a .keras file, which "
        "names its own (default: the bundled default model); repeatable",
    )
    p.add_argument(
        "--weights",
        "-w",
        action=_ModelEntry,
        help="a converted .keras file or an official .pth; repeatable",
    )
    p.add_argument(
        "--data",
        required=True,
        action="append",
        help="dataset folder (layout auto-detected); repeatable",
    )
    p.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        help="A: PReNet's MATLAB statistics; B: MPRNet/Restormer evaluate_PSNR_SSIM.m; rgb: "
        "PSNR/SSIM on the RGB channels (default: each model's official protocol)",
    )
    p.add_argument("--csv", help="write per-image metrics to this CSV file")
    p.add_argument(
        "--save-outputs",
        help="also save the 8-bit outputs to this folder (several models or datasets: "
        "in MODEL-WEIGHTS/DATASET subfolders)",
    )
    _dataset_args(p)
    p.set_defaults(run=cmd_evaluate)

    p = sub.add_parser(
        "score",
        parents=[common],
        help="PSNR/SSIM of saved outputs (any method) on a paired test set",
        description="Score the images in --pred against the pairs of --data. A pair's "
        "prediction is PRED/<name>.<ext>, <name> being the stem of its rainy file, with any "
        "image extension. Missing, unreadable or mis-sized predictions are reported one line "
        "each and skipped (exit status 1).",
    )
    p.add_argument("--pred", required=True, help="folder of predicted (derained) 8-bit images")
    p.add_argument("--data", required=True, help="dataset folder (layout auto-detected)")
    p.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="A",
        help="A (default): PReNet's MATLAB statistics; B: MPRNet/Restormer "
        "evaluate_PSNR_SSIM.m; rgb: PSNR/SSIM on the RGB channels",
    )
    p.add_argument("--csv", help="write per-image metrics to this CSV file")
    _dataset_args(p)
    p.set_defaults(run=cmd_score)

    p = sub.add_parser(
        "convert", parents=[common], help="official PyTorch checkpoint → self-describing .keras"
    )
    p.add_argument("checkpoint", help="official .pth file (zip or legacy format)")
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
        "train",
        parents=[common],
        help="train a model from a YAML recipe (packaged ones by name)",
        description="Train with model.fit from a recipe; the run folder (default "
        "runs/<model>) ends with model.keras.",
        epilog=train_cli.recipes_epilog(),
    )
    train_cli.add_arguments(p)
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("models", parents=[common], help="list registered architectures")
    p.set_defaults(run=cmd_models)
    p = sub.add_parser(
        "presets",
        parents=[common],
        help="named trained weights: list, verify, clear the cache",
        description="Named trained models (ARCH:WEIGHTS): the upstream file, its sha256 and "
        "license, and the scores measured here. Use a name with --model or --weights.",
    )
    p.add_argument("names", nargs="*", help="only these presets")
    p.add_argument("--json", action="store_true", help="every recorded fact, as JSON")
    p.add_argument("--verify", action="store_true", help="re-hash the cached downloads")
    p.add_argument("--clear", action="store_true", help="remove cached downloads and models")
    p.set_defaults(run=cmd_presets)
    _add_data_parser(sub, common)
    _add_export_parser(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tfderain`` console script."""
    args = build_parser().parse_args(argv)
    from tfderain import _quiet

    with _quiet.tensorflow_logs(verbose=args.verbose):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    """Run the parsed command; a user's error is one line on stderr and exit status 2."""
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
