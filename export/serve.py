"""Serve an exported SavedModel over TF Serving's gRPC API on 127.0.0.1.

Example::

    python export/serve.py exported/prenet --port 8500 --model-name prenet

answers ``PredictionService/Predict`` and ``GetModelMetadata`` like TensorFlow Serving, for local
development and tests; see :mod:`tfderain.export.serving` and ``export/README.md``.
"""

from __future__ import annotations

import sys

from tfderain.export.serving import main

if __name__ == "__main__":
    sys.exit(main())
