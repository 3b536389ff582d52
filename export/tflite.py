"""Export a model to TFLite (optionally quantized) with its descriptor.

Same options as ``tfderain export tflite``::

    python export/tflite.py --model prenet \
        --weights ../shared/weights/PReNet/logs/Rain100H/PReNet6/net_latest.pth \
        --quant int8 --tile 256 --uint8-io -o prenet_int8.tflite

writes ``prenet_int8.tflite`` and ``prenet_int8.json`` (see ``export/README.md``). A ``.keras``
file names its own architecture: ``--weights model.keras`` needs no ``--model``.
"""

from __future__ import annotations

import sys

from tfderain.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", "tflite", *sys.argv[1:]]))
