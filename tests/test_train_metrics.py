"""Metrics against hand-computed values."""
import math

import numpy as np
import pytest

from core import metrics as M

Y = np.array([0, 0, 0, 0, 1, 1, 1])
P = np.array([0.1, 0.4, 0.35, 0.8, 0.7, 0.9, 0.3])


def test_point_metrics_by_hand():
    m = M.binary_metrics(Y, P, 0.5)
    # predictions >= 0.5: [0,0,0,1,1,1,0] -> TP 2 (0.7, 0.9), FP 1 (0.8), TN 3, FN 1 (0.3)
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (2, 1, 3, 1)
    assert m["accuracy"] == pytest.approx(5 / 7)
    assert m["sensitivity"] == pytest.approx(2 / 3) and m["recall"] == m["sensitivity"]
    assert m["specificity"] == pytest.approx(3 / 4)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 3 / 4) / 2)


def test_roc_auc_by_hand_and_ties():
    # pairs (pos, neg): 3 x 4 = 12; pos 0.7 beats 0.1,0.4,0.35 (3); 0.9 beats 4; 0.3 beats 0.1 (1)
    assert M.roc_auc(Y, P) == pytest.approx(8 / 12)
    assert M.roc_auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)  # a tie counts one half
    assert math.isnan(M.roc_auc([1, 1], [0.2, 0.3]))


def test_average_precision_by_hand():
    # ranked: 0.9(+) 0.8(-) 0.7(+) 0.4(-) 0.35(-) 0.3(+) 0.1(-)
    # AP = 1/3*(1/1) + 1/3*(2/3) + 1/3*(3/6)
    assert M.average_precision(Y, P) == pytest.approx((1 + 2 / 3 + 0.5) / 3)


def test_threshold_for_sensitivity_is_highest_meeting_target():
    t = M.threshold_for_sensitivity(Y, P, 0.6)  # need 2 of 3 positives -> 0.7
    assert t == pytest.approx(0.7)
    assert M.binary_metrics(Y, P, t)["sensitivity"] >= 0.6
    t95 = M.threshold_for_sensitivity(Y, P, 0.95)  # all 3 -> lowest positive 0.3
    assert t95 == pytest.approx(0.3)
    assert M.binary_metrics(Y, P, t95)["sensitivity"] == 1.0


def test_ece_by_hand():
    y = np.array([1, 0, 1, 1])
    p = np.array([0.95, 0.95, 0.15, 0.15])
    # bin 9: conf .95, acc .5 -> .45 * 2/4; bin 1: conf .15, acc 1 -> .85 * 2/4
    assert M.expected_calibration_error(y, p) == pytest.approx(0.45 / 2 + 0.85 / 2)


def test_temperature_recovers_overconfidence():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, 4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-z))).astype(int)
    p_over = 1 / (1 + np.exp(-3 * z))  # logits 3x too large
    t = M.fit_temperature(y, p_over)
    assert t == pytest.approx(3.0, rel=0.1)
    assert M.expected_calibration_error(y, M.apply_temperature(p_over, t)) < \
        M.expected_calibration_error(y, p_over)


def test_temperature_matches_manifest_formula():
    from edge.manifest import Manifest

    m = Manifest(temperature=1.7)
    for p in (0.01, 0.3, 0.5, 0.93):
        assert m.calibrate(p) == pytest.approx(float(M.apply_temperature(np.array([p]), 1.7)[0]))


def test_bootstrap_ci_contains_point_estimate():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    p = np.clip(y * 0.4 + rng.random(300) * 0.6, 0, 1)
    ci = M.bootstrap_ci(y, p, 0.5, n_boot=200)
    m = M.binary_metrics(y, p, 0.5)
    for k in ("accuracy", "roc_auc", "sensitivity"):
        lo, hi = ci[k]
        assert lo <= m[k] <= hi and hi - lo < 0.25


def test_wilson_lower_bound_known_values():
    # k == n: the bound is n / (n + z^2), z = 1.6449 for one-sided 95%
    assert M.wilson_lower_bound(100, 100, 0.95) == pytest.approx(100 / (100 + 1.6449 ** 2), abs=1e-4)
    assert M.wilson_lower_bound(50, 100, 0.95) < 0.5 < 50 / 100 + 1e-9
    assert M.wilson_lower_bound(0, 0) == 0.0


def test_threshold_with_confidence_keeps_a_margin():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(200), np.zeros(200)]
    p = np.r_[rng.uniform(0.2, 1, 200), rng.uniform(0, 0.8, 200)]
    point = M.threshold_for_sensitivity(y, p, 0.95)
    safe = M.threshold_for_sensitivity(y, p, 0.95, confidence=0.95)
    assert safe < point
    k = int((p[y == 1] >= safe).sum())
    assert M.wilson_lower_bound(k, 200) >= 0.95 > M.wilson_lower_bound(k - 1, 200)
