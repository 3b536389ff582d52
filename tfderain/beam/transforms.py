"""Beam transforms: :class:`DerainImages` (files in, derained files and a manifest out) and
:class:`EvaluatePairs` (a paired test set in, per-image PSNR/SSIM and their means out).

**DerainImages** takes the inputs ``tfderain derain`` takes — files, folders and glob patterns —
on any Beam filesystem, and writes each result to ``OUTPUT/<name><suffix><ext>`` (the input's
file name and format; alpha and 16-bit samples kept, EXIF orientation applied, and EXIF, ICC
profile, XMP, DPI and PNG text carried where the format can hold them, as the command line
does; a row's ``note`` names what was not kept). Videos are not derained here: an input video is
a ``failed`` row. Safety, as in ``tfderain derain``:

* an input is never overwritten: a destination that is also an input is refused, and when
  several inputs would write the same destination the first (by path) is written and the others
  are refused ("… is also the output of …"); a file matched by several inputs is derained once;
* every write is atomic as far as the filesystem allows (:mod:`tfderain.beam.storage`);
* a bad image (missing, empty, truncated, not an image, a model error) becomes a manifest row
  with ``status: "failed"`` and its one-line ``cause``, and increments the Beam counter
  ``tfderain/images_failed``; the pipeline carries on with the rest.

**Reruns** are idempotent by default: an existing destination is kept, not derained again, and
gets a ``"skipped"`` row (counter ``images_skipped``); since results are only ever written whole,
an existing file is a finished one, so rerunning a pipeline that stopped half-way does the rest.
``overwrite=True`` derains everything again and replaces each result atomically. (When a runner
retries a bundle after its results were written, the retry reports them as skipped.)

The **manifest** (default ``OUTPUT/manifest.jsonl``) has one JSON object per input file and per
input that matched nothing: ``input``, ``output``, ``status`` (``written``, ``skipped``,
``failed``), ``cause``, ``note``, ``width``, ``height``, ``bit_depth``, ``seconds`` (reading,
deraining and writing that image), and ``density``/``density_level`` for density-aware
models. Beam's text sink writes it at the end of the run (temporary shards, then a rename),
replacing the manifest of an earlier run; rows are in no particular order.

**EvaluatePairs** scores with :func:`tfderain.evaluation.score_pairs`, so its per-image numbers
are those of ``tfderain evaluate``; the means are taken over the pairs in the dataset's order.
"""

from __future__ import annotations

import csv
import io as pyio
import json
import math
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import PredictionResult, RunInference

from tfderain import io
from tfderain.beam import storage
from tfderain.beam.model import (
    DerainModelHandler,
    ImageJob,
    PairJob,
    ScoreModelHandler,
    model_ref,
)
from tfderain.data.layouts import find_pairs

#: Name of the manifest written into the output folder unless another path is given.
MANIFEST = "manifest.jsonl"
#: Files written by :class:`EvaluatePairs` into its output folder.
SCORES, SUMMARY = "scores.jsonl", "summary.json"
#: Namespace of the Beam counters.
NAMESPACE = "tfderain"
#: Keys of every manifest row, in order.
ROW_KEYS = (
    "input",
    "output",
    "status",
    "cause",
    "note",
    "width",
    "height",
    "bit_depth",
    "seconds",
    "density",
    "density_level",
)


def _row(src: str, dest: str | None, status: str, cause: str | None = None, **extra) -> dict:
    row = dict.fromkeys(ROW_KEYS)
    row.update(input=src, output=dest, status=status, cause=cause, **extra)
    return row


def _cause(exc: BaseException) -> str:
    """One line for a failed image (the row already names the file)."""
    return exc.cause if isinstance(exc, io.ImageError) else io.error_cause(exc)


def destination(src: str, output: str, suffix: str = "") -> str:
    """``OUTPUT/<stem><suffix><ext>`` of an input file (its name and format kept)."""
    name = storage.basename(src)
    stem, ext = os.path.splitext(name)
    return storage.join(output, f"{stem}{suffix}{ext}")


# ------------------------------------------------------------------------------------- DoFns


