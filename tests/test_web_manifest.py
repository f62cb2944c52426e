"""Schema-3 manifests in the page: lesion types, guard, quality gate, colour constancy,
temperature and the per-artifact threshold, on a small float ONNX model written here whose
output vector is [P(malignant), 3 lesion-type scores, guard score] (edge/manifest.py).

The page's result must equal the contract computed in Python from the same model
(onnxruntime on the Python side, the QualityGate docstring in numpy).
"""
from __future__ import annotations

import base64
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.classifier import Classifier
from edge.images import load_rgb
from edge.manifest import ArtifactInfo, Guard, Manifest, QualityGate
from edge.preprocess import fit_to_input
from export.web import build_webapp
from tests.test_web import browser, open_page, real_test_images, serve, web_app, y4m  # noqa: F401
from tests.test_web_preprocess import reference_quality

pytestmark = pytest.mark.web
CLASSES = ("mel", "nv", "bkl")
W = np.array([[4, -2, 3, 1, 2], [-6, 1, -2, 3, 2], [2, 1, -1, -2, 2]], np.float32)
B = np.array([-0.6, 0, 0, 0, -3], np.float32)


def write_model(path: Path) -> None:
    """image (1,224,224,3) float 0..255 -> sigmoid(mean_rgb/255 @ W + B): 5 values."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Div", ["image", "k255"], ["x"]),
             helper.make_node("ReduceMean", ["x"], ["m"], axes=[1, 2], keepdims=0),
             helper.make_node("MatMul", ["m", "W"], ["z0"]),
             helper.make_node("Add", ["z0", "B"], ["z"]),
             helper.make_node("Sigmoid", ["z"], ["scores"])]
    inits = [numpy_helper.from_array(np.array(255, np.float32), "k255"),
             numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "B")]
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 224, 224, 3])
    scores = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 5])
    graph = helper.make_graph(nodes, "schema3", [image], [scores], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, path)


def expected(clf: Classifier, rgb: np.ndarray, m: Manifest) -> dict:
    """The contract: quality gate, then model, temperature, threshold, guard, lesion type."""
    fitted = fit_to_input(rgb, m.input_height, m.input_width)
    q, g = reference_quality(fitted), m.quality
    reason = ("too_small" if min(rgb.shape[:2]) < g.min_side else
              "too_dark" if q["brightness"] < g.min_brightness else
              "too_bright" if q["brightness"] > g.max_brightness else
              "flat" if np.mean(np.abs(q["luma"] - q["median"]) <= g.flat_tolerance)
              > g.max_flat_fraction else
              "blurred" if q["sharpness"] < g.min_sharpness else "")
    if reason:
        return {"status": "unusable", "label": f"image unusable: {reason}"}
    vec = np.asarray(clf.runtime.run(clf.prepare(rgb))).reshape(-1)
    p = m.calibrate(vec[0])
    types = m.class_probabilities(vec)
    out = {"status": "ok", "label": m.label_for(p), "probability": p, "guardScore": float(vec[4]),
           "lesionType": max(types, key=types.get)}
    if vec[4] < m.guard.threshold:
        out.update(status="not_a_lesion", label="no lesion in view")
    return out


@pytest.fixture(scope="module")
def schema3_app(tmp_path_factory, web_app):  # noqa: F811 (web_app: prerequisites check)
    d = tmp_path_factory.mktemp("schema3")
    write_model(d / "model_fp32.onnx")
    names = {"mel": "melanoma", "nv": "nevus", "bkl": "keratosis"}
    m = Manifest(classes=CLASSES, class_names=names,
                 malignant_classes=("mel",), color_constancy="shades_of_gray", temperature=1.7,
                 threshold=0.3, guard=Guard(method="test", index=4, threshold=0.62),
                 quality=QualityGate(enabled=True, min_sharpness=5.0),
                 artifacts={"onnx_fp32": ArtifactInfo("onnx_fp32", "model_fp32.onnx",
                                                      threshold=0.425)})
    m.save(d / "manifest.json")
    app = build_webapp(d / "model_fp32.onnx", d / "app").out
    server, url = serve(app)
    yield url, Classifier(d / "model_fp32.onnx"), m.for_artifact("model_fp32.onnx")
    server.shutdown()


def rgba_b64(rgb: np.ndarray) -> str:
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    return base64.b64encode(rgba.tobytes()).decode()


CLASSIFY = """async ([b64, w, h]) => {
  const d = Uint8ClampedArray.from(atob(b64), (c) => c.charCodeAt(0));
  return window.skinlesion.classifyImageData(new ImageData(d, w, h), "test");
}"""


def test_schema3_fields_follow_the_contract(browser, schema3_app):  # noqa: F811
    url, clf, m = schema3_app
    assert clf.manifest.threshold == 0.425
    imgs = [load_rgb(f) for f in real_test_images(16)]
    imgs += [cv2.resize(imgs[0], (300, 400)), imgs[1] // 12, np.full((224, 224, 3), 250, np.uint8),
             cv2.GaussianBlur(imgs[2], (0, 0), 8), imgs[3][:20, :30],
             np.full((224, 224, 3), 128, np.uint8)]
    page = open_page(browser, url)
    got = [page.evaluate(CLASSIFY, [rgba_b64(im), im.shape[1], im.shape[0]]) for im in imgs]
    want = [expected(clf, im, m) for im in imgs]
    for g, w in zip(got, want):
        assert g["status"] == w["status"] and g["label"] == w["label"], (g["label"], w)
        if w["status"] != "unusable":
            assert g["probability"] == pytest.approx(w["probability"], abs=1e-5)
            assert g["guardScore"] == pytest.approx(w["guardScore"], abs=1e-5)
            assert g["lesionType"] == w["lesionType"] and g["threshold"] == 0.425
    statuses = {w["status"] for w in want}
    assert statuses == {"ok", "not_a_lesion", "unusable"}, statuses
    assert {w["label"] for w in want} >= {"benign", "malignant", "no lesion in view"}
    k = next(i for i, w in enumerate(want) if w["status"] == "ok")
    page.evaluate(CLASSIFY, [rgba_b64(imgs[k]), imgs[k].shape[1], imgs[k].shape[0]])
    name = m.class_names[want[k]["lesionType"]]
    assert page.text_content("#type").startswith(f"most likely type: {name} (")
    assert not page.errors
    page.close()
