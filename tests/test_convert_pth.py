"""Specification of :mod:`tfderain.pth`: reading ``.pth`` checkpoints without PyTorch."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tfderain.pth import PthFormatError, load_state_dict, read_pth

BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


# --------------------------------------------------------------------------- hand-made checkpoints
#
# PyTorch is not available, so the test writes torch-style pickles itself: globals are emitted
# under torch's names and storages are referenced through persistent ids, as torch.save does.


class TorchGlobal:
    """Stands for the torch global ``module.name`` inside a hand-made pickle."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self, *args: Any) -> Any:  # pickle only accepts callables as reduce functions
        raise AssertionError("never called")


REBUILD_V2 = TorchGlobal("torch._utils", "_rebuild_tensor_v2")


class Storage:
    """A storage: raw little-endian bytes under ``key``, typed by a torch storage class name."""

    def __init__(self, key: str, type_name: str, values: np.ndarray) -> None:
        self.key = key
        self.type = TorchGlobal("torch", type_name)
        self.raw = values.astype(values.dtype.newbyteorder("<")).tobytes()
        self.numel = values.size
        self.view: tuple[str, int, int] | None = None


class Tensor:
    """A tensor pickled the way torch does: ``_rebuild_tensor_v2(storage, offset, size, ...)``."""

    def __init__(self, storage: Storage, offset: int, size: tuple, stride: tuple) -> None:
        self.args = (storage, offset, size, stride, False, OrderedDict())

    def __reduce__(self) -> tuple:
        return (REBUILD_V2, self.args)


class TorchLikePickler(pickle._Pickler):  # the pure-Python pickler lets us emit chosen globals
    dispatch = pickle._Pickler.dispatch.copy()

    def __init__(self, file: io.BytesIO, legacy: bool = False) -> None:
        super().__init__(file, protocol=2)
        self.legacy = legacy

    def persistent_id(self, obj: Any) -> Any:
        if not isinstance(obj, Storage):
            return None
        if self.legacy:
            return ("storage", obj.type, obj.key, "cuda:0", obj.numel, obj.view)
        return ("storage", obj.type, obj.key, "cpu", obj.numel)

    def save_torch_global(self, obj: TorchGlobal) -> None:
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    dispatch[TorchGlobal] = save_torch_global


def torch_like_pickle(obj: Any, legacy: bool = False) -> bytes:
    buffer = io.BytesIO()
    TorchLikePickler(buffer, legacy=legacy).dump(obj)
    return buffer.getvalue()


def write_zip_checkpoint(path: Path, obj: Any, storages: list[Storage]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", torch_like_pickle(obj))
        archive.writestr("archive/byteorder", "little")
        for storage in storages:
            archive.writestr(f"archive/data/{storage.key}", storage.raw)
        archive.writestr("archive/version", "3\n")
    return path


def write_legacy_checkpoint(path: Path, obj: Any, storages: list[Storage]) -> Path:
    sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"long": 8}}
    parts = [pickle.dumps(LEGACY_MAGIC, 2), pickle.dumps(1001, 2), pickle.dumps(sys_info, 2)]
    parts.append(torch_like_pickle(obj, legacy=True))
    parts.append(pickle.dumps([s.key for s in storages], 2))
    for storage in storages:
        parts.append(storage.numel.to_bytes(8, "little") + storage.raw)
    path.write_bytes(b"".join(parts))
    return path


# --------------------------------------------------------------------------- synthetic files