class _Match(beam.DoFn):
    """An input (file, folder or pattern) → its files, or a ``failed`` row."""

    def process(self, item: str) -> Iterator[Any]:
        found, cause = storage.match(item)
        if cause is not None:
            Metrics.counter(NAMESPACE, "inputs_unmatched").inc()
            yield beam.pvalue.TaggedOutput("row", _row(item, None, "failed", cause))
        yield from found


class _Assign(beam.DoFn):
    """One destination with the inputs that would write it → at most one task, other rows."""

    def process(self, element: tuple[str, Iterable[tuple[str, str]]]) -> Iterator[Any]:
        dest, entries = element
        entries = list(entries)
        writers = sorted({path for kind, path in entries if kind == "in"})
        dest_is_input = any(kind == "self" for kind, _ in entries)
        for k, src in enumerate(writers):
            if dest_is_input:
                target = "the input" if src == dest else f"the input {dest}"
                cause = f"{dest} would overwrite {target}"
            elif k > 0:
                cause = f"{dest} is also the output of {writers[0]}"
            else:
                yield (src, dest)
                continue
            Metrics.counter(NAMESPACE, "images_failed").inc()
            yield beam.pvalue.TaggedOutput("row", _row(src, dest, "failed", cause))


class _Read(beam.DoFn):
    """``(src, dest)`` → an :class:`ImageJob` (decoded), or a ``skipped``/``failed`` row."""

    def __init__(self, overwrite: bool):
        self.overwrite = overwrite

    def process(self, task: tuple[str, str]) -> Iterator[Any]:
        src, dest = task
        start = time.perf_counter()
        try:
            if not self.overwrite and storage.exists(dest):
                Metrics.counter(NAMESPACE, "images_skipped").inc()
                cause = "exists (kept; overwrite to derain again)"
                yield beam.pvalue.TaggedOutput("row", _row(src, dest, "skipped", cause))
                return
            image = io.decode_image(storage.read_bytes(src), src)
        except (ValueError, OSError) as exc:
            Metrics.counter(NAMESPACE, "images_failed").inc()
            yield beam.pvalue.TaggedOutput("row", _row(src, dest, "failed", _cause(exc)))
            return
        yield ImageJob(src, dest, image, seconds=time.perf_counter() - start)


class _Write(beam.DoFn):
    """A derained :class:`ImageJob` → its file written (with the input's metadata where the
    format holds it), and its manifest row."""

    def __init__(self, jpeg_quality: int):
        self.jpeg_quality = jpeg_quality

    def process(self, result: PredictionResult) -> Iterator[dict]:
        job: ImageJob = result.example
        start = time.perf_counter()
        height, width = job.image.rgb.shape[:2]
        size = {"width": width, "height": height, "bit_depth": job.image.bit_depth}
        cause, note = job.cause, None
        if cause is None:
            out = job.result
            try:
                data = io.encode_image(
                    job.dest,
                    out.rgb,
                    out.alpha,
                    out.bit_depth,
                    jpeg_quality=self.jpeg_quality,
                    metadata=out.metadata,
                )
                storage.write_bytes(job.dest, data)
            except (ValueError, OSError) as exc:
                cause = _cause(exc)
            dropped = io.dropped_metadata(job.dest, out.metadata)
            if dropped:
                ext = os.path.splitext(job.dest)[1].lower()
                note = f"{', '.join(dropped)} not kept ({ext} cannot hold it)"
        seconds = round(job.seconds + time.perf_counter() - start, 4)
        if cause is not None:
            Metrics.counter(NAMESPACE, "images_failed").inc()
            yield _row(job.src, job.dest, "failed", cause, seconds=seconds, **size)
            return
        Metrics.counter(NAMESPACE, "images_written").inc()
        density = dict(zip(("density", "density_level"), job.density or (None, None), strict=True))
        yield _row(job.src, job.dest, "written", note=note, seconds=seconds, **size, **density)


# -------------------------------------------------------------------------------- DerainImages


