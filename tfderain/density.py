"""Rain-density levels, the one definition every layer uses.

DID-MDN (Zhang & Patel, "Density-aware Single Image De-raining using a Multi-stream Dense Network",
CVPR 2018) labels rain density as three levels; CRDNet and CODE-Net report theirs on the same scale,
and datasets label pairs with them. No TensorFlow here, so light modules (dataset layouts, the
command line) can read it.
"""

from __future__ import annotations

#: Rain-density levels from light to heavy; a level is an index into this tuple.
DENSITY_LEVELS = ("light", "medium", "heavy")

__all__ = ["DENSITY_LEVELS"]
