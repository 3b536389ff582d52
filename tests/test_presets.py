"""tfderain.presets: named official weights, fetched from a real HTTP server on 127.0.0.1.

The server serves ../shared/weights (byte-for-byte copies of the upstream files) in the mirror
layout ``HOST/PATH`` that ``$TFDERAIN_MIRROR`` expects, built from symlinks in a temporary
folder. Most tests use the smallest preset, ``prn_r:rain100h`` (21 K parameters).
"""

from __future__ import annotations

import errno
import hashlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, load_script

from tfderain import models, presets

SMALL = "prn_r:rain100h"
SMALL_FILE = "PReNet/logs/Rain100H/PRN6_r/net_latest.pth"

mirror_tools = load_script("benchmarks/_mirror.py", "_presets_mirror")


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class Server:
    """``http.server`` in a thread, serving ``root``; ``mode="truncate"`` drops each transfer
    after half of the announced bytes."""

    def __init__(self, root: Path, mode: str = "normal"):
        self.requests: list[str] = []
        requests = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def log_message(self, *args):
                pass

            def do_GET(self):
                requests.append(self.path)
                if mode != "truncate":
                    return super().do_GET()
                data = Path(self.translate_path(self.path)).read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join()


@pytest.fixture(scope="module")
def mirror(shared_dir, tmp_path_factory) -> Path:
    """Mirror-layout folder of symlinks to every preset file in ../shared/weights."""
    folder = tmp_path_factory.mktemp("mirror")
    served = mirror_tools.build_mirror(shared_dir / "weights", folder)
    assert SMALL in served
    return folder


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "home"
    monkeypatch.setenv("TFDERAIN_HOME", str(folder))
    return folder


@pytest.fixture
def server(mirror, home, monkeypatch):
    running = Server(mirror)
    monkeypatch.setenv("TFDERAIN_MIRROR", running.url)
    yield running
    running.stop()


def leftovers(home: Path) -> list[Path]:
    """Files in the cache other than lock files."""
    return [p for p in home.rglob("*") if p.is_file() and p.parent.name != "locks"]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- first use


@pytest.mark.slow
def test_first_use_downloads_converts_and_reproduces_the_official_outputs(
    server, home, shared_dir, golden, capsys
):
    path = presets.resolve(SMALL)
    progress = capsys.readouterr().err  # stderr is not a terminal here: the bar still shows
    assert f"{SMALL}: 100%" in progress and "converting" in progress
    assert path.is_file() and path.suffix == ".keras" and home in path.parents
    assert len(server.requests) == 1
    download = presets.download_path(presets.get(SMALL))
    assert sha256(download) == sha256(shared_dir / "weights" / SMALL_FILE)

    _, io, _ = golden("prn_r")  # official PRN_r outputs of these very weights
    model = presets.load(SMALL)
    out = model(io["input"], training=False)["derained"].numpy()
    np.testing.assert_allclose(out, io["output"], rtol=0, atol=1e-4)


@pytest.mark.slow
def test_preset_name_hash_and_license_travel_into_the_cached_model(server, shared_dir):
    from tfderain import saving

    meta = saving.read_metadata(presets.resolve(SMALL))
    assert meta["arch"] == "prn_r"
    assert meta["config"]["stages"] == 6  # PReNet's test scripts run 6 stages
    assert meta["source"]["preset"] == SMALL
    assert meta["source"]["source_sha256"] == sha256(shared_dir / "weights" / SMALL_FILE)
    assert "no license stated" in meta["source"]["license"]
    source = models.identity(presets.load(SMALL)).source
    assert source["preset"] == SMALL
    assert source["source_sha256"] == meta["source"]["source_sha256"]


@pytest.mark.slow
def test_second_use_does_not_touch_the_network(server, home, monkeypatch):
    first = presets.resolve(SMALL)
    server.stop()
    monkeypatch.setenv("TFDERAIN_MIRROR", f"http://127.0.0.1:{closed_port()}")
    assert presets.resolve(SMALL) == first
    assert models.identity(presets.load(SMALL)).arch == "prn_r"


@pytest.mark.slow
def test_converter_version_change_converts_again_from_the_cached_download(server, monkeypatch):
    import tfderain.convert

    first = presets.resolve(SMALL)
    monkeypatch.setattr(
        tfderain.convert, "CONVERTER_VERSION", tfderain.convert.CONVERTER_VERSION + 1
    )
    second = presets.resolve(SMALL)
    assert second != first and second.is_file()
    assert len(server.requests) == 1  # the verified download was reused


