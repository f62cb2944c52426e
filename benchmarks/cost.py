"""Model cost (parameters, multiply-accumulates per inference) and the machine's matmul peak.

MACs are counted from the exported graph itself, so they describe exactly what runs:
TFLite ``CONV_2D`` = output elements x kh x kw x C_in, ``DEPTHWISE_CONV_2D`` = output
elements x kh x kw, ``FULLY_CONNECTED`` = output elements x C_in; ONNX ``Conv`` = output
elements x (C_in / groups) x kh x kw, ``MatMul``/``Gemm`` = output elements x K (shapes from
``onnx.shape_inference``, batch 1). Parameters are the weights and biases of those layers
after export (batch norm folded in). Pooling, activations and element-wise ops are not
counted (they are a few percent of a CNN's MACs).

The peak is the best of repeated float32 ``n x n`` numpy matmuls (n = 512, 1024, 2048;
``n**3`` MACs each) in a process whose BLAS thread count was fixed through the environment
before numpy loaded.

Example:
    >>> c = count_tflite("models/model_int8.tflite")  # the shipped MobileNetV2 model
    >>> c.macs > c.params > 0
    True
    >>> c = count_tflite("reference/model_fp32.tflite")  # MobileNetV2-1.0, 224  # doctest: +SKIP
    >>> c.macs, c.params                                                       # doctest: +SKIP
    (299495552, 2208096)
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                    "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


@dataclass(frozen=True)
class ModelCost:
    params: int
    macs: int
    source: str  # which file/graph was counted

    def to_dict(self) -> dict:
        return asdict(self)


def _prod(shape) -> int:
    return int(np.prod([max(int(d), 1) for d in shape])) if len(shape) else 1


def count_tflite(path: str | Path) -> ModelCost:
    """Count MACs/params of a .tflite file from its operator list (LiteRT or tflite-runtime)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        from tflite_runtime.interpreter import Interpreter  # type: ignore[no-redef]
    it = Interpreter(model_path=str(path))
    tensors = {t["index"]: tuple(int(s) for s in t["shape"]) for t in it.get_tensor_details()}
    macs = params = 0
    for op in it._get_ops_details():  # noqa: SLF001 - the only operator listing LiteRT offers
        name = op["op_name"]
        ins = [i for i in op["inputs"] if i >= 0]
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") or len(ins) < 2:
            continue
        out = _prod(tensors[op["outputs"][0]])
        w = tensors[ins[1]]
        if name == "CONV_2D":  # filter [C_out, kh, kw, C_in]
            macs += out * _prod(w[1:])
        elif name == "DEPTHWISE_CONV_2D":  # filter [1, kh, kw, C_out]
            macs += out * _prod(w[1:3])
        else:  # weights [C_out, C_in]
            macs += out * w[-1]
        params += sum(_prod(tensors[i]) for i in ins[1:])
    return ModelCost(params=params, macs=macs, source=Path(path).name)


def count_onnx(path: str | Path) -> ModelCost:
    """Count MACs/params of an .onnx file (needs the ``onnx`` package for shape inference)."""
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    g = model.graph
    shapes: dict[str, tuple[int, ...]] = {i.name: tuple(i.dims) for i in g.initializer}
    for v in list(g.value_info) + list(g.input) + list(g.output):
        dims = v.type.tensor_type.shape.dim
        shapes.setdefault(v.name, tuple(d.dim_value if d.dim_value > 0 else 1 for d in dims))
    macs = params = 0
    for n in g.node:
        if n.op_type not in ("Conv", "MatMul", "Gemm") or n.output[0] not in shapes:
            continue
        w = shapes.get(n.input[1])
        if w is None:
            continue
        out = _prod(shapes[n.output[0]])
        if n.op_type == "Conv":  # W [C_out, C_in/groups, kh, kw]
            macs += out * _prod(w[1:])
        elif n.op_type == "Gemm":
            trans_b = any(a.name == "transB" and a.i for a in n.attribute)
            macs += out * (w[1] if trans_b else w[0])
        else:
            macs += out * w[-2] if len(w) >= 2 else 0
        params += sum(_prod(shapes[i]) for i in n.input[1:] if i in shapes)
    return ModelCost(params=params, macs=macs, source=Path(path).name)


def count_model(path: str | Path) -> ModelCost:
    """Count by file suffix."""
    return count_onnx(path) if Path(path).suffix.lower() == ".onnx" else count_tflite(path)


def matmul_peak_gmacs(sizes: tuple[int, ...] = (512, 1024, 2048), seconds: float = 0.3) -> float:
    """Best float32 GMAC/s of ``n x n`` matmuls, trying each size for about ``seconds``."""
    rng = np.random.default_rng(0)
    best_rate = 0.0
    for n in sizes:
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        a @ b  # warm-up: BLAS thread pool start, page faults
        best = float("inf")
        end = time.perf_counter() + seconds
        while time.perf_counter() < end or best == float("inf"):
            t = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t)
        best_rate = max(best_rate, n ** 3 / best / 1e9)
    return best_rate
