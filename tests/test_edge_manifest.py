"""The manifest's per-file thresholds: which threshold a file uses, and older/newer manifests."""
from __future__ import annotations

import json

import pytest

from edge.manifest import SCHEMA_VERSION, ArtifactInfo, Manifest, ManifestError


def _manifest() -> Manifest:
    return Manifest(threshold=0.30, threshold_rule="float rule", artifacts={
        "tflite_int8": ArtifactInfo("tflite_int8", "model_int8.tflite", threshold=0.27,
                                    threshold_rule="own rule"),
        "onnx_fp32": ArtifactInfo("onnx_fp32", "model_fp32.onnx")})


def test_a_file_uses_its_own_threshold_else_the_manifests():
    m = Manifest.from_json(_manifest().to_json())  # survives the JSON round trip
    own = m.for_artifact("anywhere/model_int8.tflite")
    assert (own.threshold, own.threshold_rule) == (0.27, "own rule")
    assert own.label_for(0.28) == "malignant" and m.label_for(0.28) == "benign"
    assert m.for_artifact("model_fp32.onnx").threshold == 0.30   # no threshold of its own
    assert m.for_artifact("unknown.tflite").threshold == 0.30
    assert m.threshold == 0.30                                    # the original is unchanged


def test_schema_1_manifest_still_loads():
    d = _manifest().to_dict()
    d["schema"] = 1
    for a in d["artifacts"].values():
        del a["threshold"], a["threshold_rule"]
    m = Manifest.from_dict(d)
    assert m.for_artifact("model_int8.tflite").threshold == 0.30


def test_unknown_artifact_fields_are_ignored():
    d = _manifest().to_dict()
    d["artifacts"]["tflite_int8"]["added_later"] = {"x": 1}
    assert Manifest.from_dict(d).artifacts["tflite_int8"].threshold == 0.27


def test_newer_schema_is_refused_with_the_fix():
    d = _manifest().to_dict()
    d["schema"] = SCHEMA_VERSION + 1
    with pytest.raises(ManifestError, match="upgrade the edge package"):
        Manifest.from_json(json.dumps(d))