def test_zip_checkpoint_honours_offset_stride_and_dtype(tmp_path: Path) -> None:
    floats = np.arange(8, dtype=np.float32) * 0.5 - 1.0
    longs = np.array([-(2**40), 0, 7, 2**62], dtype=np.int64)
    bf16_bits = np.array([0x3F80, 0xC020, 0x3E20], dtype=np.uint16)  # 1.0, -2.5, 0.15625
    f_storage = Storage("0", "FloatStorage", floats)
    l_storage = Storage("1", "LongStorage", longs)
    b_storage = Storage("2", "BFloat16Storage", bf16_bits)
    transposed = Tensor(f_storage, 2, (2, 3), (1, 2))  # a transposed view starting at element 2
    state = OrderedDict(
        [
            ("module.w", transposed),
            ("module.tied", transposed),
            ("module.ids", Tensor(l_storage, 0, (4,), (1,))),
            ("module.count", Tensor(l_storage, 2, (), ())),
            ("module.half", Tensor(b_storage, 0, (3,), (1,))),
        ]
    )
    path = write_zip_checkpoint(
        tmp_path / "tiny.pth", {"state_dict": state, "epoch": 3}, [f_storage, l_storage, b_storage]
    )

    checkpoint = read_pth(path)
    assert checkpoint["epoch"] == 3
    assert isinstance(checkpoint["state_dict"], OrderedDict)

    weights = load_state_dict(path)
    assert list(weights) == ["w", "tied", "ids", "count", "half"]
    expected_w = np.array([[floats[2 + i + 2 * j] for j in range(3)] for i in range(2)])
    np.testing.assert_array_equal(weights["w"], expected_w)
    assert weights["w"].dtype == np.float32 and weights["w"].flags.c_contiguous
    assert weights["tied"] is weights["w"]
    np.testing.assert_array_equal(weights["ids"], longs)
    assert weights["ids"].dtype == np.int64
    assert weights["count"].shape == () and weights["count"] == 7
    np.testing.assert_array_equal(weights["half"], np.array([1.0, -2.5, 0.15625], np.float32))
    assert weights["half"].dtype == np.float32


def test_legacy_checkpoint_with_storage_view(tmp_path: Path) -> None:
    root = np.arange(10, dtype=np.float64)
    storage = Storage("140", "DoubleStorage", root)
    view = Storage("140", "DoubleStorage", root)
    view.view = ("141", 4, 6)  # elements 4..9 of the root storage, seen as their own storage
    state = {"a": Tensor(storage, 1, (3,), (2,)), "b": Tensor(view, 1, (2, 2), (2, 1))}
    path = write_legacy_checkpoint(tmp_path / "legacy.pth", state, [storage])

    weights = load_state_dict(path)
    np.testing.assert_array_equal(weights["a"], [1.0, 3.0, 5.0])
    np.testing.assert_array_equal(weights["b"], [[5.0, 6.0], [7.0, 8.0]])
    assert weights["b"].dtype == np.float64


def test_params_preferred_over_params_ema_and_metadata_kept(tmp_path: Path) -> None:
    plain = Storage("0", "FloatStorage", np.ones(2, np.float32))
    ema = Storage("1", "FloatStorage", np.zeros(2, np.float32))
    obj = {
        "params": {"x": Tensor(plain, 0, (2,), (1,)), "iter": 5},
        "params_ema": {"x": Tensor(ema, 0, (2,), (1,))},
        "best_psnr": np.float64(30.25),
    }
    path = write_zip_checkpoint(tmp_path / "ema.pth", obj, [plain, ema])
    assert read_pth(path)["best_psnr"] == 30.25
    weights = load_state_dict(path)
    assert list(weights) == ["x"]
    np.testing.assert_array_equal(weights["x"], [1.0, 1.0])


# --------------------------------------------------------------------------- errors


def assert_format_error(path: Path, *fragments: str) -> str:
    with pytest.raises(PthFormatError) as info:
        read_pth(path)
    message = str(info.value)
    assert path.name in message and "\n" not in message
    for fragment in fragments:
        assert fragment in message
    return message


def test_missing_file_is_reported(tmp_path: Path) -> None:
    assert_format_error(tmp_path / "nowhere.pth", "not found")


def test_random_bytes_are_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "noise.pth"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    assert_format_error(path, "not a zip archive")


