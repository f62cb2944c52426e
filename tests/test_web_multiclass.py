"""Schema 6 in the web app: softmax models (any image classifier), the input range and colour
order, and manifests the app does not understand.

web/src/classifier.js and preprocess.js run in Node against edge/manifest.py (``Manifest.read``
on random output vectors, ``validate``'s refusals) and edge/preprocess.py (``to_model_input``);
the page runs a small float ONNX model written here (a softmax over 3 labels fed BGR pixels
in [-1, 1]) on real photos, against the Python runner on the same files.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.digits import down
from edge.classifier import Classifier
from edge.images import load_rgb
from edge.manifest import ArtifactInfo, Guard, Manifest, ManifestError
from edge.preprocess import fit_to_input, to_model_input
from export.web import build_webapp
from tests.test_web import browser, open_page, pick_files, serve, web_app, y4m  # noqa: F401
from tests.test_web_manifest import CLASSES, MODALITIES, run_classifier_js
from tests.test_web_preprocess import run_js

pytestmark = pytest.mark.web
ANIMALS = ("cat", "dog", "fox")
HAM = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")


# ----------------------------------------------------------------- the reader (Node)
def reader_cases() -> list[tuple[Manifest, str]]:
    """(manifest, model file): softmax over 3 and 7 labels, with and without a positive class,
    at temperature 1 and 1.7; one artifact with its own threshold; two sigmoid manifests."""
    cases = [(Manifest(output="softmax", labels=labels, positive_index=pos, temperature=t,
                       threshold=0.25), "m.onnx")
             for labels, pos, t in itertools.product((ANIMALS, HAM), (-1, 1), (1.0, 1.7))]
    art = ArtifactInfo("onnx_int8", "model_int8.onnx", threshold=0.3)
    cases.append((Manifest(output="softmax", labels=HAM, positive_index=4, threshold=0.2,
                           guard=Guard(method="test", index=7), artifacts={"onnx_int8": art}),
                  "web/model_int8.onnx"))
    cases.append((Manifest(threshold=0.4, temperature=1.3), "m.onnx"))
    cases.append((Manifest(labels=("malignant", "benign"), positive_index=0, classes=CLASSES,
                           modalities=MODALITIES, modality_index=4, temperature=0.8,
                           modality_thresholds={"dermoscopic": 0.3, "phone": 0.6}), "m.onnx"))
    return cases


def vectors(m: Manifest, rng: np.random.Generator, n: int = 300) -> list[list[float]]:
    """Random output vectors for ``m``, with ties, negatives and P(positive) on the threshold."""
    vecs = rng.random((n, m.output_size))
    if m.output == "softmax":
        k = len(m.labels)
        vecs[:, :k] = rng.dirichlet(np.full(k, 0.6), n)
        vecs[0, :k], vecs[1, :k] = 1 / k, 0  # all tied
        vecs[1, :2] = 0.5
        vecs[2, 0] = -0.1  # clipped at 0
        if m.positive_index >= 0:
            vecs[3:20, m.positive_index] = m.threshold  # on the threshold (exact at T 1)
    else:
        vecs[0, 0] = 0.5  # a tie in the top list
    return vecs.tolist()


def test_read_matches_python_on_random_vectors(tmp_path):
    rng, cases = np.random.default_rng(6), reader_cases()
    jobs = [{"op": "read", "manifest": m.to_dict(), "model": f, "vectors": vectors(m, rng)}
            for m, f in cases]
    got = run_classifier_js(tmp_path, jobs)
    kinds = set()
    for (m, f), job, results in zip(cases, jobs, got):
        used = Manifest.from_dict(m.to_dict()).for_artifact(f)
        for k, (vec, g) in enumerate(zip(job["vectors"], results)):
            want, where = used.read(vec), f"{m.output} {m.labels} on {f}, vector {k}"
            assert g["probability"] == pytest.approx(want.probability, abs=1e-9), where
            assert g["rawProbability"] == want.raw_probability, where
            assert (g["threshold"], g["modality"]) == (want.threshold, want.modality), where
            assert [t[0] for t in g["top"]] == [t[0] for t in want.top], where
            np.testing.assert_allclose([t[1] for t in g["top"]], [t[1] for t in want.top],
                                       rtol=0, atol=1e-9, err_msg=where)
            if want.threshold is None or abs(want.probability - want.threshold) > 1e-9:
                assert g["label"] == want.label, where
            kinds.add((m.output, want.threshold is None, want.label == want.top[0][0]))
    assert {g["threshold"] for g in got[8]} == {0.3}  # the artifact's own threshold
    # with a positive class, the threshold (not the top class) decided some labels
    assert {("softmax", False, False), ("softmax", False, True), ("softmax", True, True),
            ("sigmoid", False, False)} <= kinds, kinds


def test_read_threshold_rule_on_known_vectors(tmp_path):
    m = Manifest(output="softmax", labels=ANIMALS, positive_index=0, threshold=0.2)
    vecs = [[0.2, 0.5, 0.3], [0.19, 0.31, 0.5], [0.6, 0.1, 0.3], [0.3, 0.3, 0.4]]
    got = run_classifier_js(tmp_path, [{"op": "read", "manifest": m.to_dict(),
                                        "model": "m.onnx", "vectors": vecs}])[0]
    assert [g["label"] for g in got] == ["cat", "fox", "cat", "cat"] == \
        [m.read(v).label for v in vecs]
    assert [g["probability"] for g in got] == [0.2, 0.19, 0.6, 0.3]
    assert got[3]["top"] == [["fox", 0.4], ["cat", 0.3], ["dog", 0.3]]  # tie: lower index first


# ----------------------------------------------------------------- refusals (Node)
def softmax_dict() -> dict:
    return Manifest(output="softmax", labels=ANIMALS, positive_index=-1).to_dict()


REFUSED = [  # (manifest fields changed, the field the message must name)
    ({"colour_order": "BGR"}, "'colour_order'"),
    ({"output": "multilabel"}, "output='multilabel'"),
    ({"color_order": "RGBA"}, "color_order='RGBA'"),
    ({"resize": "stretch"}, "resize='stretch'"),
    ({"border": "crop"}, "border='crop'"),
    ({"pixel_range": [1, -1]}, "pixel_range=[1, -1]"),
    ({"channels": 4}, "channels=4"),
    ({"labels": ["cat", "cat", "fox"]}, "labels=['cat', 'cat', 'fox']"),
    ({"output": "sigmoid"}, "a sigmoid manifest needs 2 labels"),
    ({"positive_index": 3}, "positive_index=3"),
]


def test_load_refuses_a_manifest_it_does_not_understand(tmp_path):
    jobs = [{"op": "load", "manifest": {**softmax_dict(), **change}, "model": "m.onnx",
             "output": [0.2, 0.5, 0.3]} for change, _ in REFUSED]
    jobs.append({"op": "load", "manifest": softmax_dict(), "model": "m.onnx",
                 "output": [0.2, 0.5, 0.3]})
    got = run_classifier_js(tmp_path, jobs)
    for (change, field), job, g in zip(REFUSED, jobs, got):
        assert field in g["error"], (change, g)
        with pytest.raises(ManifestError) as e:
            Manifest.from_dict(job["manifest"])
        # the same words as the Python runner up to the fix (the app is rebuilt, not upgraded)
        py = str(e.value).replace("this runner", "this app")
        assert g["error"].split(";")[0] == py.split(";")[0], (g["error"], py)
    assert got[0]["error"].endswith("export the model again with this version, or rebuild the "
                                    "app with the version that exported it")
    ok = got[-1]["result"]
    assert (ok["status"], ok["label"], ok["probability"], ok["threshold"]) == \
        ("ok", "dog", 0.5, None)


# ----------------------------------------------------------------- input range (Node)
def test_model_input_applies_pixel_range_and_color_order(tmp_path):
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
    img.reshape(-1)[:256] = np.arange(256)  # every level at least once
    cases = [("float32", 0, 0, (-1, 1), "BGR"), ("float32", 0, 0, (0, 1), "RGB"),
             ("float32", 0, 0, (-123.68, 151.061), "BGR"), ("float32", 0, 0, (0, 255), "BGR"),
             ("float32", 0, 0, (0, 255), "RGB"), ("int8", 0.0078125, 0, (-1, 1), "BGR"),
             ("int8", 2 / 255, -1, (-1, 1), "RGB"), ("uint8", 1 / 255, 0, (0, 1), "BGR"),
             ("int8", 1.0, -128, (0, 255), "RGB")]
    got = run_js(tmp_path, [(img, "quant", [d, s, z, list(r), o]) for d, s, z, r, o in cases])
    for (d, s, z, r, o), g in zip(cases, got):
        want = to_model_input(img, d, s, z, r, o)
        assert g.tobytes() == want.tobytes(), (d, s, z, r, o)


# ----------------------------------------------------------------- the page
LABELS = ("red", "green", "blue")
# the model sees B, G, R in [-1, 1]: row k of W is input channel k, column j label j
W = np.array([[0, 0, 5], [0, 5, 0], [5, 0, 0]], np.float32)
B = np.array([0, 0.5, 0], np.float32)
PHOTOS = ("chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg", "motorcycle_left.png")


def write_softmax_model(path: Path) -> None:
    """image (1,224,224,3) float -> softmax(mean over H, W @ W + B): 3 probabilities."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("ReduceMean", ["image"], ["m"], axes=[1, 2], keepdims=0),
             helper.make_node("MatMul", ["m", "W"], ["z0"]),
             helper.make_node("Add", ["z0", "B"], ["z"]),
             helper.make_node("Softmax", ["z"], ["scores"], axis=-1)]
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "B")]
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 224, 224, 3])
    scores = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 3])
    graph = helper.make_graph(nodes, "softmax3", [image], [scores], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, path)


