"""Train a tfderain model from a YAML recipe: the same command, with the same options, as
``tfderain train``.

Example::

    python training/train.py --config prenet \
        --set data.source=/data/RainTrainH --set output_dir=runs/prenet_rain100h

``--config`` is a recipe packaged in ``tfderain/configs/`` (by name) or a YAML file. Starting the
same command again resumes an interrupted run. See :mod:`tfderain.training` for the config keys
and the run folder layout, and ``--help`` for every option.
"""

from __future__ import annotations

import sys

from tfderain.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