def test_truncated_legacy_file_is_reported(shared_dir: Path, tmp_path: Path) -> None:
    data = (shared_dir / "golden/prenet/official.pth").read_bytes()
    path = tmp_path / "half_official.pth"
    path.write_bytes(data[: len(data) // 2])
    assert_format_error(path, "truncated")


def test_truncated_zip_file_is_reported(shared_dir: Path, tmp_path: Path) -> None:
    data = (shared_dir / "golden/prenet/weights.pth").read_bytes()
    path = tmp_path / "half_weights.pth"
    path.write_bytes(data[: len(data) // 2])
    assert_format_error(path, "truncated")


def test_unsupported_storage_type_is_reported(tmp_path: Path) -> None:
    storage = Storage("0", "QUInt8Storage", np.zeros(4, np.uint8))
    path = write_zip_checkpoint(tmp_path / "quant.pth", {"q": Tensor(storage, 0, (4,), (1,))}, [])
    assert_format_error(path, "unsupported storage type", "QUInt8Storage")


class RunsShell:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple:
        return (TorchGlobal("os", "system"), (self.command,))


def test_pickle_calling_os_system_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = write_zip_checkpoint(tmp_path / "evil.pth", {"x": RunsShell(f"touch {marker}")}, [])
    assert_format_error(path, "refusing", "os.system")
    assert not marker.exists()


def test_plain_malicious_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "evil_plain.pth"
    path.write_bytes(torch_like_pickle(RunsShell(f"touch {marker}")))
    assert_format_error(path, "refusing", "os.system")
    assert not marker.exists()


# --------------------------------------------------------------------------- real checkpoints


@pytest.mark.parametrize("arch", ["prenet", "mcodenet"])
def test_legacy_official_file_equals_its_zip_resave(shared_dir: Path, arch: str) -> None:
    legacy = read_pth(shared_dir / "golden" / arch / "official.pth")
    resaved = read_pth(shared_dir / "golden" / arch / "weights.pth")
    assert list(legacy) == list(resaved)
    for key, value in legacy.items():
        assert value.dtype == resaved[key].dtype and value.shape == resaved[key].shape, key
        np.testing.assert_array_equal(value, resaved[key], err_msg=key)


def official_checkpoints(shared_dir: Path) -> list[Path]:
    paths = sorted((shared_dir / "weights").rglob("*.pth"))
    assert len(paths) >= 24
    return paths


def test_every_official_checkpoint_loads_as_float32(shared_dir: Path) -> None:
    for path in official_checkpoints(shared_dir):
        weights = load_state_dict(path)
        assert weights, path
        assert all(v.dtype == np.float32 for v in weights.values()), path
        if "PReNet" in path.parts:
            in_channels = 3 if path.parent.name == "PReNet6_x" else 6
            assert weights["conv0.0.weight"].shape == (32, in_channels, 3, 3), path
            assert weights["conv.0.weight"].shape == (3, 32, 3, 3), path
        else:
            assert weights["output.weight"].shape == (3, 48, 3, 3), path


def test_prenet_official_shapes(shared_dir: Path) -> None:
    weights = load_state_dict(shared_dir / "weights/PReNet/logs/Rain100H/PReNet6/net_latest.pth")
    assert weights["conv0.0.weight"].shape == (32, 6, 3, 3)
    assert weights["conv_i.0.weight"].shape == (32, 64, 3, 3)
    assert weights["conv.0.bias"].shape == (3,)


def golden_dirs(shared_dir: Path) -> list[Path]:
    dirs = sorted(p.parent for p in (shared_dir / "golden").glob("*/weights.pth"))
    assert dirs
    return dirs


def factored_param_count(folder: Path) -> int:
    """Parameters of weights kept out of weights.pth as low-rank factors ``W = A @ B``."""
    path = folder / "linear_factors.npz"
    if not path.exists():
        return 0
    with np.load(path) as factors:
        return sum(
            factors[name].shape[0] * factors[name[: -len("A")] + "B"].shape[1]
            for name in factors.files
            if name.endswith(".A")
        )


def test_golden_weights_match_their_manifests(shared_dir: Path) -> None:
    for folder in golden_dirs(shared_dir):
        manifest = json.loads((folder / "manifest.json").read_text())
        weights = load_state_dict(folder / "weights.pth")
        if "state_dict_keys" in manifest:
            assert list(weights) == manifest["state_dict_keys"], folder.name
        # Tensors shared under several names come back as one array object: count them once,
        # as model.parameters() does; BatchNorm statistics are buffers, not parameters.
        unique = {id(v): v for k, v in weights.items() if not k.endswith(BN_BUFFERS)}
        count = sum(v.size for v in unique.values()) + factored_param_count(folder)
        assert count == manifest["param_count_this_config"], folder.name
