"""Specification of training/data/fetch_photos.py, without the network: the photo table, reading
files out of a ``.deb`` built here with ``dpkg-deb --build``, hash checks and atomic writes."""

from __future__ import annotations

import bz2
import hashlib
import os
import re
import shutil
import subprocess

import cv2
import numpy as np
import pytest
from conftest import REPO, load_script

fp = load_script("training/data/fetch_photos.py", "fetch_photos")

#: License families acceptable for the default model's training photos (public domain, CC0,
#: CC-BY, CC-BY-SA, GPL/LGPL, permissive software licenses).
ACCEPTABLE = re.compile(
    r"public-domain|CC0-1\.0|CC-BY(-SA)?-\d\.\d|L?GPL-\d(\.\d)?\+?|Expat|Matplotlib"
)
BENCHMARKS = (
    "rain100",
    "rain1400",
    "rain800",
    "rain12",
    "did-mdn",
    "didmdn",
    "spa-data",
    "test100",
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def png(height: int, width: int, seed: int = 0) -> tuple[bytes, np.ndarray]:
    rng = np.random.default_rng(seed)
    bgr = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return cv2.imencode(".png", bgr)[1].tobytes(), bgr


def jpeg(height: int, width: int) -> bytes:
    ramp = np.linspace(0, 255, width, dtype=np.uint8)
    bgr = np.stack([np.tile(ramp, (height, 1))] * 3, axis=-1)
    return cv2.imencode(".jpg", bgr)[1].tobytes()


def photo(id_: str, path: str, data: bytes, package: str = "demo-photos") -> object:
    return fp.Photo(id_, package, path, sha(data), "CC0-1.0", "someone", ("sky",))


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


def test_table_is_well_formed():
    photos = fp.load_table()  # raises on any malformed row
    assert len(photos) >= 100
    assert len({p.id for p in photos}) == len(photos)
    assert len({(p.package, p.path) for p in photos}) == len(photos)
    for p in photos:
        assert re.fullmatch(r"[0-9a-f]{64}", p.sha256), p.id
        assert ACCEPTABLE.fullmatch(p.license), (p.id, p.license)
        assert not any(name in p.path.lower() for name in BENCHMARKS), p.path
    assert {p.package for p in photos} == set(fp.PACKAGES), "every package is used"
    assert all(fp.PACKAGES[p.package].kind in ("deb", "wheel") for p in photos)


def test_licenses_md_lists_every_photo():
    text = (REPO / "training" / "data" / "LICENSES.md").read_text()
    missing = [p.id for p in fp.load_table() if f"`{p.id}`" not in text]
    assert not missing


def test_photos_folder_is_ignored_by_git():
    assert "/training/data/photos/" in (REPO / ".gitignore").read_text().splitlines()


@pytest.mark.parametrize(
    "row, problem",
    [
        ("a\tdemo-photos\tx.png\t" + "0" * 64 + "\tCC0-1.0\tme\tsky", None),
        ("A!\tdemo-photos\tx.png\t" + "0" * 64 + "\tCC0-1.0\tme\tsky", "id"),
        ("a\tnowhere\tx.png\t" + "0" * 64 + "\tCC0-1.0\tme\tsky", "package"),
        ("a\tdemo-photos\t/x.png\t" + "0" * 64 + "\tCC0-1.0\tme\tsky", "relative"),
        ("a\tdemo-photos\tx.png\t" + "0" * 63 + "\tCC0-1.0\tme\tsky", "sha256"),
        ("a\tdemo-photos\tx.png\t" + "0" * 64 + "\tCC-BY-NC-4.0\tme\tsky", "license"),
        ("a\tdemo-photos\tx.png\t" + "0" * 64 + "\tCC0-1.0\tme\tspace", "tags"),
        ("a\tdemo-photos\tx.png\t" + "0" * 64 + "\tCC0-1.0\tme", "fields"),
    ],
)
def test_load_table_names_line_and_problem(tmp_path, row, problem):
    packages = {"demo-photos": fp.Package("demo-photos", "deb", "1.0", "copyright")}
    table = tmp_path / "photos.tsv"
    table.write_text("\t".join(fp.COLUMNS) + "\n" + row + "\n")
    if problem is None:
        assert [p.id for p in fp.load_table(table, packages)] == ["a"]
        return
    with pytest.raises(ValueError, match=rf"photos\.tsv:2: .*{problem}"):
        fp.load_table(table, packages)


def test_load_table_rejects_duplicates(tmp_path):
    packages = {"demo-photos": fp.Package("demo-photos", "deb", "1.0", "copyright")}
    row = "a\tdemo-photos\tx.png\t" + "0" * 64 + "\tCC0-1.0\tme\tsky"
    table = tmp_path / "photos.tsv"
    table.write_text("\t".join(fp.COLUMNS) + f"\n{row}\n{row.replace('x.png', 'y.png')}\n")
    with pytest.raises(ValueError, match=r"photos\.tsv:3: id 'a' appears twice"):
        fp.load_table(table, packages)


# --------------------------------------------------------------------------------------------
# A tiny .deb
# --------------------------------------------------------------------------------------------


@pytest.fixture
def tiny_deb(tmp_path):
    """A ``.deb`` with three images, built by dpkg-deb; returns (deb path, {path: bytes})."""
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb not available")
    root = tmp_path / "root"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: demo-photos\nVersion: 1.0\nArchitecture: all\n"
        "Maintainer: Nobody <nobody@example.org>\nDescription: test photos\n"
    )
    files = {
        "usr/share/demo/small.png": png(12, 20)[0],
        "usr/share/demo/ramp.jpg": jpeg(16, 40),
        "usr/share/demo/other.png": png(8, 8, seed=1)[0],
    }
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    deb = tmp_path / "demo-photos_1.0_all.deb"
    subprocess.run(
        ["dpkg-deb", "--build", "--root-owner-group", str(root), str(deb)],
        check=True,
        capture_output=True,
    )
    return deb, files


