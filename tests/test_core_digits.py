"""Printed scores are cut, never rounded up: ``core.digits`` and the reports that use it."""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from core.digits import down, pct
from export.formats import INT8
from export.parity import ParityResult, _failures
from export.report import REPORT_JSON, REPORT_MD, report_markdown
from export.convert import main as convert_main
from research.shifts import ShiftRow, table

MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.mark.parametrize("digits", [2, 3, 4])
def test_down_is_never_above_and_within_one_unit(digits):
    rng = random.Random(digits)
    unit = 10.0 ** -digits
    for _ in range(20000):
        v = rng.random() * rng.choice([1, 10, 1000])
        printed = float(down(v, digits))
        assert printed <= v + 1e-12 and v < printed + unit * (1 + 1e-9), (v, printed)
        assert len(down(v, digits).split(".")[1]) == digits


def test_values_that_print_exactly_stay_as_they_are():
    # 0.29 is 0.28999999999999998 in binary: a float floor would print 0.28.
    assert [down(0.29, 2), pct(0.29), down(0.1, 1), pct(0.07, 0)] == ["0.29", "29.00%", "0.1", "7%"]
    assert pct(0.9) == "90.00%" and pct(0.1682) == "16.82%"
    # float noise is no reason to drop a digit: 37/40 - 38/40 = -0.024999999999999911
    assert down(37 / 40 - 38 / 40) == "-0.0250" and down(0.95 - 0.925, sign=True) == "+0.0250"


def test_parity_message_does_not_round_a_failure_up_to_the_tolerance():
    r = ParityResult("int8", 1000, "x", 0.5, 1.0, 0.90, 0.95, 0.9, 0.9, 0.90,
                     agreement=0.98996, max_abs_diff=0.1, mean_abs_diff=0.01)
    msg = _failures(r, INT8)
    assert msg == ["label agreement 98.99% < 99% at the Keras threshold (10 of 1000 images differ)"]


def test_shift_table_cuts_values_and_changes():
    rows = [ShiftRow("none", "skin", 100, 0.96785, 0.87875, 0.5),
            ShiftRow("ring", "skin", 100, 0.90009, 0.8, 0.5)]
    text = table(rows)
    assert "| none | skin | 100 | 0.9678 | 0.8787 | 0.5000 |" in text
    assert "0.9000 (-0.0677)" in text  # 0.90009 - 0.96785 = -0.06776


def test_shipped_export_report_is_the_view_of_its_json():
    d = json.loads((MODELS / REPORT_JSON).read_text())
    assert report_markdown(d) == (MODELS / REPORT_MD).read_text()


def test_rerender_writes_the_markdown_and_names_a_missing_json(tmp_path, capsys):
    shutil.copy(MODELS / REPORT_JSON, tmp_path / REPORT_JSON)
    assert convert_main(["--report-only", str(tmp_path)]) == 0
    assert (tmp_path / REPORT_MD).read_text() == (MODELS / REPORT_MD).read_text()
    assert convert_main(["--report-only", str(tmp_path / "none")]) == 2
    assert f"{tmp_path / 'none' / REPORT_JSON}" in capsys.readouterr().err
