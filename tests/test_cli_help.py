"""A calm command line: ``--help`` of every command without TensorFlow, the lazy root package,
``--help`` choices equal to the library's, and no TensorFlow log lines unless ``-v``."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tfderain import _args, _quiet, cli, train_cli

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = ("training/train.py", "export/savedmodel.py", "export/tflite.py")


def _python(args: list[str], cwd: Path = REPO, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python ARGS`` in a fresh process that imports this checkout's ``tfderain``."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[list[str]]:
    """Every command path of ``parser``: ``[]``, ``["derain"]``, ``["export", "tflite"]`` …"""
    found = [list(prefix)]
    for action in parser._actions:  # noqa: SLF001
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for name, sub in action.choices.items():
                found += _commands(sub, (*prefix, name))
    return found


#: Runs ``--help`` of each command in one fresh process and reports, for each, the exit code,
#: whether TensorFlow was imported by then, and the help text.
HELP_PROBE = r"""
import contextlib, io, json, runpy, sys

commands, scripts = json.loads(sys.argv[1]), json.loads(sys.argv[2])
report = []

def probe(label, run):
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        try:
            run()
            code = None
        except SystemExit as exc:
            code = exc.code
    report.append({"label": label, "code": code, "tf": "tensorflow" in sys.modules,
                   "help": text.getvalue()})

import tfderain

report.append({"label": "import tfderain", "code": 0, "tf": "tensorflow" in sys.modules,
               "help": ""})
from tfderain import cli

for argv in commands:
    probe(" ".join(["tfderain", *argv]), lambda: cli.main([*argv, "--help"]))
for script in scripts:
    sys.argv = [script, "--help"]
    probe(script, lambda: runpy.run_path(script, run_name="__main__"))
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def helps() -> dict[str, dict]:
    commands = _commands(cli.build_parser())
    done = _python(["-c", HELP_PROBE, json.dumps(commands), json.dumps(list(SCRIPTS))])
    assert done.returncode == 0, done.stderr
    return {item["label"]: item for item in json.loads(done.stdout.splitlines()[-1])}


def test_every_help_is_printed_without_importing_tensorflow(helps):
    expected = {
        "import tfderain",
        "tfderain",
        "tfderain derain",
        "tfderain density",
        "tfderain evaluate",
        "tfderain convert",
        "tfderain train",
        "tfderain models",
        "tfderain data",
        "tfderain data pack",
        "tfderain data info",
        "tfderain export",
        "tfderain export savedmodel",
        "tfderain export tflite",
        *SCRIPTS,
    }
    assert expected <= set(helps)
    for label, item in helps.items():
        assert item["code"] == 0, label
        assert not item["tf"], f"{label} imported tensorflow"
        if label != "import tfderain":
            assert item["help"].startswith("usage: "), label


def test_top_level_help_is_plain_text_listing_every_command(helps):
    text = helps["tfderain"]["help"]
    assert "``" not in text and "`" not in text
    assert cli.DESCRIPTION.split(":")[0] in " ".join(text.split())
    for command in ("derain", "density", "evaluate", "convert", "train", "models", "data"):
        assert f"\n    {command} " in text, command
    assert "\n    export " in text


def test_train_help_is_the_scripts_help_and_lists_the_packaged_recipes(helps):
    text = helps["tfderain train"]["help"]
    assert helps["training/train.py"]["help"] == text
    for option in ("--config", "--set", "--output-dir", "--precision", "--strategy", "--jit"):
        assert option in text
    assert "prenet" in text and "restormer" in text


