"""tfderain.beam: deraining and scoring on Apache Beam's DirectRunner.

One pipeline with both transforms runs in multi-process mode (2 worker processes) over a folder
of good, bad and one large (> 1 MP, tiled) image and a small paired dataset; the reruns and the
policy checks run in-process. A tiny random PReNet keeps every network call cheap.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

beam = pytest.importorskip("apache_beam")

from apache_beam.metrics.metric import MetricsFilter  # noqa: E402
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402

from tfderain import evaluation, inference, io, models, saving  # noqa: E402
from tfderain.beam import (  # noqa: E402
    DerainImages,
    DerainModelHandler,
    EvaluatePairs,
    ScoreModelHandler,
    model_ref,
    transforms,  # noqa: E402
)
from tfderain.beam import __main__ as beam_cli  # noqa: E402
from tfderain.beam import model as beam_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
GOOD = ("good0.png", "good1.jpg", "rgba16.png")
BAD = {"truncated.png": "truncated or corrupt image data", "text.png": "not an image"}
LARGE = "large.png"  # 1100 × 1024: above inference.DEFAULT_MAX_PIXELS, so it runs in tiles


def _multi_process() -> PipelineOptions:
    return PipelineOptions(
        ["--direct_num_workers=2", "--direct_running_mode=multi_processing"],
        runner="DirectRunner",
    )


def _in_process() -> PipelineOptions:
    return PipelineOptions(["--direct_running_mode=in_memory"], runner="DirectRunner")


def _run(options: PipelineOptions, *transforms_) -> dict[str, int]:
    """Run the transforms in one pipeline; the tfderain counters."""
    pipeline = beam.Pipeline(options=options)
    for k, transform in enumerate(transforms_):
        _ = pipeline | f"T{k}" >> transform
    result = pipeline.run()
    result.wait_until_finish()
    query = result.metrics().query(MetricsFilter().with_namespace("tfderain"))
    counts: dict[str, int] = {}
    for counter in query["counters"]:
        counts[counter.key.metric.name] = counts.get(counter.key.metric.name, 0) + counter.committed
    return counts


def _manifest(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Tiny model file, an input folder and a paired dataset (rain13k layout)."""
    root = tmp_path_factory.mktemp("beam")
    model = models.build("prn_r", stages=2, channels=4)
    saving.save_model(model, root / "tiny.keras")
    rng = np.random.default_rng(0)
    images = root / "in"
    tags = io.Metadata(dpi=(300.0, 300.0), text=(("Title", "rainy street"),))
    io.write_image(images / "good0.png", rng.random((64, 96, 3), np.float32), metadata=tags)
    io.write_image(images / "good1.jpg", rng.random((48, 80, 3), np.float32))
    rgba = rng.random((64, 96, 3), np.float32)
    io.write_image(images / "rgba16.png", rgba, alpha=rgba[:, :, 0], bit_depth=16)
    (images / "truncated.png").write_bytes((images / "good0.png").read_bytes()[:300])
    (images / "text.png").write_bytes(b"not an image at all")
    y, x = np.mgrid[0:1024, 0:1100].astype(np.float32)
    large = np.stack([np.sin(x / 50), np.cos(y / 40), np.sin((x + y) / 70)], -1) * 0.5 + 0.5
    io.write_image(images / LARGE, large)

    data = root / "pairs"
    for k in range(3):
        clean = rng.random((64, 96, 3), np.float32)
        io.write_image(data / "target" / f"{k}.png", clean)
        io.write_image(data / "input" / f"{k}.png", np.clip(clean + 0.2, 0, 1))
    io.write_image(data / "target" / "3.png", rng.random((64, 96, 3), np.float32))
    (data / "input" / "3.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return {"root": root, "images": images, "data": data, "model": root / "tiny.keras"}


@pytest.fixture(scope="module")
def worker_path():
    """Worker processes import this checkout's tfderain."""
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), previous]))
    yield
    if previous is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = previous


@pytest.fixture(scope="module")
def derainer(work):
    return inference.Derainer(saving.load_model(work["model"]))