def test_local_folder_mirror(mirror, home, monkeypatch, tmp_path):
    monkeypatch.setenv("TFDERAIN_MIRROR", str(mirror))
    assert presets.resolve(SMALL).is_file()
    monkeypatch.setenv("TFDERAIN_MIRROR", str(tmp_path / "empty"))
    with pytest.raises(presets.PresetError, match="not in the mirror folder") as err:
        presets.resolve("prn:rain100h")
    assert "\n" not in str(err.value)
    assert str(tmp_path / "empty" / "raw.githubusercontent.com") in str(err.value)


# ----------------------------------------------------------------------------- failures


def test_offline_first_use_names_url_cache_path_and_way_out(home, monkeypatch):
    monkeypatch.setenv("TFDERAIN_MIRROR", f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(presets.PresetError) as err:
        presets.resolve(SMALL)
    message = str(err.value)
    assert "\n" not in message
    assert "http://127.0.0.1:" in message and "PRN6_r/net_latest.pth" in message
    assert str(presets.download_path(presets.get(SMALL))) in message
    assert "--weights FILE" in message
    assert leftovers(home) == []


def test_hash_mismatch_leaves_nothing_and_next_run_starts_clean(
    mirror, home, monkeypatch, tmp_path
):
    bad = tmp_path / "bad"
    shutil.copytree(mirror, bad, symlinks=False)
    target = mirror_tools.mirror_path(presets.get(SMALL), bad)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    corrupt = Server(bad)
    monkeypatch.setenv("TFDERAIN_MIRROR", corrupt.url)
    try:
        with pytest.raises(presets.PresetError, match="does not match the expected") as err:
            presets.resolve(SMALL)
    finally:
        corrupt.stop()
    assert "\n" not in str(err.value)
    assert leftovers(home) == []
    good = Server(mirror)
    monkeypatch.setenv("TFDERAIN_MIRROR", good.url)
    try:
        assert presets.resolve(SMALL).is_file()
    finally:
        good.stop()


def test_truncated_transfer_leaves_nothing(mirror, home, monkeypatch):
    dropping = Server(mirror, mode="truncate")
    monkeypatch.setenv("TFDERAIN_MIRROR", dropping.url)
    try:
        with pytest.raises(presets.PresetError, match="truncated") as err:
            presets.resolve(SMALL)
    finally:
        dropping.stop()
    assert "\n" not in str(err.value)
    assert leftovers(home) == []


def test_http_404_is_one_line(home, monkeypatch, tmp_path):
    empty = Server(tmp_path)
    monkeypatch.setenv("TFDERAIN_MIRROR", empty.url)
    try:
        with pytest.raises(presets.PresetError, match="HTTP 404") as err:
            presets.resolve(SMALL)
    finally:
        empty.stop()
    assert "\n" not in str(err.value) and empty.url in str(err.value)
    assert leftovers(home) == []


def test_disk_full_removes_the_partial_file(server, home, monkeypatch):
    writes = []

    def full_disk(handle, chunk):
        if writes:
            raise OSError(errno.ENOSPC, "No space left on device")
        writes.append(handle.write(chunk[:1000]))  # part of the file reaches the disk first

    with monkeypatch.context() as patch:
        patch.setattr(presets, "_CHUNK", 4096)
        patch.setattr(presets, "_write_chunk", full_disk)
        with pytest.raises(presets.PresetError, match="disk full") as err:
            presets.resolve(SMALL)
    assert writes and "\n" not in str(err.value)
    assert leftovers(home) == []
    assert presets.resolve(SMALL).is_file()  # the next run starts clean


@pytest.mark.slow
def test_two_processes_doing_the_first_use_at_once_both_succeed(server, home):
    code = f"from tfderain import presets; print(presets.resolve({SMALL!r}, progress=False))"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=300) for p in procs]
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
    paths = {out.strip().splitlines()[-1] for out, _ in results}
    assert len(paths) == 1 and Path(paths.pop()).is_file()
    assert len(server.requests) == 1  # the second process found the first one's model
    names = sorted(p.name for p in leftovers(home))
    assert names == sorted(["net_latest.pth", presets.model_path(presets.get(SMALL)).name])


# ------------------------------------------------------------------- table and maintenance


