"""Every registered model passes the common harness (tests/model_harness.py) at its reduced
config: it builds, returns a dict with ``"derained"`` and its declared outputs, takes any size at
its multiple, saves to and loads from a ``.keras`` file with equal outputs, and its processor is
its registry entry's. A new architecture is checked here as soon as it registers."""

from __future__ import annotations

import pytest
from model_harness import check_model

from tfderain import models


@pytest.mark.parametrize("name", models.names())
def test_registered_model_passes_the_harness(name, tmp_path):
    if models.spec(name).tiny is None:
        pytest.skip(f"{name} has no reduced config (fixed network and input size)")
    check_model(name, tmp_path)


def test_only_networks_with_a_fixed_size_classifier_lack_a_reduced_config():
    # crdnet and didmdn: fixed widths and a density classifier that takes 512×512 images only
    # (their derain-only or any-size variants have reduced configs). Any other model declares
    # one, so that the harness above checks it.
    missing = [name for name in models.names() if models.spec(name).tiny is None]
    assert missing == ["crdnet", "didmdn"]
    for name in missing:
        assert models.spec(name).density_size is not None, name
