"""The model card from the run's own description (``train/description.py``, ``export/card.py``).

A run says what it is in ``description.json``; the card renders it with the export folder's
manifest and reports and every section in ``RUN/card/*.json``, knowing no run type.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from core import DISCLAIMER
from export import card
from train.description import (DescriptionError, RunDescription, Section, Table,
                               read_sections)
from train.run import RunDir


def _description(**kw) -> RunDescription:
    return RunDescription(**{"title": "cats vs. dogs classifier", "model": "`seed_cnn` at 64x64",
                             "data": ["pets: 2 classes"], "limits": ["only cats and dogs"],
                             "reproduce": ["python train/train.py --data pets"], **kw})


def test_description_round_trips_and_refuses_what_it_does_not_know(tmp_path):
    run = RunDir(tmp_path / "run")
    d = _description(sections=[Section("Notes", ["A paragraph.", "- a", "- b"],
                                       Table(["x", "y"], [["1", "2"]]))])
    assert d.write(run) == run.description_json
    assert RunDescription.read(run) == d
    Section("Extra", ["Measured."]).write(run.card_dir / "10-extra.json")
    assert [s.title for s in read_sections(run)] == ["Extra"]
    assert "- a\n- b\n" in d.sections[0].markdown()  # bullets stay one list

    doc = json.loads(run.description_json.read_text())
    run.description_json.write_text(json.dumps({**doc, "colour": "red"}))
    with pytest.raises(DescriptionError, match=r"description\.json: unknown field\(s\) colour"):
        RunDescription.read(run)
    run.description_json.write_text(json.dumps({**doc, "schema": 99}))
    with pytest.raises(DescriptionError, match=r"description\.json: schema 99 is not one"):
        RunDescription.read(run)
    (run.card_dir / "20-bad.json").write_text(json.dumps({"title": "t", "tabel": {}}))
    with pytest.raises(DescriptionError, match=r"20-bad\.json: unknown field\(s\) tabel"):
        read_sections(run)


@pytest.mark.slow
def test_card_of_a_generic_run_says_what_the_run_says(synthetic_dataset, tmp_path, capsys):
    """train/train.py -> evaluate -> convert -> card: the disclaimer, the classes, the
    description's text, the int8 table and a hand-written RUN/card section."""
    from export import convert
    from train import evaluate, train

    out = tmp_path / "runs" / "seed64"
    assert train.main(["--data", str(synthetic_dataset), "--model", "seed_cnn", "--image-size",
                       "64", "--epochs", "2", "--batch-size", "16", "--out", str(out), "-q"]) == 0
    run = RunDir(out)
    d = RunDescription.read(run)
    assert d.reproduce[0].startswith(f"python train/train.py --data {synthetic_dataset}")
    assert "`benign`, `malignant`" in d.data[1] and "malignant" in d.threshold
    assert evaluate.main(["--run", str(out), "--bootstrap", "50", "--gradcam", "0"]) == 0
    assert convert.main(["--run", str(out), "--formats", "tflite_int8", "--calibration-count",
                         "32", "--min-calibration", "0", "--no-guard",
                         "--tolerance", "all.min_agreement=0", "--tolerance",
                         "all.max_accuracy_drop=1"]) == 0
    Section("Hand-written check", ["Measured elsewhere."],
            Table(["what", "value"], [["answer", "42"]])).write(run.card_dir / "x.json")
    md = tmp_path / "MODEL_CARD.md"
    capsys.readouterr()
    assert card.main(["--run", str(out), "--models", str(run.export_dir), "--out", str(md)]) == 0
    assert f"wrote {md}" in capsys.readouterr().out
    text = md.read_text()
    assert DISCLAIMER in text and "# Model card: benign vs. malignant classifier" in text
    assert "Classes, in output order: `benign`, `malignant`" in text
    assert "output 0 = P(malignant)" in text and "| Sensitivity |" in text
    assert "Float Keras model (the run's metrics.json)" in text
    assert "## Hand-written check\n\nMeasured elsewhere.\n\n| what | value |" in text
    assert "| answer | 42 |" in text
    assert text.index("## Quantization") < text.index("## Hand-written") < text.index("## Reproduce")
    assert d.reproduce[0] in text and "python export/convert.py --run" in text


def test_softmax_without_positive_class_points_to_metrics_json(tmp_path, capsys):
    """No binary table for a softmax without a positive class: the card says where the
    per-class metrics are instead of failing."""
    from edge.manifest import Manifest

    run = RunDir(tmp_path / "run")
    _description(title="3-class image classifier (a, b, c)").write(run)
    models = tmp_path / "export"
    models.mkdir()
    Manifest(output="softmax", labels=("a", "b", "c"), positive_index=-1,
             input_height=64, input_width=64).save(models / "manifest.json")
    (models / "export_report.json").write_text(json.dumps(
        {"n_test": 9, "rows": [], "keras_accuracy": 0.5, "command": "python export/convert.py"}))
    md = tmp_path / "card.md"
    assert card.main(["--run", str(run.path), "--models", str(models), "--out", str(md)]) == 0
    text = md.read_text()
    assert "outputs 0-2: P(class) for a, b, c" in text and "No threshold" in text
    assert f"per-class test metrics are in the run's metrics.json (`{run.metrics_json}`" in text
    assert "| Accuracy |" not in text


def test_run_without_description_is_one_line_naming_the_file(tmp_path, capsys):
    run = tmp_path / "old-run"
    run.mkdir()
    models = tmp_path / "export"
    models.mkdir()
    (models / "manifest.json").write_text("{}")
    (models / "export_report.json").write_text("{}")
    assert card.main(["--run", str(run), "--models", str(models)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {run / 'description.json'} not found")
    assert "train/train.py" in err[0] and "research/describe.py" in err[0]
