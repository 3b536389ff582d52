"""The machine a measurement runs on: its CPU's model name and instruction-set flags.

One reader of ``/proc/cpuinfo`` for every benchmark and report that records where it ran
(:func:`cpu`); each caller picks the flags that matter to it (:meth:`CPU.having`) and prints them
its own way. Off Linux (no ``/proc/cpuinfo``) the name is the platform's and the flags are empty.
"""

from __future__ import annotations

import dataclasses
import os
import platform
from collections.abc import Iterable
from pathlib import Path

#: Where Linux describes the CPU.
CPUINFO = Path("/proc/cpuinfo")
#: The name of a CPU nothing describes.
UNKNOWN = "unknown CPU"


@dataclasses.dataclass(frozen=True)
class CPU:
    """A CPU as the kernel describes it.

    Attributes:
        name: the model name (``AMD EPYC 7B13``), else the platform's processor or machine name,
            else :data:`UNKNOWN`.
        flags: instruction-set flags as ``/proc/cpuinfo`` spells them (x86 ``flags``, Arm
            ``Features``: ``avx2``, ``avx512_vnni``, ``asimddp`` …).
        described: whether the name and flags come from ``/proc/cpuinfo``.
    """

    name: str
    flags: frozenset[str] = frozenset()
    described: bool = True

    def having(self, wanted: Iterable[str]) -> list[str]:
        """The flags of ``wanted`` this CPU has, in ``wanted``'s order."""
        return [flag for flag in wanted if flag in self.flags]


def _platform_name() -> str:
    return platform.processor() or platform.machine() or UNKNOWN


def cpu(cpuinfo: str | os.PathLike = CPUINFO) -> CPU:
    """This machine's CPU, read from ``cpuinfo`` (the first processor's model name and flags)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return CPU(_platform_name(), described=False)
    name, flags = "", None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not name:
            name = value.strip()
        elif key in ("flags", "Features") and flags is None:
            flags = frozenset(value.split())
    return CPU(name or _platform_name(), flags or frozenset())
