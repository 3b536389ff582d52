"""Make ``examples/rainy.png``: synthetic rain on a public-domain photograph.

The photo is ``tuxpaint-skyline-sf-dusk`` (the San Francisco skyline at dusk by Rich Bourgerie,
NOAA; public domain; shipped by Debian's ``tuxpaint-data``, listed in
``training/data/LICENSES.md``), extracted by ``python training/data/fetch_photos.py``. The rain is
:func:`tfderain.data.synthetic.add_rain` (style ``rain1400``, density 0.4, seed 7)::

    python training/data/fetch_photos.py --licenses permissive
    python examples/make_rainy.py            # writes examples/rainy.png and examples/clean.png

The clean photo is kept beside it (``examples/clean.png``), so the sample has a ground truth.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from tfderain import io
from tfderain.data.synthetic import add_rain

HERE = Path(__file__).resolve().parent
PHOTO = "tuxpaint-skyline-sf-dusk.jpg"

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--photos", default=str(HERE.parent / "training/data/photos"))
args = parser.parse_args()
clean = io.read_image(Path(args.photos) / PHOTO).rgb
rainy, _, density = add_rain(clean, np.random.default_rng(7), density=0.4, style="rain1400")
io.write_image(HERE / "rainy.png", rainy)
io.write_image(HERE / "clean.png", clean)
print(f"wrote {HERE / 'rainy.png'} ({clean.shape[1]}x{clean.shape[0]}, density {density:.2f})")
