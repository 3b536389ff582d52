"""Command-line sizes of the hand-run benchmarks: a malformed value is a one-line usage error."""

from __future__ import annotations

import pytest
from conftest import load_script


def _load(name: str):
    return load_script(f"benchmarks/{name}.py", name)


@pytest.fixture(scope="module")
def int8_bench():
    return _load("bench_tflite_int8")


@pytest.mark.parametrize("flag", ["--size", "--breakdown-size"])
@pytest.mark.parametrize("value", ["320y480", "320x", "x480", "0x480", "320x480x3"])
def test_malformed_size_is_a_usage_error(int8_bench, capsys, flag, value):
    with pytest.raises(SystemExit) as stop:
        int8_bench.main([flag, value])
    assert stop.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"error: argument {flag}: expected HxW" in last and repr(value) in last


def test_size_is_height_then_width(int8_bench):
    assert int8_bench.height_width("160x240") == (160, 240)
    assert int8_bench.height_width("320X480") == (320, 480)


def test_tiling_benchmark_size_is_width_then_height(capsys):
    tiling = _load("bench_tiling_memory")
    with pytest.raises(SystemExit) as stop:
        tiling.main(["--size", "0x2160"])
    assert stop.value.code == 2
    assert "expected WIDTHxHEIGHT such as 3840x2160, got '0x2160'" in capsys.readouterr().err