def test_read_deb_returns_exact_bytes(tiny_deb):
    deb, files = tiny_deb
    wanted = ["usr/share/demo/small.png", "usr/share/demo/ramp.jpg", "usr/share/demo/none.png"]
    found = fp.read_deb(deb, wanted)
    assert set(found) == set(wanted[:2])
    assert all(found[p] == files[p] for p in found)


def test_read_deb_rejects_other_files(tmp_path):
    bogus = tmp_path / "x.deb"
    bogus.write_bytes(b"not an archive")
    with pytest.raises(ValueError, match="x.deb: not a Debian package"):
        fp.read_deb(bogus, ["a"])


def test_extract_checks_hashes_and_writes_atomically(tiny_deb, tmp_path, capsys):
    deb, files = tiny_deb
    out = tmp_path / "out"
    out.mkdir()
    package = fp.Package("demo-photos", "deb", "1.0", "copyright")
    small = photo("small", "usr/share/demo/small.png", files["usr/share/demo/small.png"])
    ramp = photo("ramp", "usr/share/demo/ramp.jpg", files["usr/share/demo/ramp.jpg"])
    wrong = fp.Photo(
        "other", "demo-photos", "usr/share/demo/other.png", "0" * 64, "CC0-1.0", "someone", ("sky",)
    )
    absent = photo("absent", "usr/share/demo/absent.png", b"")
    report = fp.Report(files={}, errors=[])
    fp.extract_package(package, deb, "1.0", [small, ramp, wrong, absent], out, 2048, report)

    assert sorted(p.name for p in out.iterdir()) == ["ramp.jpg", "small.png"]  # no temp files
    assert (out / "ramp.jpg").read_bytes() == files["usr/share/demo/ramp.jpg"]  # copied as is
    decoded = cv2.imread(str(out / "small.png"), cv2.IMREAD_COLOR)
    assert np.array_equal(decoded, png(12, 20)[1])  # PNG stays lossless
    assert report.written == 2 and report.pixels == 12 * 20 + 16 * 40
    assert len(report.errors) == 2
    assert report.errors[0].startswith("other: sha256 of demo-photos 1.0:usr/share/demo/other.png")
    assert report.errors[0].endswith("skipped")
    assert "absent: usr/share/demo/absent.png is not in demo-photos 1.0" in report.errors[1]
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)


