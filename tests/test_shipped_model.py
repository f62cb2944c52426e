"""The shipped default model: loads with the edge runner and reproduces recorded predictions.

A changed model file, manifest or preprocessing shows up here as a different probability.
"""
import json

import pytest

from tests import golden_shipped as G

pytestmark = pytest.mark.skipif(not G.SHIPPED.is_file(), reason="no shipped model in models/")


@pytest.fixture(scope="module")
def golden():
    if not G.GOLDEN.is_file():
        pytest.fail(f"{G.GOLDEN} missing: run make golden (python -m tests.golden_shipped --write)")
    return json.loads(G.GOLDEN.read_text())


def test_shipped_model_is_the_recorded_one(golden):
    from core.atomic import sha256_file
    from edge.manifest import find_manifest

    assert sha256_file(G.SHIPPED) == golden["sha256"]
    m = find_manifest(G.SHIPPED)
    art = m.artifact_for(G.SHIPPED)
    assert art is not None and art.sha256 == golden["sha256"]
    assert m.labels == ("benign", "malignant") and "not a medical device" in m.disclaimer
    assert m.for_artifact(G.SHIPPED).threshold == golden["threshold"]  # what the runner applies
    assert m.for_artifact(G.SHIPPED).modality_thresholds == golden.get("modality_thresholds", {})


def _same(got: dict, want: dict, key: str) -> None:
    for k in ("raw_probability", "guard_score"):
        if want.get(k) is None:
            assert got[k] is None, key
        else:
            assert got[k] == pytest.approx(want[k], abs=1e-6), (key, k)
    assert (got["status"], got["label"]) == (want["status"], want["label"]), key
    assert got["modality"] == want.get("modality", ""), key


def test_synthetic_predictions_match(golden):
    got = G.predictions(G.SHIPPED, None)
    for key, want in golden["predictions"].items():
        if key.startswith("synthetic/"):
            _same(got[key], want, key)


def test_real_test_images_match(golden, real_data_dir):
    got = G.predictions(G.SHIPPED, real_data_dir)
    real = {k: v for k, v in golden["predictions"].items() if not k.startswith("synthetic/")}
    assert len(real) == 2 * G.N_REAL_PER_CLASS
    for key, want in real.items():
        _same(got[key], want, key)
    assert all(w["status"] == "ok" for w in real.values())  # real lesions pass gate and guard


def test_classify_cli_uses_shipped_model_by_default(real_data_dir, capsys):
    from edge import classify

    img = real_data_dir / "test" / "benign" / G.real_inputs(real_data_dir)[0].name
    assert classify.main([str(img)]) == 0
    out = capsys.readouterr().out
    assert img.name in out and "not a medical device" in out.lower()
