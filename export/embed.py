"""Embed the manifest inside an exported model file, so the file alone is self-describing.

- TFLite: a metadata entry named ``edge.manifest.METADATA_KEY`` whose buffer holds
  ``edge.manifest.encode_embedded(manifest)`` (magic, u32 length, JSON).
- ONNX: ``metadata_props[METADATA_KEY]`` holds the manifest JSON.

``edge.manifest.read_embedded`` reads both back without TensorFlow or onnx installed.
Embedding changes the file, so a file cannot carry its own hash: the embedded copy lists
every artifact with ``sha256=""`` and ``bytes=0``; the sidecar ``manifest.json`` has them, and
the export time (``created``): without it, exporting the same model again gives the same bytes
(``make shipped`` is compared with the recorded golden file by sha256).

Example:
    >>> data = embed_bytes(Path("model_int8.tflite"), manifest)      # doctest: +SKIP
    >>> decode_embedded(data).threshold                              # doctest: +SKIP
    0.42
"""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np

from edge.manifest import METADATA_KEY, Manifest, encode_embedded


def embeddable(manifest: Manifest) -> Manifest:
    """A copy without per-file hashes and sizes (a file cannot contain its own hash) and
    without the export time (the same model exported twice is the same file)."""
    m = copy.deepcopy(manifest)
    m.artifacts = {k: dataclasses.replace(a, sha256="", bytes=0) for k, a in m.artifacts.items()}
    m.created = ""
    return m


def embed_tflite(data: bytes, manifest: Manifest) -> bytes:
    """TFLite flatbuffer bytes with the manifest added (or replaced) as a metadata buffer."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    payload = np.frombuffer(encode_embedded(manifest), dtype=np.uint8)
    model.metadata = [m for m in (model.metadata or [])
                      if (m.name.decode() if isinstance(m.name, bytes) else m.name) != METADATA_KEY]
    buf = schema.BufferT()
    buf.data = payload
    model.buffers.append(buf)
    meta = schema.MetadataT()
    meta.name = METADATA_KEY
    meta.buffer = len(model.buffers) - 1
    model.metadata.append(meta)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def embed_onnx(data: bytes, manifest: Manifest) -> bytes:
    """ONNX model bytes with ``metadata_props[METADATA_KEY]`` set to the manifest JSON."""
    import onnx

    model = onnx.load_from_string(data)
    props = {p.key: p.value for p in model.metadata_props}
    props[METADATA_KEY] = manifest.to_json()
    onnx.helper.set_model_props(model, props)  # replaces all props with ``props``
    return model.SerializeToString()


def embed_bytes(path: Path, manifest: Manifest) -> bytes:
    """The bytes of ``path`` with ``embeddable(manifest)`` embedded, by file suffix."""
    data = Path(path).read_bytes()
    m = embeddable(manifest)
    if Path(path).suffix.lower() == ".onnx":
        return embed_onnx(data, m)
    return embed_tflite(data, m)
