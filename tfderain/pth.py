"""Read PyTorch ``.pth`` checkpoints into numpy arrays without importing PyTorch.

Two on-disk formats exist:

* **zip** (``torch.save`` since 1.6): a zip archive with one top-level folder holding
  ``data.pkl`` (the pickled object), ``data/<key>`` (one raw storage per key), ``byteorder``
  (``little``/``big``; absent means little) and a few version records.  Tensors reference storages
  through persistent ids ``('storage', storage_type, key, location, numel)``.
* **legacy** (before 1.6, e.g. the official PReNet and CODE-Net checkpoints): several pickles
  back to back — magic number, protocol version (1001), system info, the object itself
  (persistent ids ``('storage', storage_type, root_key, location, numel, view_metadata)``), the
  list of storage keys — followed, for each key in that order, by a little-endian int64 element
  count and the raw little-endian elements.

Unpickling is restricted to an allow-list of globals (tensor rebuild helpers, storage classes,
``OrderedDict``, a few builtins and numpy reconstructors); anything else is refused, so reading a
checkpoint never imports or runs arbitrary code.  Every problem is reported as
:class:`PthFormatError` with a one-line message naming the file.
"""

from __future__ import annotations

import collections
import os
import pickle
import struct
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

__all__ = ["PthFormatError", "load_state_dict", "read_pth", "unwrap_state_dict"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

# Wrapper keys under which training scripts store the state dict, in order of preference.
_WRAPPER_KEYS = (
    "state_dict",
    "params",
    "params_ema",
    "model",
    "net",
    "network",
    "state_dict_ema",
)


class PthFormatError(ValueError):
    """A ``.pth`` file that cannot be read (missing, corrupt, truncated or unsupported)."""


class _Problem(Exception):
    """Internal: a format problem whose message gets the file name prepended."""


# --------------------------------------------------------------------------- storage types


@dataclass(frozen=True)
class _StorageType:
    """Stand-in for a ``torch.*Storage`` class: how its elements are laid out on disk."""

    name: str
    dtype: np.dtype  # element dtype as stored, byte order not yet applied
    bfloat16: bool = False


def _storage_types() -> dict[str, _StorageType]:
    table = {
        "FloatStorage": np.float32,
        "DoubleStorage": np.float64,
        "HalfStorage": np.float16,
        "BFloat16Storage": np.uint16,
        "LongStorage": np.int64,
        "IntStorage": np.int32,
        "ShortStorage": np.int16,
        "CharStorage": np.int8,
        "ByteStorage": np.uint8,
        "BoolStorage": np.bool_,
        "ComplexFloatStorage": np.complex64,
        "ComplexDoubleStorage": np.complex128,
        "UntypedStorage": np.uint8,
    }
    return {
        name: _StorageType(name, np.dtype(dtype), bfloat16=name == "BFloat16Storage")
        for name, dtype in table.items()
    }


_STORAGE_TYPES = _storage_types()


@dataclass(frozen=True)
class _StorageRef:
    """A persistent id resolved to 'elements [offset, offset+size) of storage ``key``'."""

    key: str
    storage_type: _StorageType
    view_offset: int = 0
    view_size: int | None = None


class _PendingTensor:
    """A tensor whose storage bytes may not have been read yet (legacy files store them last)."""

    def __init__(self, storage: Any, offset: Any, size: Any, stride: Any) -> None:
        self.storage = storage
        self.offset = offset
        self.size = size
        self.stride = stride


# --------------------------------------------------------------------------- allowed globals


def _rebuild_tensor_v2(
    storage: Any,
    storage_offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> _PendingTensor:
    return _PendingTensor(storage, storage_offset, size, stride)


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any) -> _PendingTensor:
    return _PendingTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None) -> Any:
    return data


def _rebuild_parameter_with_state(
    data: Any, requires_grad: Any, backward_hooks: Any, state: Any
) -> Any:
    return data


def _torch_size(dims: Any = ()) -> tuple:
    return tuple(dims)


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for ``bytes`` (latin-1 only)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Problem(f"unsupported _codecs.encode call with encoding {encoding!r}")
    return text.encode("latin-1", errors="strict")


def _numpy_reconstructors() -> dict[str, Any]:
    """numpy's own pickle helpers, taken from numpy itself (their module moved in numpy 2)."""
    return {
        "_reconstruct": np.ndarray((0,)).__reduce__()[0],
        "scalar": np.float64(0).__reduce__()[0],
    }


