"""A quiet TensorFlow start for the command line.

TensorFlow's C++ runtime writes INFO lines (oneDNN, CUDA probing, CPU features) straight to file
descriptor 2 while it loads, before ``absl::InitializeLog()`` and so before
``TF_CPP_MIN_LOG_LEVEL`` takes effect, and its Python side logs through ``logging`` and ``absl``.
:func:`load_tensorflow` silences all of that unless ``verbose``: it sets the log-level variables
before the import, runs the import (and the device probe) with descriptor 2 sent to a temporary
file, then writes back whatever was not one of those log lines (a real error stays visible).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import warnings

#: C++ log lines (``I0000 00:00:1796600292.747446    7468 port.cc:153] ...``), absl's notice
#: about them, and the continuation line of the CPU-feature notice.
_LOG_LINE = re.compile(
    r"^(?:[IWEF]\d{4} \d+:\d+:\d+\.\d+\s+\d+ \S+:\d+\] "
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate "
    r"compiler flags\.$)"
)


def is_log_line(line: str) -> bool:
    """Whether ``line`` is a TensorFlow start-up log line that the quiet mode drops."""
    return bool(_LOG_LINE.match(line))


def load_tensorflow(verbose: bool = False) -> None:
    """Import TensorFlow (through :mod:`tfderain._keras`), quietly unless ``verbose``.

    An explicit ``TF_CPP_MIN_LOG_LEVEL`` in the environment is kept either way. Nothing is
    changed when TensorFlow is already loaded (e.g. ``tfderain.cli.main`` called from Python).
    """
    if "tensorflow" in sys.modules:  # already loaded: its set-up is the caller's
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "3")
    if not verbose:
        # Python-side notices of TensorFlow and Keras (deprecations, retracing, saving hints).
        for name in ("tensorflow", "absl", "tf_keras"):
            logging.getLogger(name).setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", module=r"(tensorflow|tf_keras|keras|absl)(\.|$)")
    if verbose:
        from tfderain import _keras  # noqa: F401

        return
    sys.stderr.flush()
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            from tfderain._keras import tf

            tf.config.list_physical_devices()  # CUDA is probed (and logs) here
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode("utf-8", errors="replace")
            kept = [line for line in text.splitlines() if line.strip() and not is_log_line(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr)
