"""Build TFLite files for the model zoo and write ``export/REPORT.md``.

What is measured, how the official weights are chosen and every option:
:mod:`tfderain.export.report` (``python export/report.py --help``). For example::

    python export/report.py --models prenet --formats none,fp16,dynamic,int8,qat
    python export/report.py --models prenet,pcnet --formats none,int8,qat --time-limit 3600

The test set and the official weights are read from ``../shared`` beside the checkout; models
given by ``--weights NAME=FILE`` load through :func:`tfderain.load_model`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tfderain.api import load_model
from tfderain.export.report import main

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    sys.exit(
        main(shared=HERE.parent.parent / "shared", output=HERE / "REPORT.md", load_model=load_model)
    )