def _allowed_globals() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
        ("torch", "Size"): _torch_size,
        ("numpy", "dtype"): np.dtype,
        ("numpy", "ndarray"): np.ndarray,
        ("_codecs", "encode"): _latin1_encode,
    }
    for builtins_module in ("builtins", "__builtin__"):
        for name, obj in (("set", set), ("frozenset", frozenset), ("slice", slice)):
            allowed[(builtins_module, name)] = obj
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        for name, obj in _numpy_reconstructors().items():
            allowed[(module, name)] = obj
    for module in ("torch", "torch.cuda"):
        for name, storage_type in _STORAGE_TYPES.items():
            allowed[(module, name)] = storage_type
    return allowed


_ALLOWED_GLOBALS = _allowed_globals()


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only resolves allow-listed globals and hands storage ids to a callback."""

    def __init__(self, file: IO[bytes], on_storage: Callable[[tuple], _StorageRef]) -> None:
        super().__init__(file, encoding="utf-8")
        self._on_storage = on_storage

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            pass
        if module == "torch._utils" and name.startswith("_rebuild"):
            raise _Problem(f"unsupported tensor kind {module}.{name} (only dense tensors)")
        if module.startswith("torch") and name.endswith("Storage"):
            raise _Problem(f"unsupported storage type {module}.{name}")
        raise _Problem(f"refusing to load pickle global {module}.{name} (not allow-listed)")

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise _Problem(f"unsupported persistent id {_short_repr(pid)}")
        if not isinstance(pid[1], _StorageType):
            raise _Problem(f"unsupported storage type {_short_repr(pid[1])}")
        return self._on_storage(pid)


def _short_repr(obj: Any, limit: int = 80) -> str:
    text = repr(obj)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# What a corrupt or hostile byte stream can make the unpickler raise.
_CORRUPT_PICKLE_ERRORS = (
    pickle.UnpicklingError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    MemoryError,
    RecursionError,
    struct.error,
)


def _unpickle(file: IO[bytes], on_storage: Callable[[tuple], _StorageRef], what: str) -> Any:
    """Load one pickle; every failure becomes a :class:`_Problem` naming ``what``."""
    try:
        return _RestrictedUnpickler(file, on_storage).load()
    except _Problem:
        raise
    except EOFError:
        raise _Problem(f"truncated file (end of data inside the {what})") from None
    except pickle.UnpicklingError as exc:
        if "truncated" in str(exc):
            raise _Problem(f"truncated file (end of data inside the {what})") from None
        raise _Problem(f"corrupt {what}: {exc}") from None
    except _CORRUPT_PICKLE_ERRORS as exc:
        raise _Problem(f"corrupt {what}: {type(exc).__name__}: {exc}") from None


def _no_storage(pid: tuple) -> _StorageRef:
    raise _Problem("unexpected tensor storage reference in a header pickle")


# --------------------------------------------------------------------------- tensors


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _as_index_tuple(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple | list) or not all(_is_index(v) for v in value):
        raise _Problem(f"invalid tensor {what} {_short_repr(value)}")
    return tuple(value)


@dataclass(frozen=True)
class _Layout:
    """Where a tensor's elements sit in its storage, in elements."""

    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _layout(tensor: _PendingTensor) -> _Layout:
    size = _as_index_tuple(tensor.size, "size")
    stride = _as_index_tuple(tensor.stride, "stride")
    offset = tensor.offset
    if len(size) != len(stride) or not _is_index(offset):
        raise _Problem(f"invalid tensor layout size={size} stride={stride} offset={offset!r}")
    return _Layout(offset, size, stride)


def _materialize(layout: _Layout, storage: np.ndarray, storage_type: _StorageType) -> np.ndarray:
    """Apply a layout to a 1-D storage array and return a native-endian C-contiguous copy."""
    native = storage.dtype.newbyteorder("=")
    if 0 in layout.size:
        array = np.zeros(layout.size, dtype=native)
    else:
        last = layout.offset + sum(
            (n - 1) * s for n, s in zip(layout.size, layout.stride, strict=True)
        )
        if last >= storage.size:
            raise _Problem(
                f"tensor of size {layout.size} at offset {layout.offset} exceeds its storage "
                f"of {storage.size} elements"
            )
        view = np.lib.stride_tricks.as_strided(
            storage[layout.offset :],
            shape=layout.size,
            strides=tuple(s * storage.itemsize for s in layout.stride),
            writeable=False,
        )
        array = np.array(view, dtype=native, order="C", copy=True)
    if storage_type.bfloat16:
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


