"""``tfderain.export.runtime``: exported files and their Keras models, run and timed alike.

Outputs of real files against Keras are checked with the exports (``test_export_tflite.py``,
``test_export_qat.py``); here, the wrappers themselves.
"""

from __future__ import annotations

import time

import numpy as np

from tfderain import models
from tfderain.export.runtime import WholeImageDerainer, latencies_side_by_side


def test_latencies_are_timed_in_turns_after_a_warm_up_each(monkeypatch):

    calls: list[str] = []

    class Runner:
        def __init__(self, name: str):
            self.name = name
            self.interpreter = self

        def run(self, image):
            assert image.shape == (8, 12, 3)
            calls.append(f"warm-up {self.name}")

        def invoke(self):
            calls.append(self.name)

    # A fake clock: A's invokes take 1, 5 and 2 s, B's 4, 4 and 9 s (each ``invoke`` advances it).
    spent = {"A": iter([1.0, 5.0, 2.0]), "B": iter([4.0, 4.0, 9.0])}
    clock = [0.0]

    def invoke_and_tick(self):
        calls.append(self.name)
        clock[0] += next(spent[self.name])

    Runner.invoke = invoke_and_tick
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    medians = latencies_side_by_side([Runner("A"), Runner("B")], (8, 12), repeats=3)
    assert calls == ["warm-up A", "warm-up B", "A", "B", "A", "B", "A", "B"]
    assert medians == [2.0, 4.0]


def test_a_whole_image_derainer_pads_to_the_multiple_and_crops_back():
    """PCNet's multiple is 4: a 10×7 image runs as 12×8, reflect-padded by the processor, and
    the ``derained`` output (not clipped: the evaluation applies the output rule) is cropped."""
    spec = models.spec("pcnet")
    seen = []

    def run(image):
        seen.append(image)
        return {"derained": 2.0 * image, "density": np.zeros(1)}

    derainer = WholeImageDerainer(run, spec)
    rgb = np.random.default_rng(0).random((10, 7, 3)).astype(np.float32)
    out = derainer.derain_array(rgb)
    (padded,) = seen
    assert padded.shape == (12, 8, 3)
    np.testing.assert_array_equal(padded, np.pad(rgb, ((0, 2), (0, 1), (0, 0)), mode="reflect"))
    np.testing.assert_array_equal(out, 2.0 * rgb)
    assert derainer.spec is spec
