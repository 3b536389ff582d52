"""``tfderain.export.descriptor``: the JSON file beside an exported ``.tflite`` file.

What :func:`~tfderain.export.export_tflite` writes is checked in ``test_export_tflite.py``; here,
reading: files written by earlier versions (the Android goldens, committed) still read, and a
file that is not a descriptor is a one-line error naming it.
"""

from __future__ import annotations

import json

import pytest
from conftest import REPO

from tfderain.export.descriptor import FORMAT, KEYS, VERSION, descriptor_path, read_descriptor

#: Descriptors written by earlier versions of the exporter, read by the Android core's tests.
GOLDEN = REPO / "android_demo" / "core" / "src" / "test" / "resources" / "golden"


def test_the_on_disk_names_stay_those_the_app_reads():
    assert (FORMAT, VERSION) == ("tfderain-model-spec", 1)
    assert KEYS[:2] == ("format", "spec_version")


@pytest.mark.parametrize("case", ["float", "int8"])
def test_descriptors_written_by_earlier_versions_still_read(case):
    path = GOLDEN / case / "model_spec.json"
    descriptor = read_descriptor(path)
    assert descriptor == json.loads(path.read_text())
    assert descriptor["model"] == "prenet" and list(descriptor)[: len(KEYS)] == list(KEYS)


def test_the_descriptor_of_a_file_is_its_stem_json(tmp_path):
    assert descriptor_path(tmp_path / "prenet_int8.tflite") == tmp_path / "prenet_int8.json"


def test_what_is_not_a_descriptor_is_a_one_line_error_naming_the_file(tmp_path):
    path = tmp_path / "m.json"
    with pytest.raises(ValueError, match=r"m\.json: no such descriptor file"):
        read_descriptor(path)
    path.write_text("{")
    with pytest.raises(ValueError, match=r"m\.json: unreadable descriptor \("):
        read_descriptor(path)
    path.write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match=r"m\.json: not a tfderain-model-spec file"):
        read_descriptor(path)
    path.write_text(json.dumps({"format": FORMAT, "spec_version": 1}))
    with pytest.raises(ValueError, match=r"m\.json: descriptor lacks model, config, .*outputs$"):
        read_descriptor(path)