class _Resolver:
    """Replaces pending tensors in the unpickled object by numpy arrays, in place where possible.

    Tensors that are the same view of the same storage (tied weights, a module registered under
    several names) become one array object, so sharing stays visible to the caller.
    """

    def __init__(self, storage_for: Callable[[_StorageRef], np.ndarray]) -> None:
        self._storage_for = storage_for
        self._arrays: dict[tuple[_StorageRef, _Layout], np.ndarray] = {}
        self._seen: set[int] = set()

    def __call__(self, obj: Any) -> Any:
        if isinstance(obj, _PendingTensor):
            return self._tensor(obj)
        if isinstance(obj, _StorageRef):
            raise _Problem("bare storages (not wrapped in a tensor) are not supported")
        if isinstance(obj, dict | list):
            if id(obj) not in self._seen:
                self._seen.add(id(obj))
                keys = list(obj) if isinstance(obj, dict) else range(len(obj))
                for key in keys:
                    obj[key] = self(obj[key])
            return obj
        if isinstance(obj, tuple):
            return tuple(self(item) for item in obj)
        return obj

    def _tensor(self, tensor: _PendingTensor) -> np.ndarray:
        ref = tensor.storage
        if not isinstance(ref, _StorageRef):
            raise _Problem(f"tensor built from a non-storage {_short_repr(ref)}")
        layout = _layout(tensor)
        if (ref, layout) not in self._arrays:
            storage = self._storage_for(ref)
            self._arrays[(ref, layout)] = _materialize(layout, storage, ref.storage_type)
        return self._arrays[(ref, layout)]


def _storage_from_bytes(
    raw: bytes, storage_type: _StorageType, numel: int, byteorder: str, key: str
) -> np.ndarray:
    dtype = storage_type.dtype.newbyteorder(byteorder)
    if len(raw) < numel * dtype.itemsize:
        raise _Problem(
            f"truncated storage {key!r}: {len(raw)} bytes for {numel} {storage_type.name} elements"
        )
    return np.frombuffer(raw, dtype=dtype, count=numel)


def _view(storage: np.ndarray, ref: _StorageRef) -> np.ndarray:
    if ref.view_size is None:
        return storage
    end = ref.view_offset + ref.view_size
    if ref.view_offset < 0 or end > storage.size:
        raise _Problem(f"storage view {ref.key!r} exceeds its root storage")
    return storage[ref.view_offset : end]


# --------------------------------------------------------------------------- zip format


def _zip_prefix(archive: zipfile.ZipFile) -> str:
    candidates = [
        name[: -len("data.pkl")]
        for name in archive.namelist()
        if name.endswith("data.pkl") and name.count("/") == 1
    ]
    if len(candidates) != 1:
        raise _Problem("zip archive has no single <folder>/data.pkl: not a torch.save checkpoint")
    return candidates[0]


def _zip_byteorder(archive: zipfile.ZipFile, prefix: str) -> str:
    try:
        record = archive.read(prefix + "byteorder").strip()
    except KeyError:
        return "<"
    if record not in (b"little", b"big"):
        raise _Problem(f"unknown byteorder record {record!r}")
    return "<" if record == b"little" else ">"


def _read_zip(archive: zipfile.ZipFile) -> Any:
    prefix = _zip_prefix(archive)
    byteorder = _zip_byteorder(archive, prefix)
    numels: dict[str, int] = {}

    def on_storage(pid: tuple) -> _StorageRef:
        if len(pid) != 5 or not isinstance(pid[4], int) or pid[4] < 0:
            raise _Problem(f"unsupported storage id {_short_repr(pid)}")
        key = str(pid[2])
        numels[key] = pid[4]
        return _StorageRef(key, pid[1])

    with archive.open(prefix + "data.pkl") as handle:
        obj = _unpickle(handle, on_storage, "data.pkl pickle")

    cache: dict[str, np.ndarray] = {}

    def storage_for(ref: _StorageRef) -> np.ndarray:
        if ref.key not in cache:
            try:
                raw = archive.read(f"{prefix}data/{ref.key}")
            except KeyError:
                raise _Problem(f"missing storage record data/{ref.key}") from None
            cache[ref.key] = _storage_from_bytes(
                raw, ref.storage_type, numels[ref.key], byteorder, ref.key
            )
        return cache[ref.key]

    return _Resolver(storage_for)(obj)