def test_held_out_photos_go_to_a_subfolder_the_training_stream_does_not_read(
    tiny_deb, tmp_path, monkeypatch
):
    from tfderain.data import synthetic_dataset

    deb, files = tiny_deb
    monkeypatch.setattr(fp, "HELD_OUT", frozenset({"small"}))
    packages = {"demo-photos": fp.Package("demo-photos", "deb", "1.0", "copyright")}
    small = photo("small", "usr/share/demo/small.png", files["usr/share/demo/small.png"])
    ramp = photo("ramp", "usr/share/demo/ramp.jpg", files["usr/share/demo/ramp.jpg"])
    out = tmp_path / "out"
    report = fp.run(
        [small, ramp], out, tmp_path / "cache", packages=packages, fetch=lambda *_: (deb, "1.0")
    )
    assert report.written == 2 and not report.errors
    assert sorted(p.name for p in out.iterdir()) == ["SOURCES.tsv", "held-out", "ramp.jpg"]
    assert [p.name for p in (out / "held-out").iterdir()] == ["small.png"]
    sources = (out / "SOURCES.tsv").read_text().splitlines()
    assert sources[1].startswith("held-out/small.png\t") and sources[2].startswith("ramp.jpg\t")
    again = fp.run([small, ramp], out, tmp_path / "cache", packages=packages, fetch=None)
    assert (again.written, again.kept) == (0, 2)  # both found where they were written
    # The training stream reads the folder's own files only: with every photo held out it has
    # none.
    monkeypatch.setattr(fp, "HELD_OUT", frozenset({"small", "ramp"}))
    both = tmp_path / "both"
    fp.run([small, ramp], both, tmp_path / "cache", packages=packages, fetch=lambda *_: (deb, "1"))
    assert len(list((both / "held-out").iterdir())) == 2
    with pytest.raises(ValueError, match="no readable clean images"):
        synthetic_dataset(both, patch_size=8, batch_size=2)
    synthetic_dataset(out, patch_size=8, batch_size=2)  # the ramp is enough


def test_extract_downscales_to_max_side(tiny_deb, tmp_path):
    deb, files = tiny_deb
    out = tmp_path / "out"
    out.mkdir()
    package = fp.Package("demo-photos", "deb", "1.0", "copyright")
    ramp = photo("ramp", "usr/share/demo/ramp.jpg", files["usr/share/demo/ramp.jpg"])
    report = fp.Report(files={}, errors=[])
    fp.extract_package(package, deb, "1.0", [ramp], out, 20, report)
    assert [p.name for p in out.iterdir()] == ["ramp.png"]  # resized JPEG → lossless PNG
    assert cv2.imread(str(out / "ramp.png")).shape == (8, 20, 3)  # 16×40 → long side 20


def test_raw_rgb_files_are_decoded(monkeypatch):
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    monkeypatch.setitem(fp.RAW_RGB, "x/face.dat", (2, 3))
    data = bz2.compress(rgb.tobytes())
    name, payload, size = fp.encode(photo("face", "x/face.dat", data), data, 2048)
    assert (name, size) == ("face.png", (3, 2))
    bgr = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
    assert np.array_equal(bgr[..., ::-1], rgb)


def test_write_atomic_leaves_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "a.png"
    target.write_bytes(b"old")

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        fp.write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_run_goes_on_after_a_bad_package(tiny_deb, tmp_path, capsys):
    deb, files = tiny_deb
    packages = {
        "demo-photos": fp.Package("demo-photos", "deb", "1.0", "copyright"),
        "gone": fp.Package("gone", "deb", "2.0", "copyright"),
    }
    photos = [
        photo("lost", "usr/share/x.png", b"x", package="gone"),
        photo("small", "usr/share/demo/small.png", files["usr/share/demo/small.png"]),
    ]

    def fetch(package, cache):
        if package.name == "gone":
            raise fp.FetchError("apt-get download gone failed: E: Unable to locate package gone")
        return deb, "1.1"  # a newer version than the table's: reported, hashes decide

    out = tmp_path / "out"
    report = fp.run(photos, out, tmp_path / "cache", packages=packages, fetch=fetch)
    assert report.written == 1 and len(report.errors) == 1
    err = capsys.readouterr().err
    assert "error: gone: apt-get download gone failed" in err
    assert "note: demo-photos: the table was made from version 1.0, the archive now has 1.1" in err
    sources = (out / "SOURCES.tsv").read_text().splitlines()
    assert sources[1] == "small.png\tdemo-photos\t1.1\tusr/share/demo/small.png\tCC0-1.0\tsomeone"

    again = fp.run(photos, out, tmp_path / "cache", packages=packages, fetch=fetch)
    assert (again.written, again.kept) == (0, 1)  # kept; only the bad package is tried again