@pytest.fixture(scope="module")
def softmax_app(tmp_path_factory, web_app):  # noqa: F811 (web_app: prerequisites check)
    import skimage

    d = tmp_path_factory.mktemp("softmax")
    write_softmax_model(d / "model_fp32.onnx")
    Manifest(output="softmax", labels=LABELS, positive_index=-1, pixel_range=(-1.0, 1.0),
             color_order="BGR", temperature=1.3, model_name="colours",
             trained_on="nothing: three colour scores (a test model)").save(d / "manifest.json")
    files = [Path(skimage.__file__).parent / "data" / n for n in PHOTOS]
    green = np.clip(np.asarray((90, 170, 80)) + np.random.default_rng(1).integers(
        -30, 31, (240, 320, 3)), 0, 255).astype(np.uint8)
    cv2.imwrite(str(d / "green.png"), green[..., ::-1])
    files.append(d / "green.png")
    server, url = serve(build_webapp(d / "model_fp32.onnx", d / "app").out)
    yield url, Classifier(d / "model_fp32.onnx"), files
    server.shutdown()


def differs(clf: Classifier, f: Path, want, pixel_range, color_order: str) -> bool:
    """Whether the model fed another input range or colour order reads otherwise than ``want``."""
    m = clf.manifest
    x = to_model_input(fit_to_input(load_rgb(f), m.input_height, m.input_width), "float32",
                       pixel_range=pixel_range, color_order=color_order)
    r = m.read(clf.raw_outputs(x))
    return r.label != want.label or abs(r.probability - want.probability) > 1e-3


