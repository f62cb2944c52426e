"""Multiclass metrics (core.metrics) against scikit-learn and hand-computed values, and the
multiclass confusion-matrix figure (train.plots)."""
import json
import math
import warnings

import numpy as np
import pytest

from core import metrics as M


def _random_case(n_classes: int, n: int = 400, seed: int = 0, never: int | None = None):
    """Labels, probabilities (rows sum to 1) with some signal; class ``never`` is never argmax."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    logits = rng.normal(size=(n, n_classes)) + 1.5 * np.eye(n_classes)[y]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    if never is not None:
        probs[:, never] *= 0.01
        probs /= probs.sum(axis=1, keepdims=True)
    return y, probs


def _labels(n_classes: int) -> list[str]:
    return [f"class{c}" for c in range(n_classes)]


@pytest.mark.parametrize("n_classes", [3, 7])
def test_matches_sklearn_with_a_class_never_predicted(n_classes):
    sk = pytest.importorskip("sklearn.metrics")
    y, probs = _random_case(n_classes, seed=n_classes, never=1)
    pred = probs.argmax(axis=1)
    assert not np.any(pred == 1) and np.any(y == 1)
    m = M.multiclass_metrics(y, probs, _labels(n_classes))
    ks = list(range(n_classes))
    assert m["n"] == len(y)
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(y, pred))
    assert m["macro_roc_auc"] == pytest.approx(
        sk.roc_auc_score(y, probs, multi_class="ovr", average="macro", labels=ks))
    assert m["confusion"]["labels"] == _labels(n_classes)
    assert m["confusion"]["matrix"] == sk.confusion_matrix(y, pred, labels=ks).tolist()
    prec, rec, f1, support = sk.precision_recall_fscore_support(
        y, pred, labels=ks, zero_division=np.nan)
    per = [m["per_class"][label] for label in _labels(n_classes)]
    np.testing.assert_allclose([p["precision"] for p in per], prec)  # NaN == NaN here
    np.testing.assert_allclose([p["recall"] for p in per], rec)
    np.testing.assert_allclose([p["f1"] for p in per], f1)
    assert [p["n"] for p in per] == support.tolist()
    assert math.isnan(m["per_class"]["class1"]["precision"])  # never predicted
    assert m["per_class"]["class1"]["f1"] == 0.0  # present, never found: F1 is 0, not undefined
    np.testing.assert_allclose([p["roc_auc"] for p in per],
                               [sk.roc_auc_score(y == c, probs[:, c]) for c in ks])


def test_matches_sklearn_with_a_class_absent_and_own_predictions():
    sk = pytest.importorskip("sklearn.metrics")
    y, probs = _random_case(5, seed=11)
    keep = y != 3  # class 3 absent from y, but predicted sometimes
    y, probs = y[keep], probs[keep]
    pred = np.where(probs[:, 0] >= 0.3, 0, probs.argmax(axis=1))  # a caller's own rule
    assert np.any(pred == 3) and np.any(pred != probs.argmax(axis=1))
    m = M.multiclass_metrics(y, probs, list("abcde"), pred=pred)
    with warnings.catch_warnings():  # sklearn may warn about the predicted-only class
        warnings.simplefilter("ignore")
        assert m["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(y, pred))
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(y, pred))
    present = [c for c in range(5) if c != 3]
    assert m["macro_roc_auc"] == pytest.approx(
        np.mean([sk.roc_auc_score(y == c, probs[:, c]) for c in present]))
    d = m["per_class"]["d"]
    assert d["n"] == 0 and d["precision"] == 0.0
    assert math.isnan(d["recall"]) and math.isnan(d["roc_auc"])
    assert m["confusion"]["matrix"] == sk.confusion_matrix(y, pred, labels=range(5)).tolist()


def test_hand_computed_values():
    # true: a a b b c c ; pred (argmax): a b b b a c
    y = np.array([0, 0, 1, 1, 2, 2])
    probs = np.array([[.7, .2, .1], [.3, .6, .1], [.1, .8, .1],
                      [.2, .5, .3], [.5, .1, .4], [.1, .2, .7]])
    m = M.multiclass_metrics(y, probs, ["a", "b", "c"])
    assert m["confusion"]["matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["balanced_accuracy"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    a, b, c = (m["per_class"][k] for k in "abc")
    assert (a["precision"], a["recall"]) == (pytest.approx(1 / 2), pytest.approx(1 / 2))
    assert (b["precision"], b["recall"]) == (pytest.approx(2 / 3), 1.0)
    assert (c["precision"], c["recall"], c["f1"]) == (1.0, 0.5, pytest.approx(2 / 3))
    # class a: positives .7 .3 vs negatives .1 .2 .5 .1 -> .7 beats 4, .3 beats 3 -> 7/8
    assert a["roc_auc"] == pytest.approx(7 / 8)
    # class b: positives .8 .5 vs negatives .2 .6 .1 .2 -> .8 beats 4, .5 beats 3 -> 7/8
    assert b["roc_auc"] == pytest.approx(7 / 8)
    # class c: positives .4 .7 vs .1 .1 .1 .3 -> all 8 pairs
    assert c["roc_auc"] == 1.0
    assert m["macro_roc_auc"] == pytest.approx((7 / 8 + 7 / 8 + 1) / 3)
    json.dumps(m)  # plain Python types only (numpy ints would fail here)


def test_undefined_values_are_nan():
    y = np.array([0, 0, 0])
    probs = np.array([[.9, .1], [.6, .4], [.8, .2]])
    m = M.multiclass_metrics(y, probs, ["x", "y"])
    assert math.isnan(m["macro_roc_auc"])  # no class has both positives and negatives
    assert math.isnan(m["per_class"]["y"]["precision"]) and math.isnan(m["per_class"]["y"]["f1"])
    assert math.isnan(m["per_class"]["y"]["recall"]) and m["per_class"]["y"]["n"] == 0
    assert m["balanced_accuracy"] == 1.0 and m["accuracy"] == 1.0  # mean over present classes


def test_two_classes_equal_binary_metrics():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    p = np.round(np.clip(0.35 * y + rng.random(200) * 0.65, 0, 1), 2)  # rounding makes ties
    probs = np.c_[1 - p, p]
    b = M.binary_metrics(y, p, 0.5)
    m = M.multiclass_metrics(y, probs, ["benign", "malignant"], pred=(p >= 0.5).astype(int))
    assert m["per_class"]["malignant"]["roc_auc"] == pytest.approx(M.roc_auc(y, p))
    assert m["per_class"]["benign"]["roc_auc"] == pytest.approx(M.roc_auc(y, p))
    assert m["macro_roc_auc"] == pytest.approx(M.roc_auc(y, p))
    assert m["accuracy"] == pytest.approx(b["accuracy"])
    assert m["balanced_accuracy"] == pytest.approx(b["balanced_accuracy"])
    mal = m["per_class"]["malignant"]
    assert (mal["recall"], mal["precision"], mal["f1"]) == (
        pytest.approx(b["sensitivity"]), pytest.approx(b["precision"]), pytest.approx(b["f1"]))
    assert m["per_class"]["benign"]["recall"] == pytest.approx(b["specificity"])
    assert m["confusion"]["matrix"] == [[b["tn"], b["fp"]], [b["fn"], b["tp"]]]


def test_vectorised_auc_and_headline_match_the_reference():
    y, probs = _random_case(4, n=150, seed=5)
    probs = np.round(probs, 1)  # many ties
    aucs = M._ovr_roc_aucs(y, probs)
    assert aucs.tolist() == [M.roc_auc(y == c, probs[:, c]) for c in range(4)]
    m = M.multiclass_metrics(y, probs, list("abcd"))
    h = M._headline(y, probs, probs.argmax(axis=1))
    assert h == {k: pytest.approx(m[k]) for k in M.MULTICLASS_CI_METRICS}


def test_rejects_bad_inputs():
    y, probs = _random_case(3, n=20)
    with pytest.raises(ValueError):
        M.multiclass_metrics(y, probs, ["a", "b"])  # label count
    with pytest.raises(ValueError):
        M.multiclass_metrics(y, probs, ["a", "a", "b"])  # duplicate labels
    with pytest.raises(ValueError):
        M.multiclass_metrics(np.r_[y[:-1], 3], probs, list("abc"))  # label index out of range
    with pytest.raises(ValueError):
        M.multiclass_metrics(y, probs[:, 0], list("abc"))  # probs not [N, C]
    with pytest.raises(ValueError):
        M.multiclass_metrics(y, probs, list("abc"), pred=np.zeros(5, int))
    with pytest.raises(ValueError):
        M.multiclass_bootstrap_ci(y, probs, n_boot=10, confidence=1.5)


def test_bootstrap_contains_point_estimate_and_is_reproducible():
    y, probs = _random_case(5, n=300, seed=2)
    m = M.multiclass_metrics(y, probs, list("abcde"))
    ci = M.multiclass_bootstrap_ci(y, probs, n_boot=300, seed=7)
    assert set(ci) == {"accuracy", "balanced_accuracy", "macro_roc_auc"}
    for k, (lo, hi) in ci.items():
        assert lo <= m[k] <= hi and 0 < hi - lo < 0.25, k
    assert ci == M.multiclass_bootstrap_ci(y, probs, n_boot=300, seed=7)
    assert ci != M.multiclass_bootstrap_ci(y, probs, n_boot=300, seed=8)
    wide = M.multiclass_bootstrap_ci(y, probs, n_boot=300, seed=7, confidence=0.99)
    for k in ci:
        assert wide[k][0] <= ci[k][0] and ci[k][1] <= wide[k][1]
    json.dumps(ci)


def test_bootstrap_equals_an_independent_percentile_bootstrap():
    y, probs = _random_case(4, n=120, seed=9)
    rng = np.random.default_rng(5)  # the same draws: rng.integers(0, N, N) per resample
    draws = [M.multiclass_metrics(y[i], probs[i], list("abcd"))
             for i in (rng.integers(0, len(y), len(y)) for _ in range(150))]
    ci = M.multiclass_bootstrap_ci(y, probs, n_boot=150, seed=5, confidence=0.9)
    for k in ("accuracy", "balanced_accuracy", "macro_roc_auc"):
        v = [d[k] for d in draws]
        assert ci[k] == pytest.approx([np.quantile(v, 0.05), np.quantile(v, 0.95)]), k


def test_bootstrap_uses_given_predictions_and_skips_nan_resamples():
    y, probs = _random_case(3, n=200, seed=4)
    pred = np.zeros(len(y), int)  # always class 0: accuracy = share of class 0
    ci = M.multiclass_bootstrap_ci(y, probs, n_boot=200, pred=pred)
    assert ci["accuracy"][0] <= np.mean(y == 0) <= ci["accuracy"][1]
    assert ci["balanced_accuracy"][0] == ci["balanced_accuracy"][1] == pytest.approx(1 / 3)
    # a single image: every resample has one class only -> no AUC, accuracy still defined
    one = M.multiclass_bootstrap_ci(y[:1], probs[:1], n_boot=20)
    assert all(math.isnan(v) for v in one["macro_roc_auc"])
    assert not math.isnan(one["accuracy"][0])
    # a class seen in only a few images: resamples without it still give the other AUCs
    y2 = np.r_[np.zeros(30, int), np.ones(30, int), [2]]
    p2 = np.eye(3)[y2] * 0.7 + 0.1
    assert M.multiclass_bootstrap_ci(y2, p2, n_boot=50)["macro_roc_auc"] == [1.0, 1.0]


@pytest.mark.parametrize("n_classes, normalize", [(2, True), (7, True), (20, True), (20, False)])
def test_confusion_png_decodes(tmp_path, n_classes, normalize):
    cv2 = pytest.importorskip("cv2")
    from train.plots import plot_confusion_matrix

    y, probs = _random_case(n_classes, n=50 * n_classes, seed=n_classes, never=0)
    m = M.multiclass_metrics(y, probs, [f"a rather long label {c}" for c in range(n_classes)])
    out = tmp_path / "sub" / "cm.png"
    got = plot_confusion_matrix(m["confusion"]["matrix"], m["confusion"]["labels"], out,
                                normalize=normalize)
    assert got == out
    img = cv2.imread(str(out))
    assert img is not None and img.size > 0 and min(img.shape[:2]) > 100
    assert sorted(p.name for p in out.parent.iterdir()) == ["cm.png"]  # no temporary left


def test_confusion_png_leaves_nothing_on_error(tmp_path, monkeypatch):
    import matplotlib.figure
    import matplotlib.pyplot as plt

    from train.plots import plot_confusion_matrix

    out = tmp_path / "cm.png"
    with pytest.raises(ValueError):
        plot_confusion_matrix([[1, 2], [3, 4]], ["a", "b", "c"], out)
    assert list(tmp_path.iterdir()) == []

    def broken_savefig(self, fname, *args, **kwargs):
        with open(fname, "wb") as f:
            f.write(b"\x89PNG half")  # a partial write, then the failure
        raise OSError("disk full")

    figures = plt.get_fignums()
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", broken_savefig)
    with pytest.raises(OSError):
        plot_confusion_matrix([[5, 1], [2, 7]], ["a", "b"], out)
    assert list(tmp_path.iterdir()) == []  # neither cm.png nor its temporary
    assert plt.get_fignums() == figures  # the figure was closed
