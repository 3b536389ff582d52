"""Benchmark evaluation: derain a paired test set and score it under a published protocol.

Three entry points share one scoring loop: :func:`evaluate` (one model on one dataset),
:func:`score_predictions` (any method's saved outputs against a dataset, no model involved) and
:class:`Run` with :func:`format_table` / :func:`write_runs_csv` (many models on many datasets,
one table).

The float output becomes an 8-bit image before scoring the way the model's own official test
script saves it (the registry's ``output_rule``, applied by the model's
:class:`~tfderain.processing.Processor`): PReNet's ``test_PReNet.py`` truncates
(``np.uint8(255 * x)``), MPRNet's and Restormer's scripts round (``img_as_ubyte``). The published
tables score those saved images, under protocol A or B alike, so the default reproduces them;
``output_rule=`` overrides it.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

import numpy as np

from tfderain import io, metrics
from tfderain.data.decode import split_side_by_side
from tfderain.data.layouts import IMAGE_SUFFIXES, Pair, find_pairs

#: The per-image columns of the CSV files, in order (:class:`Score` fields).
_COLUMNS = ("psnr", "ssim", "input_psnr", "input_ssim", "luma_ratio")

#: The ``image`` value of the rows of :func:`write_runs_csv` that hold a run's means.
MEAN_ROW = "(mean)"


@dataclass
class Score:
    """Metrics of one test pair."""

    name: str
    psnr: float
    ssim: float
    input_psnr: float
    input_ssim: float
    #: Mean luma of the output over the clean image's (:func:`tfderain.metrics.luma_ratio`).
    luma_ratio: float


@dataclass
class EvaluationResult:
    """Per-image scores plus the pairs that could not be evaluated."""

    protocol: str
    scores: list[Score]
    failed: list[tuple[str, str]]

    @property
    def mean_psnr(self) -> float:
        return float(np.mean([s.psnr for s in self.scores])) if self.scores else float("nan")

    @property
    def mean_ssim(self) -> float:
        return float(np.mean([s.ssim for s in self.scores])) if self.scores else float("nan")

    @property
    def mean_input_psnr(self) -> float:
        return float(np.mean([s.input_psnr for s in self.scores])) if self.scores else float("nan")

    @property
    def mean_input_ssim(self) -> float:
        return float(np.mean([s.input_ssim for s in self.scores])) if self.scores else float("nan")

    @property
    def brightness_error(self) -> float:
        """Mean over images of ``|luma_ratio - 1|``: 0.08 is an output 8 % too dark or bright."""
        errors = [abs(s.luma_ratio - 1) for s in self.scores]
        return float(np.mean(errors)) if errors else float("nan")


def _as_uint8(image: io.Image) -> np.ndarray:
    if image.bit_depth != 8:
        raise io.ImageError(image.path, "evaluation protocols are defined on 8-bit images")
    return io.to_uint8(image.rgb)


def read_pair(pair: Pair) -> tuple[io.Image, io.Image]:
    """The rainy and the clean image of a pair; a side-by-side file is cut into its halves."""
    if pair.split is None:
        return io.read_image(pair.rainy), io.read_image(pair.clean)
    both = io.read_image(pair.rainy)
    rainy, clean = split_side_by_side(both.rgb, pair.split, pair.rainy)
    return (
        io.Image(rainy, bit_depth=both.bit_depth, path=both.path),
        io.Image(clean, bit_depth=both.bit_depth, path=both.path),
    )


def _score(
    name: str, output: np.ndarray, rainy: np.ndarray, clean: np.ndarray, protocol: str
) -> Score:
    p, s = metrics.evaluate_pair(output, clean, protocol)
    p_in, s_in = metrics.evaluate_pair(rainy, clean, protocol)
    return Score(name, p, s, p_in, s_in, metrics.luma_ratio(output, clean))


def score_pairs(
    derainer,
    pairs: Iterable[Pair],
    protocol: metrics.Protocol = "A",
    save_dir: str | os.PathLike | None = None,
    output_rule: str | None = None,
) -> Iterator[Score | tuple[str, str]]:
    """Yield a :class:`Score` per pair, or ``(name, cause)`` for a pair that failed.

    This is the one scoring loop of the library: ``tfderain evaluate`` and training's validation
    both go through it, so they agree on every pair. Side-by-side files are cut into their halves
    (:func:`read_pair`); the output becomes 8 bits by the model's official output rule (its
    :class:`~tfderain.processing.Processor`), or by ``output_rule`` when given, before scoring.
    """
    processor = derainer.spec.processor
    if output_rule is not None:
        processor = dataclasses.replace(processor, output_rule=output_rule)
    for pair in pairs:
        try:
            rainy, clean_image = read_pair(pair)
            clean = _as_uint8(clean_image)
            rainy_u8 = _as_uint8(rainy)
            if rainy_u8.shape != clean.shape:
                raise io.ImageError(
                    pair.rainy,
                    f"size {rainy_u8.shape[:2]} differs from its clean image {clean.shape[:2]}",
                )
            restored = processor.to_uint8(derainer.derain_array(rainy.rgb)).numpy()
        except (io.ImageError, ValueError) as exc:
            yield pair.name, str(exc)
            continue
        if save_dir is not None:
            io.write_image(Path(save_dir) / f"{pair.name}.png", restored / np.float32(255))
        yield _score(pair.name, restored, rainy_u8, clean, protocol)


def iter_scores(
    derainer,
    data: str | os.PathLike,
    protocol: metrics.Protocol = "A",
    save_dir: str | os.PathLike | None = None,
    output_rule: str | None = None,
    layout: str | None = None,
    order: str | None = None,
) -> Iterator[Score | tuple[str, str]]:
    """:func:`score_pairs` over the pairs of the dataset folder ``data``.

    ``layout`` and ``order`` are passed to :func:`~tfderain.data.layouts.find_pairs`.
    """
    pairs = find_pairs(data, layout=layout, order=order)
    yield from score_pairs(derainer, pairs, protocol, save_dir, output_rule)


def collect(items: Iterable[Score | tuple[str, str]], protocol: str) -> EvaluationResult:
    """An :class:`EvaluationResult` from what :func:`score_pairs` yields."""
    result = EvaluationResult(protocol, [], [])
    for item in items:
        if isinstance(item, Score):
            result.scores.append(item)
        else:
            result.failed.append(item)
    return result


def mean_psnr(derainer, pairs: Iterable[Pair], protocol: metrics.Protocol = "A") -> float:
    """Mean PSNR of ``derainer`` on ``pairs`` (:func:`score_pairs`); a pair that cannot be scored
    is a ValueError naming it (for measurements where a missing pair would bias the mean)."""
    result = collect(score_pairs(derainer, pairs, protocol), protocol)
    if result.failed:
        name, cause = result.failed[0]
        raise ValueError(f"test pair {name}: {cause}")
    return result.mean_psnr


def evaluate(
    derainer,
    data: str | os.PathLike,
    protocol: metrics.Protocol = "A",
    save_dir: str | os.PathLike | None = None,
    progress: bool = False,
    output_rule: str | None = None,
    layout: str | None = None,
    order: str | None = None,
) -> EvaluationResult:
    """Derain every pair of the dataset at ``data`` (layout auto-detected) and score it.

    Side-by-side pairs (DID-MDN, Rain800) are cut into their rainy and clean halves.

    ``output_rule`` (``"truncate"`` or ``"round"``) overrides the model's official 8-bit rule;
    ``layout`` and ``order`` override the detected layout and side-by-side order.
    """
    from tqdm import tqdm

    items = iter_scores(derainer, data, protocol, save_dir, output_rule, layout, order)
    return collect(tqdm(items, disable=not progress, desc="evaluating", unit="img"), protocol)


def _values(score: Score) -> tuple[float, ...]:
    return tuple(getattr(score, column) for column in _COLUMNS)


def write_csv(result: EvaluationResult, path: str | os.PathLike) -> Path:
    """Per-image CSV (``image,psnr,ssim,input_psnr,input_ssim,luma_ratio``), written atomically."""
    text = StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["image", *_COLUMNS])
    for s in result.scores:
        writer.writerow([s.name] + [f"{v:.6f}" for v in _values(s)])
    return io.write_bytes_atomically(path, text.getvalue().encode())


# ------------------------------------------------------------------------ saved predictions


def _prediction_index(pred_dir: Path) -> dict[str, list[Path]]:
    """Image files under ``pred_dir`` by their path relative to it, without the extension."""
    index: dict[str, list[Path]] = {}
    for path in sorted(pred_dir.rglob("*")):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            index.setdefault(path.relative_to(pred_dir).with_suffix("").as_posix(), []).append(path)
    return index


def _prediction_of(pair: Pair, pred_dir: Path, index: dict[str, list[Path]]) -> Path:
    found = index.get(pair.name, [])
    if not found:
        raise io.ImageError(pred_dir / f"{pair.name}.*", "no prediction for this pair")
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise io.ImageError(pred_dir / f"{pair.name}.*", f"several predictions ({names})")
    return found[0]


def iter_prediction_scores(
    pred_dir: str | os.PathLike,
    pairs: Iterable[Pair],
    protocol: metrics.Protocol = "A",
) -> Iterator[Score | tuple[str, str]]:
    """Yield a :class:`Score` per pair from its saved prediction, or ``(name, cause)``.

    The prediction of a pair is the image file ``pred_dir/<pair name>.<ext>`` with any image
    extension (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``, any case), where the pair's name is its
    rainy file's stem (``level/`` or ``root/`` prefixed in a ``levels`` layout or a mix: the paths
    ``tfderain evaluate --save-outputs`` writes). A missing, ambiguous, unreadable, non-8-bit or
    mis-sized prediction is yielded as a failure naming the file.
    """
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise FileNotFoundError(f"{pred_dir}: no such directory")
    index = _prediction_index(pred_dir)
    for pair in pairs:
        try:
            rainy, clean_image = read_pair(pair)
            clean = _as_uint8(clean_image)
            rainy_u8 = _as_uint8(rainy)
            path = _prediction_of(pair, pred_dir, index)
            predicted = _as_uint8(io.read_image(path))
            for image, what in ((rainy_u8, pair.rainy), (predicted, path)):
                if image.shape != clean.shape:
                    raise io.ImageError(
                        what,
                        f"size {image.shape[1]}x{image.shape[0]} differs from its clean image "
                        f"{clean.shape[1]}x{clean.shape[0]}",
                    )
        except (io.ImageError, ValueError, OSError) as exc:
            yield pair.name, str(exc)
            continue
        yield _score(pair.name, predicted, rainy_u8, clean, protocol)


def score_predictions(
    pred_dir: str | os.PathLike,
    data: str | os.PathLike,
    protocol: metrics.Protocol = "A",
    layout: str | None = None,
    order: str | None = None,
    progress: bool = False,
) -> EvaluationResult:
    """Score any method's saved outputs in ``pred_dir`` against the pairs of the dataset ``data``.

    Predictions are matched to pairs by name whatever their extension (see
    :func:`iter_prediction_scores`); they are scored as saved (8-bit images, no output rule is
    applied). ``layout`` and ``order`` are passed to :func:`~tfderain.data.layouts.find_pairs`.
    Pairs without a usable prediction are listed in :attr:`EvaluationResult.failed`.
    """
    from tqdm import tqdm

    metrics.check_protocol(protocol)  # fail before reading any file
    pairs = find_pairs(data, layout=layout, order=order)
    items = iter_prediction_scores(pred_dir, pairs, protocol)
    return collect(tqdm(items, disable=not progress, desc="scoring", unit="img"), protocol)


# ---------------------------------------------------------------------- many models, one table


@dataclass
class Run:
    """The evaluation of one model (``model``, a label) on one dataset (``data``, a label)."""

    model: str
    data: str
    result: EvaluationResult


_PROTOCOL_NAMES = {
    "A": "A = PReNet's statistic/*.m (Y channel)",
    "B": "B = MPRNet/Restormer evaluate_PSNR_SSIM.m (Y channel, 8-bit)",
    "rgb": "rgb = PSNR/SSIM on the RGB channels",
}


def _unique(labels: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(labels))


def format_table(runs: Sequence[Run], forced: str | None = None) -> str:
    """A markdown table of mean ``PSNR / SSIM``: one row per model, one column per dataset.

    Each row names the protocol its model was scored under; a cell notes how many of the
    dataset's pairs failed, and ``-`` marks a model that has no run on that dataset. The line
    under the table says whether the protocol was ``forced`` for every model or is each model's
    own (:attr:`tfderain.models.ModelSpec.protocol`) and what each protocol is.
    """
    cells = {(r.model, r.data): r.result for r in runs}
    models, datasets = _unique(r.model for r in runs), _unique(r.data for r in runs)
    sizes = {}
    for r in runs:
        sizes.setdefault(r.data, len(r.result.scores) + len(r.result.failed))
    header = ["model", "protocol"] + [f"{d} ({sizes[d]})" for d in datasets]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    used = []
    for model in models:
        protocols = _unique(r.result.protocol for r in runs if r.model == model)
        used += protocols
        row = [model, ", ".join(protocols)]
        for data in datasets:
            result = cells.get((model, data))
            if result is None:
                row.append("-")
                continue
            cell = f"{result.mean_psnr:.2f} / {result.mean_ssim:.4f}"
            if result.failed:
                cell += f" ({len(result.failed)} failed)"
            row.append(cell)
        lines.append("| " + " | ".join(row) + " |")
    whose = f"protocol {forced} for every model" if forced else "each model's official protocol"
    legend = "; ".join(_PROTOCOL_NAMES[p] for p in _unique(used))
    lines += ["", f"Mean PSNR (dB) / SSIM, (n) = pairs in the dataset; {whose} ({legend})."]
    return "\n".join(lines)


def write_runs_csv(runs: Sequence[Run], path: str | os.PathLike) -> Path:
    """CSV of many runs, written atomically: one row per model, dataset and image, then a row
    whose ``image`` is :data:`MEAN_ROW` with the run's means.

    Columns ``model,data,protocol,image,psnr,ssim,input_psnr,input_ssim,luma_ratio``; the mean
    row's ``luma_ratio`` is the mean ratio (the mean distance from 1 is
    :attr:`EvaluationResult.brightness_error`).
    """
    text = StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["model", "data", "protocol", "image", *_COLUMNS])
    for run in runs:
        result = run.result
        head = [run.model, run.data, result.protocol]
        for s in result.scores:
            writer.writerow(head + [s.name] + [f"{v:.6f}" for v in _values(s)])
        means = (
            result.mean_psnr,
            result.mean_ssim,
            result.mean_input_psnr,
            result.mean_input_ssim,
            float(np.mean([s.luma_ratio for s in result.scores])) if result.scores else np.nan,
        )
        writer.writerow(head + [MEAN_ROW] + [f"{v:.6f}" for v in means])
    return io.write_bytes_atomically(path, text.getvalue().encode())
