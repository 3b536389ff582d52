"""Make ``examples/rainy.png``: synthetic rain on a public-domain (CC0) photograph.

The photo is ``budgie-beacon-street-sunset`` (Beacon Street, Boston, at sunset; CC0-1.0; shipped
by Debian's ``budgie-backgrounds``, listed in ``training/data/LICENSES.md``), one of the photos
``training/data/fetch_photos.py`` holds out of training (``HELD_OUT``: it writes them to
``held-out/``), so the sample shows the default model on a scene it never saw. It is downscaled
to a long side of 768 pixels (area averaging) and rained on by
:func:`tfderain.data.synthetic.add_rain` (style ``rain1400``, density 0.4, seed 7)::

    python training/data/fetch_photos.py --licenses permissive
    python examples/make_rainy.py            # writes examples/rainy.png and examples/clean.png

The clean photo is kept beside it (``examples/clean.png``), so the sample has a ground truth.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from tfderain import io
from tfderain.data.synthetic import add_rain

HERE = Path(__file__).resolve().parent
PHOTO = "held-out/budgie-beacon-street-sunset.png"
LONG_SIDE = 768

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--photos", default=str(HERE.parent / "training/data/photos"))
args = parser.parse_args()
photo = io.read_image(Path(args.photos) / PHOTO).rgb
height, width = photo.shape[:2]
scale = LONG_SIDE / max(height, width)
size = (round(width * scale), round(height * scale))
clean = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
rainy, _, density = add_rain(clean, np.random.default_rng(7), density=0.4, style="rain1400")
io.write_image(HERE / "rainy.png", rainy)
io.write_image(HERE / "clean.png", clean)
print(f"wrote {HERE / 'rainy.png'} ({size[0]}x{size[1]}, density {density:.2f})")