@pytest.fixture(scope="module")
def first_run(work, worker_path):
    """Derain the folder and evaluate the dataset in one 2-process pipeline."""
    ref = model_ref(weights=str(work["model"]))
    out = work["root"] / "out"
    derain = DerainImages(
        [str(work["images"]), str(work["root"] / "missing" / "*.png")],
        str(out),
        DerainModelHandler(ref),
    )
    scores = work["root"] / "scores"
    evaluate = EvaluatePairs(str(work["data"]), str(scores), ScoreModelHandler(ref))
    counts = _run(_multi_process(), derain, evaluate)
    return {"out": out, "scores": scores, "counts": counts}


# ------------------------------------------------------------------------------- deraining


@pytest.mark.slow
def test_outputs_equal_derainer_within_one_level(work, first_run, derainer):
    assert io.read_image(work["images"] / LARGE).rgb.size // 3 > inference.DEFAULT_MAX_PIXELS
    for name in (*GOOD, LARGE):
        source = io.read_image(work["images"] / name)
        expected = derainer.derain_image(source)
        written = io.read_image(first_run["out"] / name)
        assert written.rgb.shape == source.rgb.shape, name
        if name.endswith(".jpg"):  # compare JPEG with JPEG: the same encoder on both sides
            io.write_image(work["root"] / "expected.jpg", expected.rgb)
            expected = io.read_image(work["root"] / "expected.jpg")
        assert np.abs(written.rgb - expected.rgb).max() <= 1 / 255 + 1e-6, name


@pytest.mark.slow
def test_alpha_bit_depth_and_metadata_are_kept(work, first_run):
    source = io.read_image(work["images"] / "rgba16.png")
    written = io.read_image(first_run["out"] / "rgba16.png")
    assert written.bit_depth == 16
    np.testing.assert_array_equal(written.alpha, source.alpha)
    tagged = io.read_image(work["images"] / "good0.png").metadata
    assert tagged.dpi is not None and tagged.text == (("Title", "rainy street"),)
    assert io.read_image(first_run["out"] / "good0.png").metadata == tagged


@pytest.mark.slow
def test_manifest_lists_every_input_exactly_once(work, first_run):
    rows = _manifest(first_run["out"] / transforms.MANIFEST)
    inputs = [r["input"] for r in rows]
    assert len(inputs) == len(set(inputs))
    files = {str(p) for p in work["images"].iterdir()}
    pattern = str(work["root"] / "missing" / "*.png")
    assert set(inputs) == files | {pattern}
    by_input = {Path(r["input"]).name: r for r in rows}
    for name in (*GOOD, LARGE):
        row = by_input[name]
        assert row["status"] == "written" and row["cause"] is None
        assert row["output"] == str(first_run["out"] / name)
        assert row["seconds"] > 0 and row["width"] > 0 and row["height"] > 0
    assert (by_input[LARGE]["width"], by_input[LARGE]["height"]) == (1100, 1024)
    for name, cause in BAD.items():
        assert by_input[name]["status"] == "failed"
        assert by_input[name]["cause"].startswith(cause), by_input[name]
        assert not (first_run["out"] / name).exists()
    assert by_input["*.png"]["cause"] == "pattern matches no images"


@pytest.mark.slow
def test_bad_images_are_counted_not_fatal(first_run):
    counts = first_run["counts"]
    assert counts["images_written"] == len(GOOD) + 1
    assert counts["images_failed"] == len(BAD)
    assert counts["inputs_unmatched"] == 1
    assert counts.get("images_skipped", 0) == 0


@pytest.mark.slow
def test_rerun_keeps_finished_outputs(work, first_run):
    out = first_run["out"]
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.suffix != ".jsonl"}
    ref = model_ref(weights=str(work["model"]))
    counts = _run(
        _in_process(), DerainImages([str(work["images"])], str(out), DerainModelHandler(ref))
    )
    rows = {Path(r["input"]).name: r for r in _manifest(out / transforms.MANIFEST)}
    assert len(rows) == len(GOOD) + len(BAD) + 1
    for name in (*GOOD, LARGE):
        assert rows[name]["status"] == "skipped"
        assert (out / name).stat().st_mtime_ns == before[name]
    assert {rows[n]["status"] for n in BAD} == {"failed"}
    assert counts["images_skipped"] == len(GOOD) + 1
    assert counts.get("images_written", 0) == 0