def test_unknown_names_get_close_matches_or_the_list():
    with pytest.raises(presets.PresetError, match="did you mean .*prenet:rain100h") as err:
        presets.get("prenet:rain100")
    assert "\n" not in str(err.value)
    with pytest.raises(presets.PresetError, match="known presets: .*prn_r:rain1400"):
        presets.get("zzz:qqq")


def test_every_shared_copy_has_the_recorded_sha256_and_size(shared_dir):
    checked = 0
    for name in presets.names():
        preset = presets.get(name)
        copy = presets.local_copy(preset, shared_dir / "weights")
        if copy is None:
            continue
        assert sha256(copy) == preset.sha256, name
        assert copy.stat().st_size == preset.size, name
        assert preset.verified, name
        checked += 1
    assert checked == 18  # 12 PReNet family, 2 real-rain, 4 mCODE-Net


def test_a_local_copy_is_converted_only_if_it_is_the_presets_file(shared_dir, tmp_path):
    """:func:`presets.local_copy` finds a preset's file in a folder of copies (none for presets
    without one); :func:`presets.convert_file` checks its sha256 before converting it."""
    small = presets.get(SMALL)
    copy = presets.local_copy(small, shared_dir / "weights")
    assert copy == shared_dir / "weights" / SMALL_FILE
    assert presets.local_copy(presets.get("restormer:rain13k"), shared_dir / "weights") is None
    assert presets.local_copy(presets.get(presets.DEFAULT), shared_dir / "weights") is None
    assert presets.local_copy(small, tmp_path) is None
    model = presets.convert_file(small, copy)
    assert models.identity(model).source["source_sha256"] == small.sha256
    other = presets.local_copy(presets.get("prn_r:rain100l"), shared_dir / "weights")
    with pytest.raises(presets.PresetError, match=r"is not preset 'prn_r:rain100h'"):
        presets.convert_file(small, other)
    with pytest.raises(presets.PresetError, match="packaged with tfderain: nothing to convert"):
        presets.convert_file(presets.DEFAULT, copy)


def test_table_entries_are_pinned_and_complete():
    for name in presets.names():
        preset = presets.get(name)
        assert name == f"{preset.arch}:{name.split(':', 1)[1]}"
        assert preset.trained_on and preset.paper and preset.license, name
        if preset.url is None:
            assert preset.packaged is not None
            continue
        assert preset.url.startswith("https://")
        if "githubusercontent" in preset.url:  # pinned to a 40-hex commit
            commit = preset.url.split("/")[5]
            assert len(commit) == 40 and int(commit, 16) >= 0, name
        if not preset.verified:  # at least a torch.hub-style prefix
            assert len(preset.sha256) >= 8 and int(preset.sha256, 16) >= 0


def test_default_alias_is_the_packaged_model_without_download(home, monkeypatch):
    from tfderain import api, models

    monkeypatch.setenv("TFDERAIN_MIRROR", f"http://127.0.0.1:{closed_port()}")
    assert presets.resolve("default") == api.default_model_path()
    assert presets.resolve("rainunet:synthetic") == api.default_model_path()
    assert presets.load("default").count_params() == models.build("rainunet").count_params()
    assert presets.load("prenet:synthetic16").count_params() == 43_011
    assert not home.exists()


@pytest.mark.slow
def test_verify_removes_a_corrupted_download_and_clear_empties_the_cache(server, home):
    presets.resolve(SMALL)
    assert presets.verify([SMALL]) == {SMALL: "ok"}
    download = presets.download_path(presets.get(SMALL))
    download.write_bytes(download.read_bytes()[:-1] + b"x")
    assert presets.verify([SMALL]) == {SMALL: "corrupt (removed)"}
    assert presets.cached(presets.get(SMALL)) == []
    presets.resolve(SMALL)
    assert presets.clear() > 0
    assert leftovers(home) == []


# --------------------------------------------------------------------------- integration


@pytest.mark.slow
def test_api_load_model_and_resolve_model_accept_a_preset_name(server):
    from tfderain import api

    assert models.identity(api.resolve_model(SMALL)).arch == "prn_r"
    assert models.identity(api.resolve_model("prn_r", weights=SMALL)).arch == "prn_r"
    with pytest.raises(ValueError, match="not 'prenet'"):
        api.load_model(SMALL, arch="prenet")


