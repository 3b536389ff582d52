"""Reduced configs of every registered model, shared by the tests.

Each model declares its reduced config once, in its registration (``tiny=`` of ``@register``,
:class:`tfderain.models.Tiny`); this module only collects them. ``crdnet`` and ``didmdn`` have
none (fixed networks whose classifiers take 512×512 inputs): their recipes are smoke-tested on
``crdnet_anysize`` (same network and losses, at the smallest size it accepts, 128) and on
``didmdn_derain`` (the deraining network alone, without the density loss).
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from tfderain import models


def tiny_models() -> dict[str, tuple[dict[str, Any], int]]:
    """``{name: (reduced builder config, smoke-test patch size)}`` of every model that has one;
    the configs are copies, free to change."""
    found = {}
    for name in models.names():
        tiny = models.spec(name).tiny
        if tiny is not None:
            found[name] = (copy.deepcopy(dict(tiny.config)), int(tiny.patch_size))
    return found


#: A reduced builder config per model (tiny widths, few blocks, so that a forward pass is cheap)
#: and the patch size of the smoke test (a multiple the model accepts).
TINY_MODELS: dict[str, tuple[dict[str, Any], int]] = tiny_models()


@functools.cache
def layer_classes(name: str) -> frozenset[type]:
    """The layer classes of model ``name`` built at its reduced config (built once per run)."""
    config, _ = TINY_MODELS[name]
    return frozenset(type(layer) for layer in models.build(name, **config).layers)