@pytest.mark.slow
def test_overwrite_replaces_outputs_atomically(work, tmp_path, derainer):
    out = tmp_path / "out"
    out.mkdir()
    stale = out / "good0.png"
    stale.write_bytes(b"stale")
    ref = model_ref(weights=str(work["model"]))
    source = str(work["images"] / "good0.png")
    counts = _run(
        _in_process(), DerainImages([source], str(out), DerainModelHandler(ref), overwrite=True)
    )
    assert counts["images_written"] == 1
    expected = derainer.derain_image(io.read_image(source)).rgb
    assert np.abs(io.read_image(stale).rgb - expected).max() <= 1 / 255 + 1e-6
    assert sorted(p.name for p in out.iterdir()) == ["good0.png", transforms.MANIFEST]


@pytest.mark.slow
def test_inputs_are_never_overwritten(work, tmp_path):
    """Output folder = input folder, and two inputs of the same name: refused, nothing lost."""
    folder, other = tmp_path / "photos", tmp_path / "other"
    folder.mkdir()
    other.mkdir()
    for name in ("a.png", "b.png"):
        (folder / name).write_bytes((work["images"] / "good0.png").read_bytes())
    (other / "a.png").write_bytes((work["images"] / "good0.png").read_bytes())
    originals = {p: p.read_bytes() for p in (*folder.iterdir(), *other.iterdir())}
    ref = model_ref(weights=str(work["model"]))
    manifest = tmp_path / "m.jsonl"
    handler = DerainModelHandler(ref)
    _run(
        _in_process(),
        DerainImages(
            [str(folder), str(other / "a.png"), str(folder / "a.png")],
            str(folder),
            handler,
            manifest=str(manifest),
        ),
    )
    rows = {r["input"]: r for r in _manifest(manifest)}
    assert len(rows) == 3  # folder/a.png given twice, listed once
    assert rows[str(folder / "a.png")]["cause"] == f"{folder / 'a.png'} would overwrite the input"
    assert rows[str(other / "a.png")]["cause"].endswith(f"would overwrite the input {folder}/a.png")
    assert rows[str(folder / "b.png")]["status"] == "failed"
    for path, data in originals.items():
        assert path.read_bytes() == data
    out = tmp_path / "out"
    _run(
        _in_process(),
        DerainImages([str(folder / "a.png"), str(other / "a.png")], str(out), handler),
    )
    rows = {r["input"]: r for r in _manifest(out / transforms.MANIFEST)}
    assert rows[str(other / "a.png")]["status"] == "written"  # first by path
    assert rows[str(folder / "a.png")]["cause"] == f"{out / 'a.png'} is also the output of " + str(
        other / "a.png"
    )


# ------------------------------------------------------------------------------- evaluation


def _reference(work):
    return evaluation.evaluate(inference.Derainer(saving.load_model(work["model"])), work["data"])


@pytest.mark.slow
def test_scores_equal_tfderain_evaluate(work, first_run):
    expected = _reference(work)
    rows = [json.loads(line) for line in (first_run["scores"] / "scores.jsonl").open()]
    scored = [r for r in rows if r["status"] == "scored"]
    assert [r["name"] for r in scored] == [s.name for s in expected.scores]
    for row, score in zip(scored, expected.scores, strict=True):
        for key in ("psnr", "ssim", "input_psnr", "input_ssim"):
            assert abs(row[key] - getattr(score, key)) <= 1e-6, (row, score)
    summary = json.loads((first_run["scores"] / "summary.json").read_text())
    assert abs(summary["mean_psnr"] - expected.mean_psnr) <= 1e-6
    assert abs(summary["mean_ssim"] - expected.mean_ssim) <= 1e-6
    assert summary["images"] == 3 and summary["failed"] == 1 == len(expected.failed)
    (failed,) = [r for r in rows if r["status"] == "failed"]
    assert failed["name"] == "3" and "truncated or corrupt" in failed["cause"]
    assert first_run["counts"]["pairs_scored"] == 3
    assert first_run["counts"]["pairs_failed"] == 1