class DerainImages(beam.PTransform):
    """Derain image files into a folder and write a manifest (see the module docstring).

    Apply it to a pipeline: ``rows = pipeline | DerainImages(["gs://b/rain/*.jpg"], "gs://b/out")``.
    The result is the manifest's rows (dicts).

    Args:
        inputs: files, folders and glob patterns (local or any Beam filesystem).
        output: the folder the results go to.
        handler: the model (:class:`~tfderain.beam.model.DerainModelHandler`); default: the
            bundled default model with the command line's tiling options.
        suffix: added to each output's file stem (``rain.png`` → ``rain<suffix>.png``).
        overwrite: derain and replace existing outputs instead of keeping them.
        manifest: path of the JSONL manifest (default ``OUTPUT/manifest.jsonl``).
        jpeg_quality: quality of JPEG outputs, 1 to 100.
    """

    def __init__(
        self,
        inputs: Sequence[str],
        output: str,
        handler: DerainModelHandler | None = None,
        *,
        suffix: str = "",
        overwrite: bool = False,
        manifest: str | None = None,
        jpeg_quality: int = 95,
    ):
        super().__init__()
        if isinstance(jpeg_quality, bool) or jpeg_quality not in range(1, 101):
            raise ValueError(f"jpeg_quality must be an integer from 1 to 100, got {jpeg_quality!r}")
        self.jpeg_quality = jpeg_quality
        if isinstance(inputs, str):
            inputs = [inputs]
        if not inputs:
            raise ValueError("DerainImages needs at least one input")
        self.inputs = [os.fspath(i) for i in inputs]
        self.output = storage.normalize(os.fspath(output))
        self.handler = handler if handler is not None else DerainModelHandler(model_ref())
        self.suffix = suffix
        self.overwrite = overwrite
        self.manifest = storage.normalize(manifest or storage.join(self.output, MANIFEST))
        if storage.is_local(self.output) and os.path.isfile(self.output):
            raise ValueError(f"{self.output}: exists and is not a directory")

    def expand(self, pbegin):
        output, suffix = self.output, self.suffix
        matched = (
            pbegin
            | "Inputs" >> beam.Create(self.inputs)
            | "Match" >> beam.ParDo(_Match()).with_outputs("row", main="file")
        )
        files = matched.file
        by_dest = files | "ByDestination" >> beam.Map(
            lambda p: (destination(p, output, suffix), ("in", p))
        )
        by_self = files | "ByPath" >> beam.Map(lambda p: (p, ("self", p)))
        assigned = (
            (by_dest, by_self)
            | "Join" >> beam.Flatten()
            | "Group" >> beam.GroupByKey()
            | "Assign" >> beam.ParDo(_Assign()).with_outputs("row", main="task")
        )
        read = assigned.task | "Read" >> beam.ParDo(_Read(self.overwrite)).with_outputs(
            "row", main="job"
        )
        written = (
            read.job
            | "Derain" >> RunInference(self.handler)
            | "Write" >> beam.ParDo(_Write(self.jpeg_quality))
        )
        rows = (matched.row, assigned.row, read.row, written) | "Rows" >> beam.Flatten()
        _ = (
            rows
            | "ToJson" >> beam.Map(lambda r: json.dumps(r, sort_keys=False))
            | "Manifest" >> beam.io.WriteToText(self.manifest, shard_name_template="", num_shards=1)
        )
        return rows


# ------------------------------------------------------------------------------- EvaluatePairs


def pair_jobs(data: str, *, layout: str | None = None, order: str | None = None) -> list[PairJob]:
    """The pairs of a dataset, in order: a local folder in any layout
    (:func:`tfderain.data.layouts.find_pairs`), or a CSV file (any Beam filesystem) with the
    columns ``rainy`` and ``clean`` (URIs, or paths relative to the CSV's folder) and optionally
    ``name`` (default: the rainy file's stem).

    Raises:
        ValueError: the CSV has no ``rainy``/``clean`` columns or no rows, or the folder holds no
            known layout (:class:`tfderain.data.layouts.LayoutError`).
    """
    data = os.fspath(data)
    if not data.lower().endswith(".csv"):
        pairs = find_pairs(data, layout=layout, order=order)
        return [
            PairJob(k, p.name, str(p.rainy), str(p.clean), p.split) for k, p in enumerate(pairs)
        ]
    try:
        text = storage.read_bytes(storage.normalize(data)).decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{data}: cannot read the pairs ({io.error_cause(exc)})") from None
    reader = csv.DictReader(pyio.StringIO(text))
    missing = {"rainy", "clean"} - set(reader.fieldnames or ())
    if missing:
        raise ValueError(f"{data}: needs the columns rainy and clean (missing {sorted(missing)})")
    folder = storage.split(storage.normalize(data))[0]
    jobs = []
    for k, row in enumerate(reader):
        rainy, clean = (storage.relative_to(folder, row[key].strip()) for key in ("rainy", "clean"))
        name = (row.get("name") or "").strip() or os.path.splitext(storage.basename(rainy))[0]
        jobs.append(PairJob(k, name, rainy, clean))
    if not jobs:
        raise ValueError(f"{data}: no pairs")
    return jobs