def test_export_scripts_take_exactly_the_cli_options(helps):
    for script, command in (
        ("export/savedmodel.py", "tfderain export savedmodel"),
        ("export/tflite.py", "tfderain export tflite"),
    ):
        assert helps[script]["help"] == helps[command]["help"]
        assert "--weights" in helps[script]["help"] and "-o OUTPUT" in helps[script]["help"]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subcommands of ``parser`` by name."""
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_help_choices_equal_the_librarys_own():
    from tfderain import distribute, inference, training
    from tfderain.data import layouts
    from tfderain.export import options

    assert cli.LAYOUTS is layouts.LAYOUTS
    assert cli.SPLIT_ORDERS is layouts.SPLIT_ORDERS
    assert cli.QUANTIZATIONS is options.QUANTIZATIONS
    assert cli.QAT_TARGETS is options.QAT_TARGETS
    export = _subparsers(cli.build_parser())["export"]
    tflite = {action.dest: action for action in _subparsers(export)["tflite"]._actions}
    assert tflite["qat_loss"].choices is options.QAT_LOSSES
    assert f"else {options.DEFAULT_QAT_STEPS})" in tflite["qat_steps"].help
    assert f"else {options.DEFAULT_QAT_BATCH_SIZE};" in tflite["qat_batch_size"].help
    assert f"else {options.DEFAULT_QAT_PATCH_SIZE};" in tflite["qat_patch_size"].help
    parser = argparse.ArgumentParser()
    _args.add_output_arguments(parser)
    defaults = parser.parse_args([])
    assert defaults.tile == inference.DEFAULT_TILE
    assert defaults.max_pixels == inference.DEFAULT_MAX_PIXELS
    assert defaults.batch_size == inference.DEFAULT_BATCH_SIZE
    assert train_cli.PRECISIONS == training.PRECISIONS
    assert train_cli.STRATEGIES == distribute.STRATEGIES


def test_root_package_exposes_its_public_names_lazily():
    import tfderain
    from tfderain import api

    assert tfderain.__version__ == "0.1.0"
    for name in ("build_model", "load_model", "derain", "estimate_density", "list_models"):
        assert getattr(tfderain, name) is getattr(api, name)
        assert name in tfderain.__all__ and name in dir(tfderain)
    assert tfderain.Density is api.Density
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = tfderain.nothing


# ------------------------------------------------------------------------------ log silence


def test_tensorflow_log_lines_are_recognised():
    assert _quiet.is_log_line(
        "I0000 00:00:1796600292.747446    7468 cudart_stub.cc:31] Could not find cuda drivers"
    )
    assert _quiet.is_log_line(
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
    )
    assert _quiet.is_log_line("E0000 00:00:1796600354.391158 8400 cuda_platform.cc:52] failed")
    assert _quiet.is_log_line(
        "fully_quantize: 0, inference_type: 6, input_inference_type: FLOAT32, "
        "output_inference_type: FLOAT32"
    )
    assert not _quiet.is_log_line("tfderain: error: x.png: no such file")
    assert not _quiet.is_log_line("Traceback (most recent call last):")


def test_the_stderr_filter_drops_log_lines_and_passes_everything_else():
    source_read, source_write = os.pipe()
    sink_read, sink_write = os.pipe()
    written = (
        b"W0000 00:00:1796600292.7 7468 port.cc:153] oneDNN custom operations are on.\n"
        b"a real problem\n"
        b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        b"no newline at the end"
    )
    os.write(source_write, written)
    os.close(source_write)
    _quiet._pass_on(source_read, sink_write)  # noqa: SLF001
    os.close(sink_write)
    with open(sink_read, "rb") as sink:
        assert sink.read() == b"a real problem\nno newline at the end"


def _log_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if _quiet.is_log_line(line)]


@pytest.mark.slow
def test_derain_of_a_tiny_image_prints_only_its_summary(tmp_path):
    from tfderain import models
    from tfderain.saving import save_model

    weights = save_model(models.build("prn_r", stages=2, channels=8), tmp_path / "tiny.keras")
    rainy = np.random.default_rng(1).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "rainy.png"), rainy)
    args = ["-m", "tfderain.cli", "derain", "rainy.png", "-o", "out.png", "-w", str(weights)]
    done = _python(args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "derained 1 image(s), 0 failed\n"
    assert cv2.imread(str(tmp_path / "out.png")).shape == (24, 32, 3)


@pytest.mark.slow
def test_verbose_shows_the_log_lines_that_are_hidden_by_default():
    # Not vacuous: on this TensorFlow build, loading it does log (oneDNN, CUDA probing).
    loud = _python(["-m", "tfderain.cli", "models", "-v"])
    assert loud.returncode == 0, loud.stderr
    assert "prenet" in loud.stdout
    assert _log_lines(loud.stderr), loud.stderr


@pytest.mark.parametrize(
    ("argv", "verbose"),
    [
        (["models"], False),
        (["-v", "models"], True),
        (["models", "-v"], True),
        (["--verbose", "export", "tflite", "-o", "x.tflite"], True),
        (["export", "tflite", "-o", "x.tflite", "--verbose"], True),
        (["train", "--config", "prenet"], False),
        (["train", "--config", "prenet", "-v"], True),
    ],
)
def test_verbose_is_accepted_before_or_after_the_command(argv, verbose):
    assert cli.build_parser().parse_args(argv).verbose is verbose