# --------------------------------------------------------------------------- legacy format


def _read_legacy_header(handle: IO[bytes]) -> None:
    try:
        magic = _RestrictedUnpickler(handle, _no_storage).load()
    except _Problem:
        raise
    except (EOFError, *_CORRUPT_PICKLE_ERRORS):  # unreadable here: simply not a torch file
        raise _Problem("not a zip archive and not a legacy PyTorch pickle") from None
    if magic != _LEGACY_MAGIC:
        raise _Problem("not a PyTorch checkpoint (pickle without the torch magic number)")
    protocol = _unpickle(handle, _no_storage, "protocol-version pickle")
    if protocol != _LEGACY_PROTOCOL:
        raise _Problem(f"unsupported legacy protocol version {_short_repr(protocol)}")
    sys_info = _unpickle(handle, _no_storage, "system-info pickle")
    if not isinstance(sys_info, dict):
        raise _Problem("corrupt system-info pickle")


def _read_legacy_storages(
    handle: IO[bytes], keys: list[str], types: Mapping[str, _StorageType], file_size: int
) -> dict[str, np.ndarray]:
    """Read the ``(int64 count, raw elements)`` records that follow the pickles."""
    storages: dict[str, np.ndarray] = {}
    for key in keys:
        if key not in types:
            raise _Problem(f"storage {key!r} is listed but never referenced")
        header = handle.read(8)
        if len(header) < 8:
            raise _Problem(f"truncated file (storage {key!r} header missing)")
        numel = int.from_bytes(header, "little", signed=True)
        nbytes = numel * types[key].dtype.itemsize
        if numel < 0 or nbytes > file_size - handle.tell():
            raise _Problem(
                f"truncated file (storage {key!r} needs {nbytes} bytes, "
                f"{file_size - handle.tell()} remain)"
            )
        storages[key] = _storage_from_bytes(handle.read(nbytes), types[key], numel, "<", key)
    return storages


def _read_legacy(handle: IO[bytes], file_size: int) -> Any:
    _read_legacy_header(handle)
    types: dict[str, _StorageType] = {}

    def on_storage(pid: tuple) -> _StorageRef:
        if len(pid) != 6:
            raise _Problem(f"unsupported storage id {_short_repr(pid)}")
        _, storage_type, root_key, _location, _numel, view_metadata = pid
        types.setdefault(str(root_key), storage_type)
        if view_metadata is None:
            return _StorageRef(str(root_key), storage_type)
        try:
            _view_key, offset, size = view_metadata
        except (TypeError, ValueError):
            raise _Problem(f"invalid storage view {_short_repr(view_metadata)}") from None
        if not isinstance(offset, int) or not isinstance(size, int) or size < 0:
            raise _Problem(f"invalid storage view {_short_repr(view_metadata)}")
        return _StorageRef(str(root_key), storage_type, offset, size)

    obj = _unpickle(handle, on_storage, "main pickle")
    keys = _unpickle(handle, _no_storage, "storage-key list")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise _Problem("corrupt storage-key list")
    storages = _read_legacy_storages(handle, keys, types, file_size)

    def storage_for(ref: _StorageRef) -> np.ndarray:
        if ref.key not in storages:
            raise _Problem(f"storage {ref.key!r} is referenced but not stored")
        return _view(storages[ref.key], ref)

    return _Resolver(storage_for)(obj)


# --------------------------------------------------------------------------- public API


def _read_any(path: str) -> Any:
    if not os.path.exists(path):
        raise _Problem("file not found")
    if os.path.isdir(path):
        raise _Problem("is a directory, not a checkpoint file")
    with open(path, "rb") as handle:
        head = handle.read(4)
        if not head:
            raise _Problem("empty file")
        if head.startswith(b"PK"):
            try:
                with zipfile.ZipFile(handle) as archive:
                    return _read_zip(archive)
            except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
                raise _Problem(f"zip archive is truncated or corrupt ({exc})") from None
        handle.seek(0)
        return _read_legacy(handle, os.fstat(handle.fileno()).st_size)


