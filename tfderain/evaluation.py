"""Benchmark evaluation: derain a paired test set and score it under a published protocol.

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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

import numpy as np

from tfderain import io, metrics
from tfderain.data.decode import split_side_by_side
from tfderain.data.layouts import Pair, find_pairs


@dataclass
class Score:
    """Metrics of one test pair."""

    name: str
    psnr: float
    ssim: float
    input_psnr: float
    input_ssim: float


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
        p, s = metrics.evaluate_pair(restored, clean, protocol)
        p_in, s_in = metrics.evaluate_pair(rainy_u8, clean, protocol)
        yield Score(pair.name, p, s, p_in, s_in)


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


def write_csv(result: EvaluationResult, path: str | os.PathLike) -> Path:
    """Per-image CSV (``image,psnr,ssim,input_psnr,input_ssim``), written atomically."""
    text = StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["image", "psnr", "ssim", "input_psnr", "input_ssim"])
    for s in result.scores:
        writer.writerow(
            [s.name] + [f"{v:.6f}" for v in (s.psnr, s.ssim, s.input_psnr, s.input_ssim)]
        )
    return io.write_bytes_atomically(path, text.getvalue().encode())
