"""The Android app's inference core (``android_demo/core``, plain Java) against Python.

* The JUnit 4 tests run on a plain JVM through ``android_demo/core/run_tests.sh``, on the
  committed golden vectors and on golden vectors written now by
  ``android_demo/tools/make_golden.py`` from a freshly converted model and LiteRT.
* The committed golden vectors are checked to be what the Python twin of the core computes from
  their recorded LiteRT outputs, and the twin is compared with ``tfderain.inference``.

Without ``javac`` the JVM tests skip, except with ``CI=true`` where that is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, load_script

CORE = REPO / "android_demo" / "core"
GOLDEN = CORE / "src" / "test" / "resources" / "golden"
RUN_TESTS = CORE / "run_tests.sh"


def _make_golden():
    return load_script("android_demo/tools/make_golden.py", "tfderain_make_golden")


def _require_jvm() -> None:
    missing = [tool for tool in ("javac", "java") if shutil.which(tool) is None]
    if not any(Path("/usr/share/java", jar).exists() for jar in ("junit4.jar", "junit.jar")):
        missing.append("/usr/share/java/junit4.jar")
    if missing:
        install = "apt-get install default-jdk-headless junit4"
        reason = f"JVM tests need {', '.join(missing)} ({install})"
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(f"{reason}; required when CI=true")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def core_build(tmp_path_factory) -> Path:
    """One folder for the compiled core and tests, shared by this module's JUnit runs."""
    return tmp_path_factory.mktemp("core_build")


def _run_junit(golden_dir: Path, build: Path, *classes: str) -> str:
    env = dict(os.environ, GOLDEN_DIR=str(golden_dir), CORE_BUILD_DIR=str(build))
    proc = subprocess.run(
        ["bash", str(RUN_TESTS), *classes], env=env, capture_output=True, text=True, timeout=600
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert "OK (" in output, output[-4000:]
    return output


@pytest.mark.slow
def test_jvm_core_passes_its_junit_tests_on_the_committed_goldens(core_build):
    _require_jvm()
    output = _run_junit(GOLDEN, core_build)
    count = int(output.split("OK (")[1].split()[0])
    assert count >= 20  # every test class ran


@pytest.mark.slow
def test_jvm_core_matches_goldens_written_now_from_litert(tmp_path, core_build):
    """Fresh int8 model → LiteRT tile outputs → Java reproduces Python's bytes."""
    _require_jvm()
    golden = _make_golden()
    golden.main(["--out", str(tmp_path), "--cases", "int8"])
    shutil.copytree(GOLDEN / "float", tmp_path / "float")  # float case: committed copy
    assert (tmp_path / "int8" / "tiles" / "000.in").is_file()
    output = _run_junit(tmp_path, core_build, "GoldenPipelineTest")
    assert "OK (3 tests)" in output


def _read_case(name: str):
    folder = GOLDEN / name
    case = json.loads((folder / "case.json").read_text())
    descriptor = json.loads((folder / case["spec"]).read_text())
    h, w = case["image"]["height"], case["image"]["width"]
    rgb = np.fromfile(folder / case["image"]["file"], np.uint8).reshape(h, w, 3)
    return folder, case, descriptor, rgb


@pytest.mark.parametrize("name", ["int8", "float"])
def test_committed_goldens_are_what_the_python_twin_computes(name):
    golden = _make_golden()
    folder, case, descriptor, rgb = _read_case(name)
    recorded = {(t["y"], t["x"]): t for t in case["tiles"]}
    seen = []

    def replay(data: bytes) -> list[bytes]:
        # The twin must cut and encode the same tiles, in the same order.
        tile = case["tiles"][len(seen)]
        assert data == (folder / tile["input"]).read_bytes(), f"tile {len(seen)} input differs"
        seen.append(tile)
        return [(folder / p).read_bytes() for p in recorded[tile["y"], tile["x"]]["outputs"]]

    result, _ = golden.derain(rgb, descriptor, replay)
    assert len(seen) == len(case["tiles"])
    assert result.astype("<f4").tobytes() == (folder / case["expected_float"]).read_bytes()
    from tfderain import io

    assert io.to_uint8(result).tobytes() == (folder / case["expected_rgb"]).read_bytes()


@pytest.mark.slow
def test_committed_goldens_stay_small():
    total = sum(p.stat().st_size for p in GOLDEN.rglob("*") if p.is_file())
    assert total < 200 * 1024, total


def test_python_twin_agrees_with_tfderain_inference_windows_and_quantization():
    from tfderain.inference import blend_window

    golden = _make_golden()
    # Windows: the twin (double, rounded once) vs tfderain (float32 throughout): the same shape,
    # a few float32 ulps apart (measured: at most 1.2e-7).
    for size, halo in ((256, 64), (256, 96), (32, 8), (24, 4)):
        for flags in ((True, False), (False, True), (True, True), (False, False)):
            ours = golden.window(size, halo, *flags)
            theirs = blend_window(size, halo, *flags)
            np.testing.assert_allclose(ours, theirs, rtol=0, atol=2.5e-7, err_msg=str(flags))
            np.testing.assert_array_equal(ours == 0, theirs == 0)
            np.testing.assert_array_equal(ours == 1, theirs == 1)
    # Quantization of 8-bit levels with scale 1/255 gives back the level (independent fact).
    levels = np.arange(256, dtype=np.uint8)
    q = golden.quantize(golden.to_float(levels), float(np.float32(1 / 255)), 0, "uint8")
    np.testing.assert_array_equal(q, levels)
    # Ties round away from zero (TFLite reference kernel), unlike numpy's rint.
    halves = np.array([0.5, 1.5, 2.5, -0.5], np.float32)
    np.testing.assert_array_equal(golden.quantize(halves, 1.0, 0, "int8"), [1, 2, 3, -1])
