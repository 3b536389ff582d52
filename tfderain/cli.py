"""The ``tfderain`` command line: ``derain``, ``density``, ``evaluate``, ``convert``, ``train``,
``models``.

Errors caused by the user's input (missing files, bad checkpoints, unknown models) are printed as
one line naming the file and the cause, never as a traceback. Exit codes: 0 success, 1 some inputs
failed (the rest were processed), 2 the command could not run at all.
"""

from __future__ import annotations

import argparse
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


def _model_args(parser: argparse.ArgumentParser, required: bool = False) -> None:
    parser.add_argument("--model", "-m", required=required,
                        help="registered architecture (default: the bundled default model)")
    parser.add_argument("--weights", "-w", help="a converted .keras file or an official .pth")


def _load(args):
    from tfderain import api, inference

    model = api.resolve_model(args.model, args.weights)
    return inference.Derainer(model, api.model_spec(model))


def cmd_derain(args) -> int:
    from tfderain import inference

    derainer = _load(args)
    report = inference.derain_files(args.inputs, args.output, derainer,
                                    overwrite=args.overwrite, progress=not args.quiet)
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
    result = evaluation.evaluate(derainer, args.data, args.protocol, save_dir=args.save_outputs,
                                 progress=not args.quiet)
    for name, cause in result.failed:
        print(f"tfderain: skipped {name}: {cause}", file=sys.stderr)
    if args.csv:
        evaluation.write_csv(result, args.csv)
    print(f"protocol {args.protocol}: {len(result.scores)} images, "
          f"PSNR {result.mean_psnr:.3f} dB, SSIM {result.mean_ssim:.4f}")
    return 1 if result.failed or not result.scores else 0


def cmd_convert(args) -> int:
    from tfderain.convert import convert
    from tfderain.saving import save_model

    model = convert(args.arch, args.checkpoint, **parse_overrides(args.set))
    path = save_model(model, args.output)
    print(f"wrote {path} ({args.arch}, {model.count_params():,} parameters, "
          f"config {model._tfderain_config})")  # noqa: SLF001
    return 0


def cmd_models(args) -> int:
    from tfderain import models

    for name in models.names():
        spec = models.spec(name)
        print(f"{name:12s} {spec.description}  outputs: {', '.join(spec.outputs)}")
    return 0


def cmd_train(args) -> int:
    from tfderain import training

    return training.main(args.rest)


def build_parser() -> argparse.ArgumentParser:
    from tfderain import __version__

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

    p = sub.add_parser("density", help="rain density of image files (density-aware models)",
                       description="Print one line per image: file, density value in [0, 1] "
                       "(on the model's own scale) and level (light, medium or heavy).")
    p.add_argument("inputs", nargs="+", help="image files, folders or glob patterns")
    _model_args(p)
    p.set_defaults(run=cmd_density)

    p = sub.add_parser("evaluate", help="PSNR/SSIM on a paired test set")
    _model_args(p)
    p.add_argument("--data", required=True, help="dataset folder (layout auto-detected)")
    p.add_argument("--protocol", choices=("A", "B"), default="A",
                   help="A: PReNet's MATLAB statistics; B: MPRNet/Restormer evaluate_PSNR_SSIM.m")
    p.add_argument("--csv", help="write per-image metrics to this CSV file")
    p.add_argument("--save-outputs", help="also save the 8-bit outputs to this folder")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(run=cmd_evaluate)

    p = sub.add_parser("convert", help="official PyTorch checkpoint → self-describing .keras")
    p.add_argument("checkpoint")
    p.add_argument("--arch", required=True, help="registered architecture of the checkpoint")
    p.add_argument("-o", "--output", required=True, help="output .keras file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config values the checkpoint cannot tell (e.g. stages=6)")
    p.set_defaults(run=cmd_convert)

    p = sub.add_parser("train", help="train with a YAML config (see training/configs)",
                       add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("models", help="list registered architectures")
    p.set_defaults(run=cmd_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tfderain`` console script."""
    args = build_parser().parse_args(argv)
    from tfderain.convert import ConversionError, PthFormatError
    from tfderain.io import ImageError
    from tfderain.saving import ModelFileError

    try:
        return args.run(args)
    except (ConversionError, PthFormatError, ImageError, ModelFileError, ValueError,
            FileNotFoundError) as exc:
        print(f"tfderain: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tfderain: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
