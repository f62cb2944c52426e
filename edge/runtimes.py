"""Inference runtimes behind one small interface: LiteRT/tflite-runtime/tf.lite and onnxruntime.

``open_runtime(path)`` picks the backend from the file suffix (``.tflite`` -> LiteRT, falling
back to tflite-runtime, then ``tensorflow.lite``; ``.onnx`` -> onnxruntime). Each runtime
exposes its input/output tensor specs (shape, dtype, quantization read from the model
itself) and ``run(x) -> raw output``. TensorFlow is imported only as the last fallback.

Example:
    >>> rt = open_runtime("models/model_int8.tflite", threads=2)   # the shipped model
    >>> n, h, w, c = rt.input.shape  # h = w = the manifest's input size
    >>> (n, h == w, c), rt.input.dtype
    ((1, True, 3), 'int8')
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from core import first_line

TFLITE_BACKENDS = ("litert", "tflite-runtime", "tensorflow")
ONNX_BACKENDS = ("onnxruntime",)
BACKENDS = TFLITE_BACKENDS + ONNX_BACKENDS
PIP_NAME = {"litert": "ai-edge-litert", "tflite-runtime": "tflite-runtime",
            "tensorflow": "tensorflow", "onnxruntime": "onnxruntime"}
_MODULE = {"litert": "ai_edge_litert.interpreter", "tflite-runtime": "tflite_runtime.interpreter",
           "tensorflow": "tensorflow", "onnxruntime": "onnxruntime"}
TOP_MODULE = {b: m.split(".")[0] for b, m in _MODULE.items()}  # what find_spec can look up


class RuntimeMissing(RuntimeError):
    """No installed runtime can run this model; the message names the pip package."""


class ModelLoadError(RuntimeError):
    """The model file is missing, corrupt or not a model."""


@dataclass(frozen=True)
class TensorSpec:
    shape: tuple[int, ...]
    dtype: str
    scale: float = 0.0
    zero_point: int = 0


def backend_available(backend: str) -> bool:
    """Whether ``backend`` can be imported. TensorFlow (a ~2 s, ~500 MB import, only the
    last-resort desktop fallback) is looked up without importing it."""
    try:
        if backend == "tensorflow":
            return importlib.util.find_spec("tensorflow") is not None
        importlib.import_module(_MODULE[backend])
        return True
    except Exception:  # ImportError, a blocked module (ValueError), or a broken wheel
        return False


def backends_for(path: str | Path) -> tuple[str, ...]:
    return ONNX_BACKENDS if Path(path).suffix.lower() == ".onnx" else TFLITE_BACKENDS


def resolve_backend(path: str | Path, backend: str = "auto") -> str:
    """The backend to use for ``path``: the forced one, or the first installed one."""
    candidates = backends_for(path)
    if backend != "auto":
        if backend not in candidates:
            raise RuntimeMissing(f"{path}: backend '{backend}' cannot run a "
                                 f"{Path(path).suffix} model; use one of {', '.join(candidates)}")
        if not backend_available(backend):
            raise RuntimeMissing(f"backend '{backend}' is not installed: "
                                 f"pip install {PIP_NAME[backend]}")
        return backend
    for b in candidates:
        if backend_available(b):
            return b
    raise RuntimeMissing(f"{path}: no runtime for {Path(path).suffix} models is installed: "
                         f"pip install {PIP_NAME[candidates[0]]}")


class TFLiteRuntime:
    """A TFLite interpreter from LiteRT, tflite-runtime or tensorflow.lite."""

    def __init__(self, path: str | Path, backend: str, threads: int | None = None):
        self.path, self.backend = Path(path), backend
        try:
            mod = importlib.import_module(_MODULE[backend])
        except ImportError as e:
            raise RuntimeMissing(f"backend '{backend}' cannot be imported ({e}); "
                                 f"pip install {PIP_NAME[backend]}") from e
        cls = mod.lite.Interpreter if backend == "tensorflow" else mod.Interpreter
        try:
            with _without_native_info():
                self._it = cls(model_path=str(path), num_threads=threads)
                self._it.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ModelLoadError(f"{path}: not a valid TFLite model "
                                 f"({first_line(e, 160)})") from e
        self._in = self._it.get_input_details()[0]
        self._out = self._it.get_output_details()[0]
        self.input = _spec(self._in)
        self.output = _spec(self._out)

    def run(self, x: np.ndarray) -> np.ndarray:
        self._it.set_tensor(self._in["index"], x)
        self._it.invoke()
        return self._it.get_tensor(self._out["index"])


@contextmanager
def _without_native_info() -> Iterator[None]:
    """Drop the native "INFO: Created TensorFlow Lite XNNPACK delegate" line; keep other output."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (e.g. captured): leave it
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            for line in tmp.read().decode("utf-8", "replace").splitlines():
                if not line.startswith("INFO: "):
                    print(line, file=sys.stderr)


def _spec(d: dict[str, Any]) -> TensorSpec:
    scale, zp = d.get("quantization", (0.0, 0))
    return TensorSpec(tuple(int(s) for s in d["shape"]), np.dtype(d["dtype"]).name,
                      float(scale), int(zp))


class OnnxRuntime:
    """An onnxruntime CPU session with a fixed thread count."""

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime as ort

        self.path, self.backend = Path(path), "onnxruntime"
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self._s = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise ModelLoadError(f"{path}: not a valid ONNX model "
                                 f"({first_line(e, 160)})") from e
        i, o = self._s.get_inputs()[0], self._s.get_outputs()[0]
        self._in_name = i.name
        self.input = TensorSpec(tuple(d if isinstance(d, int) else 1 for d in i.shape),
                                _onnx_dtype(i.type))
        self.output = TensorSpec(tuple(d if isinstance(d, int) else 1 for d in o.shape),
                                 _onnx_dtype(o.type))

    def run(self, x: np.ndarray) -> np.ndarray:
        return self._s.run(None, {self._in_name: x})[0]

    def metadata(self) -> dict[str, str]:
        return dict(self._s.get_modelmeta().custom_metadata_map)


def _onnx_dtype(t: str) -> str:
    return {"tensor(float)": "float32", "tensor(uint8)": "uint8", "tensor(int8)": "int8",
            "tensor(float16)": "float16"}.get(t, t)


def open_runtime(path: str | Path, backend: str = "auto", threads: int | None = None):
    """Open ``path`` with the given (or first available) backend.

    Raises ``ModelLoadError`` for a missing/corrupt file and ``RuntimeMissing`` (naming the
    pip package) when no suitable runtime is installed.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: model file not found (run python export/convert.py, "
                             "or pass --model)")
    if path.stat().st_size == 0:
        raise ModelLoadError(f"{path}: model file is empty (re-run python export/convert.py)")
    b = resolve_backend(path, backend)
    if b == "onnxruntime":
        return OnnxRuntime(path, threads)
    return TFLiteRuntime(path, b, threads)