@pytest.mark.slow
def test_csv_of_pairs_scores_like_the_folder(work, tmp_path, capsys):
    """A CSV of rainy,clean paths (what remote datasets use), through the command line."""
    listing = tmp_path / "pairs.csv"
    relative = os.path.relpath(work["data"], tmp_path)  # resolved against the CSV's folder
    lines = ["name,rainy,clean"] + [
        f"{k},{relative}/input/{k}.png,{work['data'] / 'target' / f'{k}.png'}" for k in range(3)
    ]
    listing.write_text("\n".join(lines) + "\n")
    out = tmp_path / "scores"
    status = beam_cli.run(
        ["evaluate", "--data", str(listing), "-o", str(out), "--weights", str(work["model"]),
         "--direct_running_mode=in_memory"]
    )  # fmt: skip
    assert status == 0
    expected = _reference(work)
    summary = json.loads((out / "summary.json").read_text())
    assert abs(summary["mean_psnr"] - expected.mean_psnr) <= 1e-6
    assert f"PSNR {expected.mean_psnr:.3f} dB" in capsys.readouterr().out


@pytest.mark.slow
def test_command_line_derain_reports_failures(work, tmp_path, capsys):
    out = tmp_path / "out"
    args = [str(work["images"] / n) for n in ("good0.png", "text.png", "absent.png")]
    status = beam_cli.run(
        ["derain", *args, "-o", str(out), "--weights", str(work["model"]), "--suffix", "_d",
         "--direct_running_mode=in_memory"]
    )  # fmt: skip
    assert status == 1
    assert (out / "good0_d.png").is_file()
    assert "derained 1 image(s), 0 kept from an earlier run, 2 failed" in capsys.readouterr().err
    rows = {Path(r["input"]).name: r for r in _manifest(out / transforms.MANIFEST)}
    assert rows["absent.png"]["cause"] == "no such file or directory"
    assert rows["text.png"]["output"] == str(out / "text_d.png")


# --------------------------------------------------------------------------------- the model


def test_local_model_travels_with_the_pipeline_or_is_staged(work, tmp_path):
    data = work["model"].read_bytes()
    carried = model_ref(weights=str(work["model"]))
    assert carried.uri is None and carried.data == data
    staged = model_ref(weights=str(work["model"]), staging=str(tmp_path / "stage"))
    assert staged.data is None and Path(staged.uri).read_bytes() == data
    local = tmp_path / "fetched.keras"
    staged.fetch(str(local))
    assert local.read_bytes() == data
    Path(staged.uri).write_bytes(data[:-1] + b"x")
    with pytest.raises(saving.ModelFileError, match="changed since the pipeline was built"):
        staged.fetch(str(local))


def test_default_model_and_bad_model_options():
    ref = model_ref()
    assert ref.data == beam_model.default_model_path().read_bytes()
    with pytest.raises(ValueError, match="needs weights"):
        model_ref("prenet")
    with pytest.raises(ValueError, match="needs --model"):
        model_ref(weights="x.pth")


def test_official_checkpoint_is_converted_when_the_pipeline_is_built(shared_dir, tmp_path):
    checkpoint = shared_dir / "weights/PReNet/logs/Rain100L/PRN6_r/net_latest.pth"
    ref = model_ref("prn_r", weights=str(checkpoint))
    local = tmp_path / "model.keras"
    ref.fetch(str(local))
    assert saving.read_metadata(local)["arch"] == "prn_r"


def test_preset_is_resolved_when_the_pipeline_is_built(work, monkeypatch):
    presets = pytest.importorskip("tfderain.presets")
    asked = []

    def resolve(name, progress=True):
        asked.append(name)
        return work["model"]

    monkeypatch.setattr(presets, "resolve", resolve)
    ref = model_ref("prn_r:test")
    assert asked == ["prn_r:test"]
    assert ref.data == work["model"].read_bytes() and ref.name == "prn_r:test"


def test_density_matches_the_density_estimator():
    from tfderain.density_estimation import DensityEstimator

    model = models.build("mcodenet", channels=4, code_channels=8, reduction=2, iterations=2)
    image = np.random.default_rng(1).random((40, 56, 3), np.float32)
    value, level = beam_model.LoadedModel(model).density(image)
    expected = DensityEstimator(model).estimate(image)
    assert abs(value - expected.value) <= 1e-6 and level == expected.level
    # Models that estimate no density leave the manifest's density columns empty.
    assert beam_model.LoadedModel(models.build("prn", stages=1, channels=4)).density(image) is None


def test_help_loads_neither_tensorflow_nor_beam():
    code = (
        "import sys; from tfderain.beam import __main__ as m; m.build_parser().format_help(); "
        "print('tensorflow' in sys.modules, 'apache_beam' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO
    )
    assert done.stdout.split() == ["False", "False"], done.stderr