def test_cli_presets_table_json_verify_clear(server, home, capsys):
    from tfderain import cli

    assert cli.main(["presets"]) == 0
    table = capsys.readouterr().out
    assert SMALL in table and "raw.githubusercontent.com" in table and "default" in table
    assert cli.main(["presets", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows[SMALL]["arch"] == "prn_r" and rows[SMALL]["size"] == 86047
    presets.resolve(SMALL, progress=False)
    assert cli.main(["presets", "--verify"]) == 0
    assert f"{SMALL}: ok" in capsys.readouterr().out
    assert cli.main(["presets", "--clear"]) == 0
    assert leftovers(home) == []


@pytest.mark.slow
def test_saved_extra_metadata_round_trips_and_old_files_still_read(tmp_path):
    from tfderain import saving

    model = models.build("prn_r", stages=1, channels=2)
    path = saving.save_model(model, tmp_path / "m.keras", extra={"preset": "x:y"})
    assert saving.read_metadata(path)["preset"] == "x:y"
    with pytest.raises(ValueError, match="arch"):
        saving.save_model(model, tmp_path / "n.keras", extra={"arch": "prenet"})
    # A file written before extra keys existed (the bundled default of tfderain 0.1.0).
    old_file = Path(__file__).parent / "fixtures" / "default_prenet16_v0.1.keras"
    old = saving.read_metadata(old_file)
    assert old["arch"] == "prenet" and "preset" not in old and "source" not in old
    assert models.identity(saving.load_model(old_file)).source == {}


@pytest.mark.slow
def test_prenet_real_presets_reproduce_the_official_real_rain_outputs(
    mirror, home, golden, monkeypatch
):
    from tfderain import models

    if "prenet_real" not in models.names():
        pytest.skip("architecture prenet_real is not registered in this tree")
    monkeypatch.setenv("TFDERAIN_MIRROR", str(mirror))
    _, io, _ = golden("prenet_real")
    for weights, key in (("real2", "output"), ("real1", "output_prenet1")):
        out = presets.load(f"prenet_real:{weights}")(io["input"], training=False)
        np.testing.assert_allclose(out["derained"].numpy(), io[key], rtol=0, atol=1e-4)


# ----------------------------------------------------------------------- recorded scores

RECORDED = presets.scores().get("presets", {})
#: mCODE-Net runs 25 unrolled full-resolution iterations: about 40 s per 320×480 image on CPU.
SLOW_ARCHS = {"mcodenet"}


class DerainOnce:
    """Derains an image once for both protocols."""

    def __init__(self, derainer):
        self.spec, self._derainer, self._last = derainer.spec, derainer, None

    def derain_array(self, rgb):
        if self._last is None or not np.array_equal(self._last[0], rgb):
            self._last = (rgb.copy(), self._derainer.derain_array(rgb))
        return self._last[1]


@pytest.fixture(scope="module")
def first_pair(shared_dir, tmp_path_factory) -> Path:
    """Rain100H-20's pair 1 alone, in its own layout."""
    folder = tmp_path_factory.mktemp("rain100h-1")
    for side in ("input", "target"):
        (folder / side).mkdir()
        os.symlink(shared_dir / "data" / "Rain100H-20" / side / "1.png", folder / side / "1.png")
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RECORDED))
def test_recorded_scores_are_reproduced_on_one_image(name, shared_dir, first_pair):
    """The file's numbers come from the download path; here the shared copy is converted
    directly, so the two routes must agree."""
    from tfderain import evaluation, inference, models

    preset = presets.get(name)
    if preset.arch not in models.names():
        pytest.skip(f"architecture {preset.arch} is not registered in this tree")
    if preset.arch in SLOW_ARCHS and os.environ.get("TFDERAIN_SLOW_TESTS") != "1":
        pytest.skip(f"{preset.arch} takes about 40 s per image; set TFDERAIN_SLOW_TESTS=1")
    if preset.packaged is not None:
        model = presets.load(name)
    else:
        copy = presets.local_copy(preset, shared_dir / "weights")
        if copy is None:
            pytest.skip(f"{name}: its file is not in ../shared/weights")
        model = presets.convert_file(preset, copy)
        assert models.identity(model).source["preset"] == name
    derainer = DerainOnce(inference.Derainer(model))
    for protocol in ("A", "B"):
        recorded = RECORDED[name]["Rain100H-20"][protocol]
        index = recorded["images"].index("1")
        (score,) = evaluation.evaluate(derainer, first_pair, protocol).scores
        assert abs(score.psnr - recorded["psnr"][index]) <= 1e-4, protocol
        assert abs(score.ssim - recorded["ssim"][index]) <= 1e-5, protocol
