"""Torch-free ``.pth`` reading: both layouts, bounds checks, and no code execution.

The files are written here with a stub ``torch`` module (only the names a state dict pickle
refers to), so the tests need no torch either; the real wheels' files are read in
``test_train_lite.py``.
"""
from __future__ import annotations

import collections
import io
import os
import pickle
import sys
import types
import zipfile

import numpy as np
import pytest

from train.backbones.pth import PthError, read_pth

_MAGIC = 0x1950A86A20F9469CFC6C
DATA = np.arange(12, dtype=np.float32)


@pytest.fixture
def state_pickle(monkeypatch):
    """``make({name: (offset, shape, stride)}, numel)`` -> pickled state dict over one storage."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
    storage = type("FloatStorage", (), {"__module__": "torch"})

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while writing")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = utils.__name__, "_rebuild_tensor_v2"
    torch.FloatStorage, utils._rebuild_tensor_v2 = storage, _rebuild_tensor_v2
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    st = object()  # stands for the one storage

    class Tensor:
        def __init__(self, offset, shape, stride):
            self.args = (st, offset, shape, stride, False, collections.OrderedDict())

        def __reduce__(self):
            return (_rebuild_tensor_v2, self.args)

    def make(tensors: dict, numel: int = DATA.size) -> bytes:
        class Writer(pickle.Pickler):
            def persistent_id(self, obj):
                return ("storage", storage, "0", "cpu", numel, None) if obj is st else None

        buf = io.BytesIO()
        Writer(buf, protocol=2).dump(collections.OrderedDict(
            (k, Tensor(*v)) for k, v in tensors.items()))
        return buf.getvalue()

    yield make
    assert "torch" in sys.modules  # the stub, removed by monkeypatch after this


def _legacy(path, state: bytes, raw: bytes = DATA.tobytes(), numel: int = DATA.size):
    """The torch < 1.6 layout: magic, version, sys info, state, storage keys, raw storages."""
    with open(path, "wb") as f:
        for obj in (_MAGIC, 1001, {"little_endian": True}):
            pickle.dump(obj, f, protocol=2)
        f.write(state)
        pickle.dump(["0"], f, protocol=2)
        f.write(np.int64(numel).tobytes() + raw)
    return path


TENSORS = {"a": (0, (3, 4), (4, 1)), "b_t": (2, (2, 3), (1, 4)), "s": (5, (), ())}


def _check(t):
    np.testing.assert_array_equal(t["a"], DATA.reshape(3, 4))
    np.testing.assert_array_equal(t["b_t"], [[2, 6, 10], [3, 7, 11]])  # offset 2, strides (1, 4)
    assert t["s"].shape == () and t["s"] == 5
    assert all(a.flags.c_contiguous and a.flags.writeable for a in t.values())


def test_legacy_layout(tmp_path, state_pickle):
    _check(read_pth(_legacy(tmp_path / "m.pth", state_pickle(TENSORS))))


def test_zip_layout(tmp_path, state_pickle):
    """torch >= 1.6: ``<root>/data.pkl`` + ``<root>/data/<key>``."""
    p = tmp_path / "m.pth"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("archive/data.pkl", state_pickle(TENSORS))
        z.writestr("archive/data/0", DATA.tobytes())
    _check(read_pth(p))


def test_truncated_and_out_of_bounds_files_fail_cleanly(tmp_path, state_pickle):
    p = _legacy(tmp_path / "short.pth", state_pickle(TENSORS), raw=DATA.tobytes()[:20])
    with pytest.raises(PthError, match="short.pth: not a readable PyTorch state dict"):
        read_pth(p)
    p = _legacy(tmp_path / "oob.pth", state_pickle({"a": (4, (3, 4), (4, 1))}))
    with pytest.raises(PthError, match="oob.pth: tensor view outside its storage"):
        read_pth(p)  # would read 4 floats past the end without the bounds check
    (tmp_path / "text.pth").write_text("hello")
    with pytest.raises(PthError, match="text.pth"):
        read_pth(tmp_path / "text.pth")


class _Evil:
    def __reduce__(self):
        return (os.getcwd, ())


@pytest.mark.parametrize("where", ["magic", "sys_info", "state", "zip"])
def test_restricted_unpickler_refuses_code(tmp_path, where):
    """No pickle in the file may call anything outside a plain state dict."""
    evil = pickle.dumps(_Evil(), protocol=2)
    p = tmp_path / "evil.pth"
    if where == "zip":
        with zipfile.ZipFile(p, "w") as z:
            z.writestr("archive/data.pkl", evil)
    else:
        parts = [pickle.dumps(o, protocol=2) for o in (_MAGIC, 1001, {"little_endian": True}, {})]
        parts[{"magic": 0, "sys_info": 2, "state": 3}[where]] = evil
        p.write_bytes(b"".join(parts))
    with pytest.raises(PthError, match="refusing to unpickle.*getcwd"):
        read_pth(p)