def read_pth(path: str | os.PathLike) -> dict[str, Any]:
    """Unpickle the checkpoint at ``path`` with every tensor replaced by a numpy array.

    Arrays have the tensor's dtype and shape (bfloat16 becomes float32) and are C-contiguous
    native-endian copies.  Containers (dicts including ``OrderedDict``, lists, tuples) are kept
    as they are, so wrapped state dicts (``{"state_dict": ...}``, ``{"params": ...}``) come back
    wrapped; see :func:`load_state_dict` to unwrap them.

    Raises:
        PthFormatError: the file is missing, not a PyTorch checkpoint, truncated, uses an
            unsupported storage type, references a pickle global outside the allow-list, or does
            not hold a dict at the top level.
    """
    name = os.fspath(path)
    try:
        obj = _read_any(name)
    except _Problem as exc:
        raise PthFormatError(f"{name}: {exc}") from None
    except OSError as exc:
        raise PthFormatError(f"{name}: cannot read file ({exc.strerror or exc})") from None
    except RecursionError:
        raise PthFormatError(f"{name}: objects nested too deeply") from None
    if not isinstance(obj, dict):
        raise PthFormatError(f"{name}: top-level object is a {type(obj).__name__}, not a dict")
    return obj


def _has_arrays(value: Any) -> bool:
    return isinstance(value, dict) and any(isinstance(v, np.ndarray) for v in value.values())


def _contains_array(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return True
    if isinstance(value, dict):
        return any(_contains_array(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_contains_array(v) for v in value)
    return False


def _choose_state_dict(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The dict holding the weights: the checkpoint itself or one well-known wrapper entry."""
    if all(isinstance(v, np.ndarray) for v in checkpoint.values()):
        return checkpoint
    found = [key for key in _WRAPPER_KEYS if _has_arrays(checkpoint.get(key))]
    # An EMA copy next to the plain weights is an alternative, not a conflict: take the plain one.
    found = [key for key in found if not (key.endswith("_ema") and key[: -len("_ema")] in found)]
    if len(found) > 1:
        raise _Problem(f"ambiguous checkpoint: several state dicts {found}")
    if found:
        return checkpoint[found[0]]
    if any(isinstance(v, np.ndarray) for v in checkpoint.values()):
        return checkpoint
    raise _Problem(
        f"no state dict found (top-level keys: {_short_repr(sorted(map(str, checkpoint)))})"
    )


def _arrays_only(state: dict[str, Any]) -> Iterator[tuple[str, np.ndarray]]:
    for key, value in state.items():
        if isinstance(value, np.ndarray):
            yield str(key), value
        elif _contains_array(value):
            raise _Problem(f"entry {key!r} nests tensors inside a {type(value).__name__}")


def unwrap_state_dict(
    checkpoint: Mapping[str, Any], source: str = "checkpoint"
) -> dict[str, np.ndarray]:
    """The state dict inside an unpickled ``checkpoint``, as ``{parameter name: array}``.

    The state dict is the checkpoint itself when it maps names to tensors, otherwise the single
    entry among ``state_dict``, ``params``, ``params_ema``, ``model``, ``net``, ``network``,
    ``state_dict_ema`` that holds tensors (an ``_ema`` copy next to its plain entry is ignored).
    Non-tensor metadata next to the tensors (epoch numbers, strings) is dropped; buffers such as
    ``num_batches_tracked`` are kept.  A ``module.`` prefix shared by every key (``DataParallel``)
    is removed.  Tensors shared under several names stay one array object.

    Raises:
        PthFormatError: no unambiguous state dict is found; the message starts with ``source``.
    """
    try:
        state = dict(_arrays_only(_choose_state_dict(dict(checkpoint))))
    except _Problem as exc:
        raise PthFormatError(f"{source}: {exc}") from None
    except RecursionError:
        raise PthFormatError(f"{source}: objects nested too deeply") from None
    if state and all(key.startswith("module.") for key in state):
        state = {key[len("module.") :]: value for key, value in state.items()}
    return state


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read ``path`` and return its state dict as ``{parameter name: array}``.

    See :func:`unwrap_state_dict` for how the state dict is found inside the checkpoint.

    Raises:
        PthFormatError: as :func:`read_pth`, or when no unambiguous state dict is found.
    """
    name = os.fspath(path)
    return unwrap_state_dict(read_pth(name), name)
