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


def test_schema5_modality_thresholds_round_trip_and_follow_the_artifact():
    from edge.manifest import ArtifactInfo, Manifest

    m = Manifest(threshold=0.3, modalities=("dermoscopic", "phone"), modality_index=2,
                 modality_thresholds={"dermoscopic": 0.3, "phone": 0.6},
                 artifacts={"q": ArtifactInfo("q", "q.tflite", threshold=0.31,
                                              modality_thresholds={"dermoscopic": 0.31,
                                                                   "phone": 0.62})})
    back = Manifest.from_json(m.to_json())
    assert back.modalities == ("dermoscopic", "phone") and back.output_size == 3
    q = back.for_artifact("models/q.tflite")
    assert q.threshold_for("phone") == 0.62 and q.threshold_for("dermoscopic") == 0.31
    assert back.for_artifact("x.onnx").threshold_for("phone") == 0.6
    assert back.modality_of([0.1, 0.2, 0.5]) == "phone"
    assert back.modality_of([0.1, 0.2, 0.49]) == "dermoscopic"


def test_schema4_manifest_keeps_its_one_threshold():
    import json

    from edge.manifest import Manifest

    d = json.loads(Manifest(threshold=0.42).to_json())
    for k in ("modalities", "modality_index", "modality_thresholds", "modality_threshold_rules"):
        d.pop(k)
    d["schema"] = 4
    m = Manifest.from_dict(d)
    assert m.modality_of([0.9]) == "" and m.threshold_for("") == 0.42
    assert m.threshold_for("phone") == 0.42
