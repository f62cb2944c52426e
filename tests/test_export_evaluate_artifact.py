"""export/evaluate_artifact.py: metrics of an exported artifact, computed with the edge runner."""
import json

import numpy as np
import pytest

from edge.classifier import Classifier
from export import evaluate_artifact as EA
from core import metrics as M
from train.data import list_samples


def test_metrics_match_per_image_predictions(tiny_export, synthetic_dataset, tmp_path, capsys):
    model = tiny_export / "model_int8.tflite"
    out = tmp_path / "m.json"
    assert EA.main(["--model", str(model), "--data", str(synthetic_dataset),
                    "--bootstrap", "20", "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    clf = Classifier(model)
    samples = list_samples(synthetic_dataset, "test")
    preds = [clf.predict_file(s.path) for s in samples]
    y = np.array([s.label for s in samples])
    want = M.binary_metrics(y, np.array([p.probability for p in preds]), clf.manifest.threshold)
    assert got["n"] == len(samples) == 16
    for k in ("accuracy", "sensitivity", "specificity", "roc_auc"):
        assert got[k] == pytest.approx(want[k])
    text = capsys.readouterr().out
    assert "not a medical device" in text and f"Trained on: {clf.manifest.trained_on}." in text
    assert got["trained_on"] == clf.manifest.trained_on


def test_missing_model_is_one_line(tmp_path, synthetic_dataset, capsys):
    assert EA.main(["--model", str(tmp_path / "none.tflite"), "--data", str(synthetic_dataset)]) == 2
    err = capsys.readouterr().err.strip()
    assert "none.tflite" in err and len(err.splitlines()) == 1
