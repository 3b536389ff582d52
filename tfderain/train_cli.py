"""The options of ``tfderain train`` (``python training/train.py`` runs the same command).

``--config`` is a recipe shipped in the package (``tfderain/configs/<name>.yaml``, named without
the extension: ``--config prenet``) or the path of a YAML file. Building the parser does not load
TensorFlow; :func:`run_from_args` imports :mod:`tfderain.training` when a run starts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

#: Folder of the packaged recipes.
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
#: Where the recipes lived before they moved into the package (old commands still work).
OLD_CONFIG_DIR = ("training", "configs")
#: ``--precision`` choices (``tfderain.training.PRECISIONS``, kept here so that ``--help`` needs
#: no TensorFlow; a test checks they are equal).
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
#: ``--strategy`` choices (``tfderain.distribute.STRATEGIES``, likewise).
STRATEGIES = ("default", "mirrored", "multiworker")


def recipes() -> list[str]:
    """Names of the packaged training recipes (``--config NAME``)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def find_config(config: str) -> Path:
    """The YAML file ``--config`` names: a file path, or a packaged recipe name.

    A path into the old ``training/configs/`` folder that does not exist any more is read from
    the packaged recipe of the same name, with a note on stderr.

    Raises:
        ValueError: neither a file nor a packaged recipe (the message lists the recipes).
    """
    path = Path(config)
    if path.is_file():
        return path
    if path.exists():
        raise ValueError(f"--config {config}: not a file")
    name = path.name.removesuffix(".yaml").removesuffix(".yml")
    packaged = CONFIG_DIR / f"{name}.yaml"
    if packaged.is_file():
        if len(path.parts) == 1:
            return packaged
        if path.parts[-3:-1] == OLD_CONFIG_DIR:
            print(
                f"note: {config} moved into the package: using the recipe {name!r} "
                f"(--config {name})",
                file=sys.stderr,
            )
            return packaged
    raise ValueError(
        f"--config {config}: no such file, and no packaged recipe of that name "
        f"(recipes: {', '.join(recipes())})"
    )


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``train`` options to ``parser``."""
    parser.add_argument(
        "--config",
        required=True,
        metavar="RECIPE",
        help="a packaged recipe name (e.g. prenet; listed below) or a YAML file",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (dotted, value parsed as YAML); repeatable",
    )
    parser.add_argument(
        "--model",
        help="the architecture to train (same as --set model.name=), or a preset name or .keras "
        "file to fine-tune from (its weights start the run: --set model.init=)",
    )
    parser.add_argument("--output-dir", help="run folder (same as --set output_dir=...)")
    parser.add_argument("--precision", choices=PRECISIONS, help="Keras mixed-precision policy")
    parser.add_argument("--jit", action="store_true", default=None, help="XLA-compile the step")
    parser.add_argument(
        "--strategy",
        choices=STRATEGIES,
        help="tf.distribute strategy (see tfderain.distribute); same as --set distribute.strategy=",
    )
    parser.add_argument(
        "--deterministic",
        action="store_true",
        default=None,
        help="tf.config.experimental.enable_op_determinism() (slower)",
    )
    return parser


def recipes_epilog() -> str:
    """The ``--help`` text listing the packaged recipes."""
    return (
        f"packaged recipes: {', '.join(recipes())}. Every config key is documented in "
        "tfderain/training/config.py (DEFAULTS). Starting the same command again resumes a run."
    )


def overrides_from_args(args: argparse.Namespace) -> list[str]:
    """The ``--set`` overrides, followed by those the dedicated options stand for."""
    overrides = list(args.overrides)
    if args.model is not None:
        overrides += _model_overrides(args.model)
    if args.output_dir is not None:
        overrides.append(f"output_dir={json.dumps(str(args.output_dir))}")
    for key in ("precision", "jit", "deterministic"):
        value = getattr(args, key)
        if value is not None:
            overrides.append(f"{key}={json.dumps(value)}")
    if args.strategy is not None:
        overrides.append(f"distribute.strategy={args.strategy}")
    return overrides


def _model_overrides(model: str) -> list[str]:
    """``--model``: an architecture name, or weights to fine-tune from (a preset or .keras)."""
    from tfderain import presets, saving

    if presets.is_preset_name(model):
        arch = presets.get(model).arch
    elif model.endswith(".keras"):
        arch = saving.read_metadata(model)["arch"]
    else:
        return [f"model.name={json.dumps(model)}"]
    return [f"model.name={json.dumps(arch)}", f"model.init={json.dumps(model)}"]


def run_from_args(args: argparse.Namespace) -> Any:
    """Load the config named by parsed :func:`add_arguments` options and train.

    Returns:
        the :class:`tfderain.training.TrainResult`.
    """
    from tfderain import training

    config = training.load_config(find_config(args.config), overrides_from_args(args))
    return training.train(config)
