"""Build TFLite files for the model zoo and write their report (``export/REPORT.md``).

For every selected model and format: file size, operator set, Flex-free, max abs error of the
``derained`` output against the Keras model (first test image), PSNR on a paired test set
(protocol A, scored by :mod:`tfderain.evaluation` through the file's
:class:`~tfderain.export.runtime.WholeImageDerainer`: 8-bit outputs by the model's official
rule, truncated for PReNet as its test script does) and the median LiteRT latency of one
320×480 image with 2 threads (rounded up to the model's size multiple: CRDNet's classifier
takes 512×512 only). Models are the paper configs, with their official weights where a preset
has a copy at hand (:func:`official_preset`: the first preset of the architecture, in the order
of :data:`tfderain.presets.PRESETS`, whose upstream file is in ``../shared/weights``), else
random weights, and the PSNR column says so. QAT fine-tunes on synthetic rain (never on the
test set).

Models for phones (:attr:`tfderain.models.ModelSpec.phone`) get every format; larger ones
``none``, ``fp16`` and ``dynamic`` only. Files are exported with a dynamic input size (so the
test images run whole, whatever their orientation); latency resizes that input to 320×480.

Runs subsets and merges them into the existing report: a new row replaces the row of the same
model, format and CPU; rows of other models, formats or CPUs are kept::

    python export/report.py --models prenet --formats none,fp16,dynamic,int8,qat
    python export/report.py --models prenet,pcnet --formats none,int8,qat --time-limit 3600

``--time-limit`` (seconds) stops starting new builds once exceeded; rows not built are listed
as skipped. ``--keep DIR`` keeps the built files (``<model>_<format>.tflite`` and their
descriptors) for a closer look, e.g. with :func:`tfderain.export.flatbuffer.operators`; with
``--reuse`` a later run measures the files already in DIR instead of building them again. Each
kept file has a build record beside it (``<model>_<format>.build.json``: weights, and for
int8/QAT the seed, the int8 calibration images and the QAT fine-tune); a file whose record does
not match the run's options, or has none, is built again (delete a file to rebuild it anyway).
The report's markdown (columns, header, QAT targets, merging rows) is
:mod:`tfderain.export.report_table`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tfderain import _machine, evaluation, models, presets
from tfderain.data.layouts import Pair, find_pairs
from tfderain.export.descriptor import write_json_atomically
from tfderain.export.flatbuffer import float_operators, is_flex_free, operators
from tfderain.export.options import (
    DEFAULT_CALIBRATION_SAMPLES,
    QUANTIZATIONS,
    QATSettings,
    TFLiteOptions,
    add_fine_tune_arguments,
)
from tfderain.export.report_table import (
    merge,
    read_rows,
    write_report,
)
from tfderain.export.runtime import (
    TFLiteModel,
    WholeImageDerainer,
    keras_reference,
    latencies_side_by_side,
)
from tfderain.export.tflite import export_tflite, qat_settings

#: ``(weights file or preset name, architecture) → model``: how ``--weights`` files load
#: (:func:`tfderain.api.load_model`, passed in by ``export/report.py``).
LoadModel = Callable[[str, str], Any]

#: Where the report goes and where ``../shared`` is, relative to the repository root (the
#: working directory of the documented commands; ``export/report.py`` passes absolute ones).
DEFAULT_OUTPUT = Path("export") / "REPORT.md"
DEFAULT_SHARED = Path("..") / "shared"
#: Every format, in the report's order.
ALL_FORMATS = QUANTIZATIONS
#: The formats of models too large for phones.
FLOAT_FORMATS = ("none", "fp16", "dynamic")
#: QAT steps of random-weight models (their fine-tune only shows that the export works).
RANDOM_QAT = 10
LATENCY_SHAPE = (320, 480)
#: CPU flags (as /proc/cpuinfo spells them) that decide int8 against float32 speed: vector width
#: and 8-bit dot-product instructions (x86 VNNI / AMX, ARM dotprod / i8mm).
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")


def cpu_summary(cpu: _machine.CPU | None = None) -> str:
    """The CPU (this machine's by default) and its :data:`CPU_FLAGS`, e.g. ``AMD EPYC (avx2)``."""
    cpu = cpu or _machine.cpu()
    if not cpu.described:
        return cpu.name
    return f"{cpu.name} ({' '.join(cpu.having(CPU_FLAGS)) or 'no SIMD flags'})"


# ------------------------------------------------------------------------------- the models


def official_preset(arch: str, weights_dir: Path) -> tuple[presets.Preset, Path] | None:
    """The official weights of ``arch`` the report uses, and their file: the first preset of
    that architecture in :data:`tfderain.presets.PRESETS` whose upstream file has a copy in
    ``weights_dir`` (:func:`tfderain.presets.local_copy`); ``None`` when none has one."""
    for preset in presets.PRESETS.values():
        if preset.arch == arch:
            copy = presets.local_copy(preset, weights_dir)
            if copy is not None:
                return preset, copy
    return None


def load(
    name: str, weights: dict[str, str], weights_dir: Path, load_model: LoadModel | None
) -> tuple[Any, str]:
    """(model, weights label): the ``--weights`` file of ``name``, else its official weights
    (:func:`official_preset`, converted and hash-checked by :func:`tfderain.presets.convert_file`),
    else a random initialisation."""
    if name in weights:
        if load_model is None:
            raise ValueError("--weights needs a model loader (run export/report.py)")
        return load_model(weights[name], name), f"trained ({Path(weights[name]).name})"
    found = official_preset(name, weights_dir)
    if found is not None:
        preset, copy = found
        return presets.convert_file(preset, copy), f"official ({preset.name})"
    return models.build(name), "random"


def formats_for(name: str, wanted: Sequence[str]) -> list[str]:
    """The ``wanted`` formats model ``name`` gets: all for a model for phones, else the float
    ones (:data:`FLOAT_FORMATS`)."""
    if models.spec(name).phone:
        return list(wanted)
    return [f for f in wanted if f in FLOAT_FORMATS]


# ----------------------------------------------------------------------------- row contents


def qat_setup(settings: QATSettings, loss: str, keep_float: list[str]) -> list[str]:
    """The *setup* cell's words for a QAT row: steps, patches per step and their side when not
    the exporter's defaults, the loss when not L1, and the layers left in float32."""
    default = QATSettings()
    batch, patch = settings.batch_size, settings.patch_size
    words = f"{settings.steps} QAT steps"
    if batch != default.batch_size:
        words += f" of {batch} patch{'es' if batch > 1 else ''}"
    if patch != default.patch_size:
        words += f"{'' if batch != default.batch_size else ' of patches'} of {patch}×{patch}"
    words += f", {loss} loss" if loss != "l1" else ""
    return [words] + ([f"float32 layers {' '.join(keep_float)}"] if keep_float else [])


def row_setup(
    args: argparse.Namespace,
    fmt: str,
    pairs: int,
    settings: QATSettings,
    keep_float: list[str],
    shape: tuple[int, int],
) -> list[str]:
    """The *setup* cell of a row: the test pairs (none for random weights), the QAT setup, the
    seed of the calibration crops and fine-tuning stream when not 0, and the latency shape
    when not :data:`LATENCY_SHAPE`."""
    setup = [f"{pairs} test pairs"] if pairs else []
    if fmt == "qat":
        setup += qat_setup(settings, args.qat_loss, keep_float)
    if fmt in ("int8", "qat") and args.seed:
        setup.append(f"seed {args.seed}")
    if shape != LATENCY_SHAPE:
        setup.append(f"latency at {shape[0]}×{shape[1]}")
    return setup


def fine_tune(args: argparse.Namespace, name: str, random_weights: bool) -> QATSettings:
    """The QAT fine-tune of model ``name``: the sizes given on the command line, else the
    model's recipe, else the exporter's defaults; at most :data:`RANDOM_QAT` steps for random
    weights."""
    settings = qat_settings(
        name, steps=args.qat_steps, batch_size=args.qat_batch_size, patch_size=args.qat_patch_size
    )
    if random_weights:
        settings = dataclasses.replace(settings, steps=min(settings.steps, RANDOM_QAT))
    return settings


def build_record(
    args: argparse.Namespace,
    name: str,
    fmt: str,
    weights: str,
    settings: QATSettings,
    keep_float: list[str],
) -> dict:
    """What a kept file was built from: model, format and weights, plus the seed of
    ``int8``/``qat``, the number of calibration images of ``int8`` and the fine-tune of ``qat``
    (which calibrates on its own batches). A float file is the same whatever the seed, so one
    serves every seed."""
    record = {"model": name, "format": fmt, "weights": weights}
    if fmt in ("int8", "qat"):
        record["seed"] = args.seed
    if fmt == "int8":
        record["samples"] = args.samples
    if fmt == "qat":
        record |= {"qat": dataclasses.asdict(settings), "qat_loss": args.qat_loss}
        record |= {"qat_keep_float": list(keep_float)}
    return record


def record_path(path: Path) -> Path:
    """The build record beside a kept file: ``<model>_<format>.build.json``."""
    return path.with_suffix(".build.json")


def kept_file_matches(path: Path, record: dict) -> bool:
    """Whether ``--reuse`` may measure the kept ``path``: it exists and its build record says
    it was built as ``record`` asks. Otherwise it is built again (and says why)."""
    if not path.is_file():
        return False
    try:
        kept = json.loads(record_path(path).read_text())
    except (OSError, ValueError):
        print(f"{path.name}: no readable build record; building it again", flush=True)
        return False
    if kept != record:
        differ = sorted(k for k in {*kept, *record} if kept.get(k) != record.get(k))
        print(f"{path.name}: built with other {', '.join(differ)}; building it again", flush=True)
        return False
    return True


def latency_shape(multiple: int) -> tuple[int, int]:
    """:data:`LATENCY_SHAPE` rounded up to the model's ``multiple`` (what inference pads to:
    CRDNet's classifier takes exactly 512×512)."""
    return tuple(-(-side // multiple) * multiple for side in LATENCY_SHAPE)


# ------------------------------------------------------------------------------ measurement


@dataclasses.dataclass
class Run:
    """What the measurements of one report run share: the options, the test pairs (and the
    rainy image of the first, which *max err* is measured on), the folder of the built files
    and the report file."""

    args: argparse.Namespace
    pairs: list[Pair]
    folder: Path
    out: Path
    keep_float: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    start: float = dataclasses.field(default_factory=time.monotonic)
    first: np.ndarray = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.first = evaluation.read_pair(self.pairs[0])[0].rgb

    def out_of_time(self) -> bool:
        limit = self.args.time_limit
        return bool(limit) and time.monotonic() - self.start > limit


def _export(run: Run, model: Any, path: Path, fmt: str, settings: QATSettings, keep_float) -> None:
    """Export ``model`` as ``fmt`` to ``path`` with the run's options (dynamic size)."""
    args = run.args
    options = TFLiteOptions(
        quant=fmt,
        tile=None,
        qat_steps=settings.steps,
        qat_batch_size=settings.batch_size,
        qat_patch_size=settings.patch_size,
        qat_loss=args.qat_loss,
        qat_keep_float=tuple(keep_float),
        samples=args.samples,
        seed=args.seed,
    )
    export_tflite(model, path, options)


def measure(run: Run, model, name: str, fmt: str, weights: str, reference) -> tuple[dict, Any]:
    """The report row of ``model`` exported as ``fmt`` into ``run.folder``, and its runner.

    ``reference`` is ``(float row, float runner)`` of the same model and run, or ``None`` (the
    float row itself): a format's latency is then timed in turns with the float file's.
    """
    spec = models.spec_of(model)
    args = run.args
    keep_float = run.keep_float.get(name, []) if fmt == "qat" else []
    settings = fine_tune(args, name, weights == "random")
    shape = latency_shape(spec.multiple)
    pairs = len(run.pairs) if weights != "random" else 0
    setup = row_setup(args, fmt, pairs, settings, keep_float, shape)
    path = run.folder / f"{name}_{fmt}.tflite"
    record = build_record(args, name, fmt, weights, settings, keep_float)
    if not (args.reuse and kept_file_matches(path, record)):
        record_path(path).unlink(missing_ok=True)  # a new file never carries an old record
        _export(run, model, path, fmt, settings, keep_float)
        write_json_atomically(record_path(path), record)
    ops = operators(path)
    float_ops = float_operators(path) if fmt in ("int8", "qat") else []
    size = path.stat().st_size
    runner = TFLiteModel(path, num_threads=2)
    derainer = WholeImageDerainer(runner.run, spec)
    first = derainer.padded(run.first)
    err = np.abs(runner.run(first)["derained"] - keras_reference(model)(first)["derained"]).max()
    psnr = evaluation.mean_psnr(derainer, run.pairs) if weights != "random" else float("nan")
    if reference is None:
        latency = runner.latency(shape, repeats=args.repeats)
    else:
        latency, float_latency = latencies_side_by_side(
            [runner, reference[1]], shape, repeats=args.repeats
        )
    row = {
        "model": name,
        "format": fmt,
        "weights": weights,
        "size (KB)": f"{size / 1024:,.0f}",
        "Flex-free": "yes" if is_flex_free(ops) else "NO",
        "max err vs Keras": f"{err:.2e}",
        "PSNR (dB)": f"{psnr:.2f}" if weights != "random" else "— (random weights)",
        "ΔPSNR vs float": "",
        "latency (ms)": f"{latency * 1000:.1f}",
        "× float latency": "",
        "CPU": cpu_summary(),
        "setup": ", ".join(setup),
        "float ops": " ".join(float_ops),
        "ops": " ".join(ops),
        "_psnr": psnr,
    }
    if reference is not None:
        if weights != "random":
            row["ΔPSNR vs float"] = f"{psnr - reference[0]['_psnr']:+.2f}"
        row["× float latency"] = f"{latency / float_latency:.2f}"
    return row, runner


def keras_row(model, name: str, weights: str, pairs: Sequence[Pair]) -> dict[str, str]:
    """The *Keras float32* row: the PSNR of the Keras model, scored as the files are."""
    row = {"model": name, "format": "Keras float32", "weights": weights}
    if weights == "random":
        return {**row, "PSNR (dB)": "— (random weights)"}
    derainer = WholeImageDerainer(keras_reference(model), models.spec_of(model))
    psnr = evaluation.mean_psnr(derainer, pairs)
    return {**row, "PSNR (dB)": f"{psnr:.2f}", "setup": f"{len(pairs)} test pairs"}


def measure_formats(run: Run, model, name: str, label: str, formats, rows) -> list[str]:
    """Append the rows of every format of ``model`` to ``rows`` (the report is rewritten after
    each); returns the notes of formats skipped or failed."""
    notes, reference = [], None
    for fmt in formats_for(name, formats):
        if run.out_of_time():
            notes.append(f"{name} {fmt}: skipped (time limit reached)")
            continue
        t0 = time.monotonic()
        try:
            row, runner = measure(run, model, name, fmt, label, reference)
        except Exception as exc:
            notes.append(f"{name} {fmt}: failed ({' '.join(str(exc).split())[:300]})")
            continue
        if fmt == "none":
            reference = (row, runner)
        rows.append(row)
        write_report(run.out, merge(read_rows(run.out), rows), notes + ["(run in progress)"])
        print(
            f"{name} {fmt}: {row['PSNR (dB)']} dB, {row['latency (ms)']} ms, "
            f"{time.monotonic() - t0:.0f} s",
            flush=True,
        )
    return notes


# ------------------------------------------------------------------------------ command line


def _named_values(values: list[str], flag: str, form: str) -> dict[str, str] | None:
    """``NAME=VALUE`` options as a dict; ``None`` (after a one-line error) if one is malformed."""
    bad = [v for v in values if "=" not in v or not v.split("=", 1)[1]]
    if bad:
        print(f"report: {flag} expects {form}, got {', '.join(bad)}", file=sys.stderr)
        return None
    return dict(v.split("=", 1) for v in values)


def build_parser(shared: Path, output: Path) -> argparse.ArgumentParser:
    """The report's options; ``--data`` defaults to ``shared/data/Rain100H-20``."""
    parser = argparse.ArgumentParser(prog="export/report.py", description=__doc__.split("\n")[0])
    parser.add_argument("--models", help="comma-separated registry names (default: all)")
    parser.add_argument("--formats", default=",".join(ALL_FORMATS))
    parser.add_argument("--data", default=str(Path(shared) / "data" / "Rain100H-20"))
    parser.add_argument("--images", type=int, help="use only the first N test pairs")
    add_fine_tune_arguments(parser)
    parser.add_argument(
        "--samples",
        type=int,
        default=DEFAULT_CALIBRATION_SAMPLES,
        help="int8 calibration images",
    )
    parser.add_argument("--repeats", type=int, default=10, help="latency runs (median)")
    parser.add_argument(
        "--weights",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="weights of a model (.keras/.weights.h5/.pth or a preset name), "
        "e.g. pcnet=runs/pcnet/model.keras",
    )
    parser.add_argument(
        "--keep-float",
        action="append",
        default=[],
        metavar="NAME=PATTERNS",
        help="QAT layers of a model left in float32, e.g. prenet=conv,stage*_out",
    )
    parser.add_argument("--time-limit", type=float, help="seconds; no new build after that")
    parser.add_argument("--keep", help="folder that keeps the built .tflite files and descriptors")
    parser.add_argument(
        "--reuse", action="store_true", help="measure the files already in --keep, build the rest"
    )
    parser.add_argument("-o", "--output", default=str(output))
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    shared: Path = DEFAULT_SHARED,
    output: Path = DEFAULT_OUTPUT,
    load_model: LoadModel | None = None,
) -> int:
    """Build, measure and merge into the report (see the module docstring); the exit code.

    ``shared`` is the ``../shared`` folder (test set and official weights), ``output`` the
    default report file, ``load_model`` how ``--weights`` files load.
    """
    args = build_parser(shared, output).parse_args(argv)
    names = args.models.split(",") if args.models else models.names()
    weights = _named_values(args.weights, "--weights", "NAME=FILE")
    if weights is None:
        return 2
    for name, file in weights.items():
        if not presets.is_preset_name(file) and not Path(file).is_file():
            print(f"report: {file}: weights of {name!r} not found", file=sys.stderr)
            return 2
    formats = args.formats.split(",")
    unknown = sorted(set(formats) - set(ALL_FORMATS))
    if unknown:
        print(f"report: unknown format(s) {', '.join(unknown)}", file=sys.stderr)
        return 2
    keep_float = _named_values(args.keep_float, "--keep-float", "NAME=PATTERNS")
    if keep_float is None:
        return 2
    keep_float = {name: patterns.split(",") for name, patterns in keep_float.items()}
    if args.reuse and not args.keep:
        print("report: --reuse needs --keep DIR (the folder of the files)", file=sys.stderr)
        return 2
    pairs = find_pairs(Path(args.data))[: args.images]
    rows, notes = [], []
    with tempfile.TemporaryDirectory() as tmp:
        run = Run(args, pairs, Path(args.keep or tmp), Path(args.output), keep_float)
        run.folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            if run.out_of_time():
                notes.append(f"{name}: skipped (time limit of {args.time_limit:.0f} s reached)")
                continue
            try:
                model, label = load(name, weights, Path(shared) / "weights", load_model)
            except Exception as exc:  # one bad model must not stop the report
                notes.append(f"{name}: cannot build ({' '.join(str(exc).split())[:200]})")
                continue
            rows.append(keras_row(model, name, label, pairs))
            notes += measure_formats(run, model, name, label, formats, rows)
            skipped = sorted(set(formats) - set(formats_for(name, formats)))
            if skipped:
                limit = f"{models.PHONE_PARAMS / 1e6:g} M"
                notes.append(
                    f"{name}: ≥ {limit} parameters, no {', '.join(skipped)} (not for phones)"
                )
    notes.append(
        f"{len(pairs)} test pairs; QAT as in *setup* (at most {RANDOM_QAT} steps for random "
        "weights), "
        f"target: the float model (distillation); int8 calibration on {args.samples} synthetic "
        f"images; {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} at the end"
    )
    write_report(run.out, merge(read_rows(run.out), rows), notes)
    print(f"wrote {run.out}")
    return 0
