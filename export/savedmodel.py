"""Export a tfderain model as a SavedModel for TensorFlow Serving.

Same options as ``tfderain export savedmodel``::

    python export/savedmodel.py --weights runs/prenet/model.keras -o exported/prenet --version 1

writes ``exported/prenet/1/`` with the signatures ``serving_default`` (float32),
``derain_uint8`` and ``derain_image_bytes`` (PNG/JPEG bytes in, PNG out). A ``.keras`` file names
its own architecture; an official checkpoint needs ``--model NAME``; with neither option the
bundled default model is exported. See :mod:`tfderain.export.savedmodel` and
``export/README.md``.
"""

from __future__ import annotations

import sys

from tfderain.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", "savedmodel", *sys.argv[1:]]))
