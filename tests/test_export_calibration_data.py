"""``tfderain.export.calibration_data``: the images int8 calibration and QAT learn ranges from.

The calibration itself is checked through exports (``test_export_tflite.py``,
``test_export_qat.py``); here, what is done to the images.
"""

from __future__ import annotations

import numpy as np

from tfderain.export.calibration_data import with_black_and_white


def test_black_and_white_pixels_are_added_to_a_copy_of_the_first_image():
    rng = np.random.default_rng(0)
    images = [rng.uniform(0.2, 0.7, (8, 8, 3)).astype(np.float32) for _ in range(2)]
    before = [image.copy() for image in images]
    pinned = with_black_and_white(images)
    assert pinned[0].min() == 0.0 and pinned[0].max() == 1.0
    assert np.count_nonzero(pinned[0] != before[0]) == 6  # two pixels, three channels
    assert pinned[1] is images[1]
    for image, copy in zip(images, before, strict=True):
        np.testing.assert_array_equal(image, copy)
    assert with_black_and_white([]) == []