def test_two_versions_of_one_package_are_two_catalogue_entries(tiny_deb, tmp_path):
    """A second version of a package (another suite) has its own ``key`` in the catalogue and in
    the table; each entry is fetched with the package's own name and its own version."""
    deb, files = tiny_deb
    old = fp.Package("demo-photos", "deb", "1.0", "copyright")
    new = fp.Package("demo-photos", "deb", "2.0", "copyright", "trixie", key="demo-photos/trixie")
    assert (old.id, new.id) == ("demo-photos", "demo-photos/trixie")
    packages = {p.id: p for p in (old, new)}
    small, ramp = files["usr/share/demo/small.png"], files["usr/share/demo/ramp.jpg"]
    photos = [
        photo("small", "usr/share/demo/small.png", small),
        photo("ramp", "usr/share/demo/ramp.jpg", ramp, package="demo-photos/trixie"),
    ]
    table = tmp_path / "photos.tsv"
    rows = ["\t".join(fp.COLUMNS)]
    rows += [f"{p.id}\t{p.package}\t{p.path}\t{p.sha256}\tCC0-1.0\tsomeone\tsky" for p in photos]
    table.write_text("\n".join(rows) + "\n")
    assert [p.package for p in fp.load_table(table, packages)] == [
        "demo-photos",
        "demo-photos/trixie",
    ]
    fetched = []

    def fetch(package, cache):
        fetched.append((package.name, package.version, package.suite))
        return deb, package.version

    report = fp.run(photos, tmp_path / "out", tmp_path / "cache", packages=packages, fetch=fetch)
    assert fetched == [("demo-photos", "1.0", ""), ("demo-photos", "2.0", "trixie")]
    assert (report.written, report.errors) == (2, [])
    sources = (tmp_path / "out" / "SOURCES.tsv").read_text().splitlines()
    assert sources[1].startswith("ramp.jpg\tdemo-photos/trixie\t2.0\t")


def test_catalogue_keys_are_the_entries_ids():
    assert all(key == package.id for key, package in fp.PACKAGES.items())


def test_fetch_from_another_suite_uses_a_private_apt_configuration(tmp_path, monkeypatch):
    """A package of another Debian release is fetched by ``apt-get`` with options that point at
    ``cache/apt-<suite>``, whose sources list names that suite of the machine's Debian mirror;
    the package lists are fetched once; a pinned sha256 of the .deb is checked."""
    calls = []
    deb_bytes = b"!<arch>\n a pretend package"
    lists = tmp_path / "apt-trixie" / "lists"

    def run(command, cwd):
        calls.append(list(command))
        if command[1] == "indextargets":
            out = "http://mirror.example/debian-security/\tDebian-Security\n"
            out += "http://mirror.example/debian/\tDebian\n"
            return subprocess.CompletedProcess(command, 0, out, "")
        if command[-1] == "update":
            (lists / "mirror_dists_trixie_main_binary-amd64_Packages").write_text("")
        if command[-2] == "download":
            (cwd / "demo-photos_2.0-1_all.deb").write_bytes(deb_bytes)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(fp, "_run", run)
    package = fp.Package("demo-photos", "deb", "2.0-1", "copyright", "trixie", sha(deb_bytes))
    archive, version = fp.fetch_package(package, tmp_path)
    assert (archive.name, version) == ("demo-photos_2.0-1_all.deb", "2.0-1")
    sources = (tmp_path / "apt-trixie" / "sources.list").read_text()
    assert sources.endswith(" http://mirror.example/debian/ trixie main\n")
    update, download = calls[1], calls[2]
    assert update[-1] == "update" and download[-2:] == ["download", "demo-photos=2.0-1"]
    assert f"-oDir::State::Lists={lists.resolve()}" in download
    assert any(o.startswith("-oDir::Etc::SourceList=") for o in download)

    archive.unlink()  # fetched again: the lists are there, no second update
    calls.clear()
    fp.fetch_package(package, tmp_path)
    assert [c[-2] for c in calls] == ["download"]

    archive.unlink()
    wrong = fp.Package("demo-photos", "deb", "2.0-1", "copyright", "trixie", "0" * 64)
    with pytest.raises(fp.FetchError, match="sha256 of demo-photos_2.0-1_all.deb is"):
        fp.fetch_package(wrong, tmp_path)
    assert not archive.exists()  # a bad download does not stay in the cache


def test_catalogue_pins_every_deb():
    for package in fp.PACKAGES.values():
        if package.kind == "deb":
            assert re.fullmatch(r"[0-9a-f]{64}", package.sha256), package.name


def test_select_permissive_leaves_out_copyleft():
    photos = fp.load_table()
    chosen = fp.select(photos, "permissive")
    assert chosen and all(not re.search(r"GPL|-SA-", p.license) for p in chosen)
    assert len(fp.select(photos, "permissive,GPL-2+")) > len(chosen)
    assert fp.select(photos, None) == photos
    with pytest.raises(ValueError, match="unknown license 'CC-BY-NC-4.0'"):
        fp.select(photos, "CC-BY-NC-4.0")
