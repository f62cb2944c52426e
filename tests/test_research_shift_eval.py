"""research/shift_eval.py (research/shifts.py): an exported file under simulated dermoscope shifts,
with the edge runner."""
import json

import numpy as np
import pytest

from edge.preprocess import fill_dark_border
from research import shift_eval as S
from research.shifts import SHIFTS
from tests.fixtures_common import synth_lesion


def test_each_shift_changes_an_image_and_keeps_its_shape():
    img = synth_lesion(np.random.default_rng(3), True, 64)
    for name, f in SHIFTS.items():
        out = f(img)
        assert out.shape == img.shape and out.dtype == np.uint8, name
        assert (name == "none") == np.array_equal(out, img), name


def test_unshifted_rows_are_the_source_report(tiny_export, synthetic_dataset, tmp_path, capsys):
    """The "none" rows equal export/source_metrics' validation numbers for the same file."""
    from research.source_metrics import source_report

    model = tiny_export / "model_int8.tflite"
    out = tmp_path / "shift.json"
    assert S.main(["--model", str(model), "--data", str(synthetic_dataset), "--shifts",
                   "darker,blur", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| darker | skin-lesions |" in text and "not a medical device" in text
    assert "\nTrained on: " in text
    rows = json.loads(out.read_text())
    assert [r["shift"] for r in rows] == ["none", "darker", "blur"]  # "none" always first
    want = source_report(model, [str(synthetic_dataset)], splits=("val",))["val"]["per_source"]
    got = rows[0]
    assert got["n"] == want["skin-lesions"]["n"] > 0
    for k in ("roc_auc", "sensitivity", "specificity"):
        assert got[k] == pytest.approx(want["skin-lesions"][k]), k


def test_bad_shift_or_model_is_one_line(tiny_export, synthetic_dataset, tmp_path, capsys):
    for args, word in ((["--shifts", "sepia"], "sepia"),
                       (["--model", str(tmp_path / "none.tflite")], "none.tflite")):
        argv = ["--model", str(tiny_export / "model_int8.tflite"), "--data",
                str(synthetic_dataset), *args]
        assert S.main(argv) == 2
        err = capsys.readouterr().err
        assert word in err and len(err.strip().splitlines()) == 1, err


def test_fill_dark_border_undoes_a_ring_and_leaves_plain_images():
    img = synth_lesion(np.random.default_rng(5), False, 96)
    ringed = SHIFTS["ring"](img)
    filled = fill_dark_border(ringed)
    corner = (slice(0, 8), slice(0, 8))
    assert ringed[corner].max() < 40 and filled[corner].min() >= 40  # the dark corner is filled
    centre = (slice(40, 56), slice(40, 56))
    assert np.array_equal(filled[centre], img[centre])  # the lesion is untouched
    assert fill_dark_border(img) is img  # no dark border: unchanged


def test_cli_applies_the_candidate_fix(tiny_export, synthetic_dataset, tmp_path, capsys):
    out = tmp_path / "fix.json"
    assert S.main(["--model", str(tiny_export / "model_int8.tflite"), "--data",
                   str(synthetic_dataset), "--shifts", "ring", "--fill-dark-border",
                   "--json", str(out)]) == 0
    assert "then fill_dark_border" in capsys.readouterr().out
    assert [r["shift"] for r in json.loads(out.read_text())] == ["none", "ring"]


def test_source_report_cli_says_what_it_was_trained_on(tiny_export, synthetic_dataset, tmp_path,
                                                      capsys):
    """research/evaluate_sources.py: per-source tables, then the manifest's trained-on line and
    disclaimer, on the console and in the JSON."""
    from edge.manifest import find_manifest
    from research import evaluate_sources

    model = tiny_export / "model_int8.tflite"
    out = tmp_path / "sources.json"
    assert evaluate_sources.main(["--model", str(model), "--data", str(synthetic_dataset),
                                  "--json", str(out)]) == 0
    text = capsys.readouterr().out
    man = find_manifest(model)
    assert f"Trained on: {man.trained_on}." in text and text.rstrip().endswith(man.disclaimer)
    rep = json.loads(out.read_text())
    assert rep["trained_on"] == man.trained_on and "not a medical device" in rep["disclaimer"]
    assert rep["val"]["per_source"]["skin-lesions"]["n"] > 0
