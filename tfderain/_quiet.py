"""A quiet TensorFlow for the command line.

TensorFlow's C++ side writes to file descriptor 2 directly: INFO lines while it loads (oneDNN,
CUDA probing), before ``absl::InitializeLog()`` and so before ``TF_CPP_MIN_LOG_LEVEL`` applies,
and notices such as the TFLite quantizer's ``fully_quantize: 0, inference_type: 6, ...``. Its
Python side logs through ``logging``, ``absl`` and ``warnings``. Inside :func:`tensorflow_logs`
(unless ``verbose``) descriptor 2 is a pipe whose lines are passed on to the real stderr except
those log lines, while Python's ``sys.stderr`` (messages, progress bars) writes to the real
stderr directly, so nothing is delayed and a real error stays visible.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
import warnings
from collections.abc import Iterator

#: C++ log lines (``I0000 00:00:1796600292.747446    7468 port.cc:153] ...``), absl's notice
#: about them, the continuation of the CPU-feature notice and the TFLite quantizer's notice.
_LOG_LINE = re.compile(
    r"^(?:[IWEF]\d{4} \d+:\d+:\d+\.\d+\s+\d+ \S+:\d+\] "
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate "
    r"compiler flags\.$"
    r"|fully_quantize: \d+, inference_type: \d+, input_inference_type: \w+, "
    r"output_inference_type: \w+$)"
)


def is_log_line(line: str) -> bool:
    """Whether ``line`` is a TensorFlow log line that the quiet mode drops."""
    return bool(_LOG_LINE.match(line))


@contextlib.contextmanager
def tensorflow_logs(verbose: bool = False) -> Iterator[None]:
    """Load TensorFlow (through :mod:`tfderain._keras`); inside the block its log lines are
    hidden unless ``verbose``.

    An explicit ``TF_CPP_MIN_LOG_LEVEL`` in the environment is kept either way. Nothing is
    changed when TensorFlow is already loaded (e.g. ``tfderain.cli.main`` called from Python).
    """
    if "tensorflow" in sys.modules:
        yield
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "3")
    if verbose:
        from tfderain import _keras  # noqa: F401

        yield
        return
    for name in ("tensorflow", "absl", "tf_keras"):  # deprecations, retracing, saving hints
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"(tensorflow|tf_keras|keras|absl)(\.|$)")
    with _filtered_descriptor_2():
        from tfderain import _keras  # noqa: F401

        yield


@contextlib.contextmanager
def _filtered_descriptor_2() -> Iterator[None]:
    """Descriptor 2 through a filter dropping :func:`is_log_line` lines; ``sys.stderr`` direct."""
    try:
        direct = sys.stderr is sys.__stderr__ and sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # a replaced or closed stderr
        direct = False
    if not direct:
        yield
        return
    python_stderr = sys.stderr
    python_stderr.flush()
    terminal = os.dup(2)  # stays open: logging handlers made inside may keep writing to it
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    pump = threading.Thread(target=_pass_on, args=(read_end, terminal), daemon=True)
    pump.start()
    sys.stderr = open(  # noqa: SIM115
        terminal,
        "w",
        buffering=1,
        encoding=python_stderr.encoding,
        errors=python_stderr.errors,
        closefd=False,
    )
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stderr = python_stderr
        os.dup2(terminal, 2)  # closes the pipe's write end: the pump reads to its end and stops
        pump.join(timeout=10)


def _pass_on(read_end: int, terminal: int) -> None:
    """Copy the lines read from ``read_end`` to ``terminal``, except TensorFlow's log lines."""
    pending = b""
    with open(read_end, "rb", buffering=0) as pipe:
        while chunk := pipe.read(65536):
            *lines, pending = (pending + chunk).split(b"\n")
            kept = [line for line in lines if not is_log_line(_text(line))]
            if kept:
                _write(terminal, b"".join(line + b"\n" for line in kept))
    if pending and not is_log_line(_text(pending)):
        _write(terminal, pending)


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _text(line: bytes) -> str:
    return line.decode("utf-8", errors="replace").rstrip("\r")
