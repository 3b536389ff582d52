"""The one place that chooses the Keras implementation.

tfderain builds on the Keras 2 API provided by ``tf_keras`` because TensorFlow Model Optimization's
quantization-aware training only accepts ``tf_keras`` models. Every other module imports ``keras``
from here and never from ``tensorflow``, ``tf_keras`` or ``keras`` directly.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

__all__ = ["keras", "tf"]
