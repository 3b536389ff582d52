"""Train a tfderain model from a YAML recipe (same as ``tfderain train``).

Example::

    python training/train.py --config training/configs/prenet.yaml \
        --set data.source=/data/RainTrainH --set output_dir=runs/prenet_rain100h

Starting the same command again resumes an interrupted run. See :mod:`tfderain.training` for
the config keys and the run folder layout.
"""

from __future__ import annotations

import sys

from tfderain.training import main

if __name__ == "__main__":
    sys.exit(main())
