"""``python -m tfderain.beam derain|evaluate …``: the Beam transforms from the command line.

The model options are those of ``tfderain derain``/``evaluate`` (``--model``, ``--weights``,
tiling); every option this parser does not know is one of Beam's pipeline options
(``--runner``, ``--direct_num_workers``, ``--direct_running_mode``, ``--project``,
``--temp_location``, ``--sdk_container_image`` …). Exit codes: 0 every image done, 1 some inputs
failed (the rest were processed; see the manifest), 2 the pipeline could not be built.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from tfderain._args import add_output_arguments

#: Runners whose workers run on this machine (and so can read its files).
LOCAL_RUNNERS = (None, "DirectRunner", "direct", "PrismRunner", "prism")


def _model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        "-m",
        help="registered architecture, or a preset name (default: the bundled default model)",
    )
    parser.add_argument(
        "--weights", "-w", help="a .keras file (any Beam filesystem), an official .pth or a preset"
    )
    parser.add_argument(
        "--model-staging",
        help="folder URI the workers can read, where a local model file is copied "
        "(default for remote runners: --temp_location; local runners get it with the pipeline)",
    )
    parser.add_argument(
        "--large-model",
        action="store_true",
        help="one model copy per machine, shared by its worker processes",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show TensorFlow's log lines")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (Beam's pipeline options are left over for Beam)."""
    parser = argparse.ArgumentParser(
        prog="python -m tfderain.beam",
        description="Derain or evaluate on Apache Beam. Options not listed here are Beam "
        "pipeline options (--runner, --direct_num_workers, --temp_location, …).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("derain", help="derain image files into a folder, with a JSONL manifest")
    p.add_argument("inputs", nargs="+", help="image files, folders or glob patterns (any URI)")
    p.add_argument("-o", "--output", required=True, help="output folder (any URI)")
    _model_args(p)
    add_output_arguments(p)
    p.add_argument("--suffix", default="", help="added to each output's file stem")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="derain again and replace existing outputs (default: keep them, rows 'skipped')",
    )
    p.add_argument("--manifest", help="JSONL manifest path (default OUTPUT/manifest.jsonl)")

    p = sub.add_parser("evaluate", help="PSNR/SSIM of a paired test set")
    p.add_argument(
        "--data", required=True, help="local dataset folder, or a CSV of rainy,clean URIs"
    )
    p.add_argument("-o", "--output", required=True, help="folder for scores.jsonl and summary.json")
    _model_args(p)
    p.add_argument("--protocol", choices=("A", "B"), default="A")
    p.add_argument("--layout", help="dataset layout (default: detected)")
    p.add_argument("--order", help="side-by-side files: which half is rainy")
    return parser


def _staging(args, options) -> str | None:
    if args.model_staging:
        return args.model_staging
    everything = options.get_all_options(drop_default=False, retain_unknown_options=True)
    if everything.get("runner") in LOCAL_RUNNERS:
        return None
    return everything.get("temp_location") or everything.get("staging_location")


def _counters(result) -> dict[str, int]:
    from apache_beam.metrics.metric import MetricsFilter

    from tfderain.beam.transforms import NAMESPACE

    found = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]
    totals: dict[str, int] = {}
    for counter in found:
        name = counter.key.metric.name
        totals[name] = totals.get(name, 0) + (counter.committed or 0)
    return totals


def run(argv: Sequence[str] | None = None) -> int:
    """Parse, build and run the pipeline; the exit status (see the module docstring)."""
    args, beam_args = build_parser().parse_known_args(argv)
    from tfderain import _quiet

    with _quiet.tensorflow_logs(verbose=args.verbose):
        from tfderain.beam import model

        presets = model._presets()
        errors = (ValueError, OSError) + ((presets.PresetError,) if presets else ())
        try:
            return _run(args, beam_args)
        except errors as exc:
            print(f"tfderain: error: {exc}", file=sys.stderr)
            return 2


def _run(args, beam_args: list[str]) -> int:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from tfderain.beam import model as beam_model
    from tfderain.beam import transforms

    if not args.verbose and not any(
        a.startswith("--default_sdk_harness_log_level") for a in beam_args
    ):
        beam_args = [*beam_args, "--default_sdk_harness_log_level=WARNING"]
    options = PipelineOptions(beam_args)
    ref = beam_model.model_ref(args.model, args.weights, staging=_staging(args, options))
    if args.command == "derain":
        handler = beam_model.DerainModelHandler(
            ref,
            tile=args.tile,
            max_pixels=args.max_pixels,
            batch_size=args.batch_size,
            strength=args.strength,
            large_model=args.large_model,
        )
        transform = transforms.DerainImages(
            args.inputs,
            args.output,
            handler,
            suffix=args.suffix,
            overwrite=args.overwrite,
            manifest=args.manifest,
            jpeg_quality=args.jpeg_quality,
        )
    else:
        handler = beam_model.ScoreModelHandler(
            ref, protocol=args.protocol, large_model=args.large_model
        )
        transform = transforms.EvaluatePairs(
            args.data, args.output, handler, layout=args.layout, order=args.order
        )
    pipeline = beam.Pipeline(options=options)
    _ = pipeline | transform
    result = pipeline.run()
    result.wait_until_finish()
    counts = _counters(result)
    if args.command == "derain":
        failed = counts.get("images_failed", 0) + counts.get("inputs_unmatched", 0)
        print(
            f"derained {counts.get('images_written', 0)} image(s), "
            f"{counts.get('images_skipped', 0)} kept from an earlier run, {failed} failed; "
            f"manifest {transform.manifest}",
            file=sys.stderr,
        )
        return 1 if failed else 0
    from tfderain.beam import storage

    summary = json.loads(storage.read_bytes(storage.join(transform.output, transforms.SUMMARY)))
    psnr, ssim = summary["mean_psnr"], summary["mean_ssim"]
    means = f"PSNR {psnr:.3f} dB, SSIM {ssim:.4f}" if summary["images"] else "no scores"
    print(f"protocol {summary['protocol']}: {summary['images']} images, {means}")
    return 1 if summary["failed"] or not summary["images"] else 0


if __name__ == "__main__":
    sys.exit(run())
