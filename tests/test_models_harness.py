"""Every registered model passes the common harness (tests/model_harness.py) at its reduced
config: it builds, returns a dict with ``"derained"`` and its declared outputs, takes any size at
its multiple, saves to and loads from a ``.keras`` file with equal outputs, and its processor is
its registry entry's. A new architecture is checked here as soon as it registers."""

from __future__ import annotations

import pytest
from model_harness import check_model, package_classes

from tfderain import models
from tfderain._keras import keras


@pytest.mark.slow
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


def test_no_two_custom_layers_or_losses_share_a_serialized_name():
    # Keras finds a custom object by its registered name ("tfderain>Stack") and the quantization
    # scope by its class name; a second class of the same name would silently replace the first.
    classes = package_classes(keras.layers.Layer, "tfderain.export.rewrite", "tfderain.export.qat")
    classes |= package_classes(keras.losses.Loss, "tfderain.losses")
    names = sorted(cls.__name__ for cls in classes)
    assert len(names) == len(set(names)), [n for n in names if names.count(n) > 1]
    for cls in classes:
        registered = keras.saving.get_registered_name(cls)
        if registered.startswith("tfderain>"):
            assert keras.saving.get_registered_object(registered) is cls, registered