def summarize(rows: Sequence[dict], protocol: str) -> dict[str, Any]:
    """Counts and means of scored rows (in ``index`` order, as ``tfderain evaluate`` averages)."""
    scored = sorted((r for r in rows if r["status"] == "scored"), key=lambda r: r["index"])
    summary: dict[str, Any] = {
        "protocol": protocol,
        "images": len(scored),
        "failed": sum(r["status"] != "scored" for r in rows),
    }
    for key in ("psnr", "ssim", "input_psnr", "input_ssim"):
        mean = float(np.mean([r[key] for r in scored])) if scored else math.nan
        summary[f"mean_{key}"] = None if math.isnan(mean) else mean
    return summary


class _WriteScores(beam.DoFn):
    """All score rows → ``scores.jsonl`` (dataset order) and ``summary.json``."""

    def __init__(self, output: str, protocol: str):
        self.output = output
        self.protocol = protocol

    def process(self, rows: list[dict]) -> Iterator[dict]:
        rows = sorted(rows, key=lambda r: r["index"])
        storage.write_lines(storage.join(self.output, SCORES), (json.dumps(r) for r in rows))
        summary = summarize(rows, self.protocol)
        storage.write_bytes(
            storage.join(self.output, SUMMARY), (json.dumps(summary, indent=1) + "\n").encode()
        )
        yield summary


class _CountScores(beam.DoFn):
    def process(self, result: PredictionResult) -> Iterator[dict]:
        row = result.inference
        Metrics.counter(NAMESPACE, f"pairs_{row['status']}").inc()
        yield row


class EvaluatePairs(beam.PTransform):
    """Derain and score a paired dataset; writes ``OUTPUT/scores.jsonl`` and
    ``OUTPUT/summary.json`` and returns the per-pair rows.

    Args:
        data: a local dataset folder in any known layout, or a CSV of ``rainy,clean`` paths or
            URIs (:func:`pair_jobs`), read when the pipeline is built.
        output: folder (any Beam filesystem) for the two result files.
        handler: a :class:`~tfderain.beam.model.ScoreModelHandler` (model, protocol, output
            rule); default: the bundled default model under protocol A.
        layout, order: passed to :func:`~tfderain.data.layouts.find_pairs` for folders.

    A pair that cannot be scored is a row with ``status: "failed"`` and its ``cause`` (counter
    ``tfderain/pairs_failed``); the summary counts it and leaves it out of the means, as
    ``tfderain evaluate`` does.
    """

    def __init__(
        self,
        data: str,
        output: str,
        handler: ScoreModelHandler | None = None,
        *,
        layout: str | None = None,
        order: str | None = None,
    ):
        super().__init__()
        self.jobs = pair_jobs(data, layout=layout, order=order)
        self.output = storage.normalize(os.fspath(output))
        self.handler = handler if handler is not None else ScoreModelHandler(model_ref())

    def expand(self, pbegin):
        rows = (
            pbegin
            | "Pairs" >> beam.Create(self.jobs)
            | "Spread" >> beam.Reshuffle()
            | "Score" >> RunInference(self.handler)
            | "Count" >> beam.ParDo(_CountScores())
        )
        _ = (
            rows
            | "All" >> beam.combiners.ToList()
            | "WriteScores" >> beam.ParDo(_WriteScores(self.output, self.handler.protocol))
        )
        return rows


__all__ = [
    "MANIFEST",
    "ROW_KEYS",
    "SCORES",
    "SUMMARY",
    "DerainImages",
    "EvaluatePairs",
    "destination",
    "pair_jobs",
    "summarize",
]
