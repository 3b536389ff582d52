"""``tfderain._machine``: the CPU a measurement runs on, read from a (fake) /proc/cpuinfo."""

from __future__ import annotations

import platform

from tfderain import _machine

X86 = (
    "processor\t: 0\nmodel name\t: Example CPU 9000\n"
    "flags\t\t: fpu sse2 avx2 fma avx512f avx512bw avx512_vnni amx_tile amx_int8\n\n"
    "processor\t: 1\nmodel name\t: Second CPU\nflags\t\t: fpu\n"
)
ARM = "processor\t: 0\nFeatures\t: fp asimd asimddp i8mm\nCPU part\t: 0xd0c\n"


def test_the_first_processors_name_and_flags_are_read(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(X86)
    cpu = _machine.cpu(cpuinfo)
    assert cpu.name == "Example CPU 9000" and cpu.described
    assert "avx512_vnni" in cpu.flags and "avx2" in cpu.flags and len(cpu.flags) == 9
    # the flags a caller asks for, in the caller's order
    assert cpu.having(("amx_int8", "avx_vnni", "avx2")) == ["amx_int8", "avx2"]


def test_arm_features_are_flags_and_a_missing_name_is_the_platforms(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(ARM)
    cpu = _machine.cpu(cpuinfo)
    assert cpu.having(("avx2", "asimddp", "i8mm")) == ["asimddp", "i8mm"]
    assert cpu.name == (platform.processor() or platform.machine() or _machine.UNKNOWN)


def test_without_cpuinfo_the_platform_names_the_cpu(tmp_path):
    cpu = _machine.cpu(tmp_path / "missing")
    assert not cpu.described and cpu.flags == frozenset()
    assert cpu.name == (platform.processor() or platform.machine() or _machine.UNKNOWN)