def test_softmax_page_matches_python_runner(browser, softmax_app):  # noqa: F811
    url, clf, files = softmax_app
    page = open_page(browser, url)
    got = pick_files(page, files)
    want = [clf.predict_file(f) for f in files]
    for f, g, w in zip(files, got, want):
        assert (g["status"], g["label"], g["threshold"]) == (w.status, w.label, None), f.name
        assert g["probability"] == pytest.approx(w.probability, abs=1e-5), f.name
        assert [t[0] for t in g["top"]] == [t[0] for t in w.top], f.name
        np.testing.assert_allclose([t[1] for t in g["top"]], [t[1] for t in w.top], atol=1e-5)
    assert {w.label for w in want} == set(LABELS)
    # a page that ignored the colour order or the input range would disagree
    for rng, order in (((-1, 1), "RGB"), ((0, 255), "BGR")):
        assert any(differs(clf, f, w, rng, order) for f, w in zip(files, want)), (rng, order)
    last = got[-1]
    assert page.text_content("#label") == last["label"]
    assert page.text_content("#prob") == f"p({last['label']}) = {down(last['probability'], 3)}"
    assert page.locator("#top li").all_text_contents() == \
        [f"{k} {down(p, 3)}" for k, p in last["top"][:3]]
    assert page.locator("#list li").all_text_contents() == \
        [f"{f.name}: {g['label']} ({down(g['probability'], 3)})" for f, g in zip(files, got)]
    status = page.text_content("#status")
    assert "threshold" not in status and " · T 1.300" in status, status
    assert "not a medical device" in page.text_content("#disclaimer")
    assert page.text_content("#trained") == "Trained on: nothing: three colour scores (a test model)"
    assert not page.errors
    page.close()
