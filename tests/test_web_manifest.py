"""Schema-3 manifests in the page: lesion types, guard, quality gate, colour constancy,
temperature and the per-artifact threshold, on a small float ONNX model written here whose
output vector is [P(malignant), 3 lesion-type scores, guard score] (edge/manifest.py).

The page's result must equal the contract computed in Python from the same model
(onnxruntime on the Python side, the QualityGate docstring in numpy).

Schema 5 (the modality output and one threshold per modality): web/src/classifier.js in Node
against edge/manifest.py (modality_of, threshold_for, for_artifact, output_size) on random
output vectors, an old schema-4 manifest's results unchanged, and the page (a model with a
modality output) against the Python runner, with the modality and its threshold shown.
"""
from __future__ import annotations

import base64
import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.digits import down
from edge.classifier import Classifier
from edge.images import load_rgb
from edge.manifest import ArtifactInfo, Guard, Manifest, QualityGate
from edge.preprocess import fit_to_input
from export.web import build_webapp
from tests.test_web import (browser, open_page, pick_files, real_test_images,  # noqa: F401
                             serve, web_app, y4m)
from tests.test_web_preprocess import reference_quality

pytestmark = pytest.mark.web
CLASSES = ("mel", "nv", "bkl")
W = np.array([[4, -2, 3, 1, 2], [-6, 1, -2, 3, 2], [2, 1, -1, -2, 2]], np.float32)
B = np.array([-0.6, 0, 0, 0, -3], np.float32)


def write_model(path: Path, w: np.ndarray = W, b: np.ndarray = B) -> None:
    """image (1,224,224,3) float 0..255 -> sigmoid(mean_rgb/255 @ w + b): 5 values (W, B)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Div", ["image", "k255"], ["x"]),
             helper.make_node("ReduceMean", ["x"], ["m"], axes=[1, 2], keepdims=0),
             helper.make_node("MatMul", ["m", "W"], ["z0"]),
             helper.make_node("Add", ["z0", "B"], ["z"]),
             helper.make_node("Sigmoid", ["z"], ["scores"])]
    inits = [numpy_helper.from_array(np.array(255, np.float32), "k255"),
             numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")]
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 224, 224, 3])
    scores = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, w.shape[1]])
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


# ----------------------------------------------------------------- schema 5: modality
# classifier.js in Node (the file the page loads; the runtime replaced by a stub, which the
# functions tested here do not use) against edge/manifest.py on the same manifests.
SRC = Path(__file__).resolve().parents[1] / "web" / "src"
ORT_STUB = """
export const env = { wasm: {} };
export class Tensor { constructor(type, data, dims) { Object.assign(this, { type, data, dims }); } }
export const InferenceSession = { create: async () => ({ inputNames: ["image"],
  outputNames: ["scores"], run: async () => ({ scores: { data: globalThis.ortOutput } }) }) };
"""
NODE_SCRIPT = """
import { readFileSync } from "node:fs";
const clf = await import(process.argv[1] + "/classifier.js");
const keep = (r) => ({ status: r.status, label: r.label, probability: r.probability,
                       threshold: r.threshold, modality: r.modality, guardScore: r.guardScore });
const out = [];
for (const j of JSON.parse(readFileSync(0, "utf8"))) {
  const m = clf.forArtifact(j.manifest, j.model);
  if (j.op === "interpret") out.push(j.vectors.map((v) => keep(clf.interpret(m, v))));
  if (j.op === "read") out.push(j.vectors.map((v) => clf.readVector(m, v)));
  if (j.op === "forArtifact") out.push({ threshold: m.threshold, rule: m.threshold_rule,
    modality_thresholds: m.modality_thresholds, outputSize: clf.outputSize(m) });
  if (j.op === "load") {  // Classifier.load (schema check) then run (output-size check)
    globalThis.fetch = async () => ({ json: async () => j.manifest,
                                      arrayBuffer: async () => new ArrayBuffer(8) });
    globalThis.ortOutput = new Float32Array(j.output);
    try {
      const c = await clf.Classifier.load(j.model, "manifest.json", { threads: 1 });
      const w = c.manifest.input_width, h = c.manifest.input_height;
      const fitted = { width: w, height: h, data: new Uint8Array(w * h * 3).fill(90) };
      out.push({ result: keep(clf.interpret(c.manifest, await c.run(fitted))) });
    } catch (e) {
      out.push({ error: e.message });
    }
  }
}
process.stdout.write(JSON.stringify(out));
"""
MODALITIES = ("dermoscopic", "phone")


def run_classifier_js(tmp: Path, jobs: list[dict]) -> list:
    """Run classifier.js (a copy of web/src with a stub runtime) on each job in Node."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node not found: the web tests need Node.js 20 (apt-get install nodejs)",
                    pytrace=False)
    src = tmp / "src"
    if not src.is_dir():
        shutil.copytree(SRC, src)
        (src / "vendor").mkdir(exist_ok=True)
        (src / "vendor" / "ort.wasm.min.mjs").write_text(ORT_STUB)
    res = subprocess.run([node, "--input-type=module", "-e", NODE_SCRIPT, src.as_uri()],
                         input=json.dumps(jobs), capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def python_result(m: Manifest, vec) -> dict:
    """What edge/classifier.py predict_rgb makes of one output vector (guard on)."""
    g = m.guard
    score = float(vec[g.index]) if g is not None and g.index >= 0 else None
    if score is not None and score < g.threshold:
        return {"status": "not_a_lesion", "label": "no lesion in view", "modality": "",
                "threshold": m.threshold, "guardScore": score}
    modality = m.modality_of(vec)
    thr = m.threshold_for(modality)
    p = m.calibrate(vec[0])
    return {"status": "ok", "label": dataclasses.replace(m, threshold=thr).label_for(p),
            "probability": p, "modality": modality, "threshold": thr, "guardScore": score}


def schema5_manifests() -> list[tuple[Manifest, str]]:
    """(manifest, model file it is used for): the per-modality cases and an old schema."""
    int8 = ArtifactInfo("onnx_int8", "model_int8.onnx", threshold=0.45, threshold_rule="int8",
                        modality_thresholds={"dermoscopic": 0.25, "phone": 0.7})
    bare = ArtifactInfo("onnx_fp16", "model_fp16.onnx", threshold=0.4)  # no modality_thresholds
    full = Manifest(classes=CLASSES, modalities=MODALITIES, modality_index=4,
                    modality_thresholds={"dermoscopic": 0.2, "phone": 0.8}, threshold=0.5,
                    temperature=1.3, guard=Guard(method="test", index=5, threshold=0.3),
                    artifacts={"onnx_int8": int8, "onnx_fp16": bare})
    return [
        (full, "model_fp32.onnx"),  # no artifact entry: the manifest's thresholds
        (full, "web/model_int8.onnx"),  # the artifact's own per-modality thresholds
        (full, "model_fp16.onnx"),  # artifact threshold, the manifest's per-modality ones
        # one modality without its own threshold: the manifest's threshold for it
        (Manifest(modalities=MODALITIES, modality_index=1, modality_thresholds={"phone": 0.7},
                  threshold=0.3), "m.onnx"),
        # thresholds but no modality output: modality "", the plain threshold
        (Manifest(modalities=MODALITIES, modality_thresholds={"dermoscopic": 0.1, "phone": 0.9},
                  threshold=0.6), "m.onnx"),
    ]


def old_manifest_dict() -> dict:
    """A schema-4 manifest as an older export wrote it: no modality field anywhere."""
    m = Manifest(classes=CLASSES, threshold=0.35, temperature=0.8, border="fill_dark",
                 guard=Guard(method="test", index=4, threshold=0.4),
                 artifacts={"onnx_int8": ArtifactInfo("onnx_int8", "model_int8.onnx",
                                                      threshold=0.55)})
    d = m.to_dict()
    for key in ("modalities", "modality_index", "modality_thresholds", "modality_threshold_rules"):
        del d[key]
    for a in d["artifacts"].values():
        del a["modality_thresholds"]
    d["schema"] = 4
    return d


def random_vectors(n_out: int, n: int, rng: np.random.Generator, modality_index: int) -> list:
    vecs = rng.random((n, n_out))
    if modality_index >= 0:  # the cut point itself and its neighbours
        vecs[:4, modality_index] = [0.5, np.nextafter(0.5, 0), 0.0, 1.0]
    return vecs.tolist()


def _agree(got: dict, want: dict, where: str) -> None:
    assert got["status"] == want["status"], where
    assert got["modality"] == want["modality"] and got["threshold"] == want["threshold"], where
    assert got["guardScore"] == want["guardScore"], where
    if want["status"] == "ok":
        assert got["probability"] == pytest.approx(want["probability"], abs=1e-12), where
        # the label from the page's own probability and Python's threshold, to the last bit
        thr, labels = want["threshold"], ("benign", "malignant")
        assert got["label"] == labels[got["probability"] >= thr], where
        if abs(want["probability"] - thr) > 1e-9:
            assert got["label"] == want["label"], where
    else:
        assert got["label"] == want["label"], where


def test_interpret_picks_the_modality_threshold(tmp_path):
    m = schema5_manifests()[0][0]
    d = m.to_dict()
    # p(malignant) 0.5 (temperature 1.3 keeps 0.5): malignant at the dermoscopic 0.2,
    # benign at the phone 0.8; modality output at index 4, guard (passing) at 5
    vecs = [[0.5, 0.1, 0.2, 0.3, p_phone, 0.9] for p_phone in (0.5, 0.97, 0.4999999, 0.01)]
    vecs.append([0.5, 0.1, 0.2, 0.3, 0.97, 0.1])  # guard rejects: no modality, no label
    got = run_classifier_js(tmp_path, [{"op": "interpret", "manifest": d, "model": "x.onnx",
                                        "vectors": vecs}])[0]
    assert [(r["modality"], r["threshold"], r["label"]) for r in got[:4]] == [
        ("phone", 0.8, "benign"), ("phone", 0.8, "benign"),
        ("dermoscopic", 0.2, "malignant"), ("dermoscopic", 0.2, "malignant")]
    assert (got[4]["status"], got[4]["modality"], got[4]["threshold"]) == ("not_a_lesion", "", 0.5)


def test_interpret_matches_python_on_random_vectors(tmp_path):
    rng = np.random.default_rng(5)
    cases = schema5_manifests()
    jobs = [{"op": "interpret", "manifest": m.to_dict(), "model": f,
             "vectors": random_vectors(m.output_size, 400, rng, m.modality_index)}
            for m, f in cases]
    got = run_classifier_js(tmp_path, jobs)
    decisive = 0
    for (m, f), job, results in zip(cases, jobs, got):
        used = m.for_artifact(f)
        for k, (vec, g) in enumerate(zip(job["vectors"], results)):
            want = python_result(used, vec)
            _agree(g, want, f"{f} vector {k}: page {g}, Python {want}")
            # the modality's threshold decided the label: the plain one gives the other
            decisive += want["status"] == "ok" and want["label"] != used.label_for(
                want["probability"])
    assert decisive >= 200, decisive
    seen = {(f, r["modality"]) for (m, f), rs in zip(cases, got) for r in rs}
    assert {("model_fp32.onnx", "phone"), ("model_fp32.onnx", "dermoscopic"),
            ("web/model_int8.onnx", "phone"), ("m.onnx", "dermoscopic"), ("m.onnx", "")} <= seen


def test_for_artifact_takes_its_modality_thresholds(tmp_path):
    cases = schema5_manifests() + [(Manifest.from_dict(old_manifest_dict()), "model_int8.onnx")]
    jobs = [{"op": "forArtifact", "manifest": m.to_dict(), "model": f} for m, f in cases]
    got = run_classifier_js(tmp_path, jobs)
    for (m, f), g in zip(cases, got):
        used = m.for_artifact(f)
        assert (g["threshold"], g["rule"], g["modality_thresholds"], g["outputSize"]) == (
            used.threshold, used.threshold_rule, used.modality_thresholds, used.output_size), f
    assert got[1]["modality_thresholds"] == {"dermoscopic": 0.25, "phone": 0.7}
    assert got[1]["threshold"] == 0.45 and got[1]["rule"] == "int8"
    assert got[2]["modality_thresholds"] == {"dermoscopic": 0.2, "phone": 0.8}  # fp16: none own
    assert [g["outputSize"] for g in got] == [6, 6, 6, 2, 1, 5]


def test_old_schema4_manifest_gives_the_old_result(tmp_path):
    d, rng = old_manifest_dict(), np.random.default_rng(4)
    m = Manifest.from_dict(d).for_artifact("model_int8.onnx")
    vecs = random_vectors(5, 300, rng, -1)
    got = run_classifier_js(tmp_path, [{"op": "interpret", "manifest": d,
                                        "model": "model_int8.onnx", "vectors": vecs}])[0]
    assert {r["threshold"] for r in got} == {0.55} and {r["modality"] for r in got} == {""}
    for k, (vec, g) in enumerate(zip(vecs, got)):
        p = m.calibrate(vec[0])
        if vec[4] < 0.4:
            want = {"status": "not_a_lesion", "label": "no lesion in view", "modality": "",
                    "threshold": 0.55, "guardScore": vec[4]}
        else:  # the rule before schema 5: Manifest.label_for on the artifact's threshold
            want = {"status": "ok", "label": m.label_for(p), "probability": p, "modality": "",
                    "threshold": 0.55, "guardScore": vec[4]}
        _agree(g, want, f"vector {k}: page {g}, Python {want}")
    assert {r["status"] for r in got} == {"ok", "not_a_lesion"}
    assert {r["label"] for r in got} >= {"benign", "malignant"}


def test_load_accepts_schema5_and_checks_output_size(tmp_path):
    m = schema5_manifests()[0][0]
    d4, d5 = old_manifest_dict(), m.to_dict()
    out6 = [0.5, 0.1, 0.2, 0.3, 0.9, 0.8]
    jobs = [{"op": "load", "manifest": d5, "model": "model_int8.onnx", "output": out6},
            {"op": "load", "manifest": d5, "model": "model_int8.onnx", "output": out6[:5]},
            {"op": "load", "manifest": {**d5, "schema": 7}, "model": "m.onnx", "output": out6},
            {"op": "load", "manifest": d4, "model": "model_int8.onnx",
             "output": [0.7, 0.1, 0.2, 0.3, 0.9]}]
    got = run_classifier_js(tmp_path, jobs)
    r = got[0]["result"]
    assert (r["status"], r["modality"], r["threshold"], r["label"]) == \
        ("ok", "phone", 0.7, "benign")
    assert got[1]["error"].startswith("model output has 5 values, its manifest describes 6")
    assert got[2]["error"] == "manifest schema 7 is newer than this app (6); rebuild it"
    r = got[3]["result"]
    assert (r["status"], r["modality"], r["threshold"], r["label"]) == \
        ("ok", "", 0.55, "malignant")


# columns: P(malignant), 3 lesion types, P(phone photo) (index 4), guard score (index 5, passes)
W5 = np.array([[4, 1, 0, 0, 8, 0], [0, 0, 1, 0, -8, 0], [-4, 0, 0, 1, 0, 0]], np.float32)
B5 = np.array([0, 0, 0, 0, 0, 3], np.float32)
# mean colours: P(malignant) 0.31..0.78 and both modalities, labels that the plain threshold
# (0.55) would call otherwise on either side
COLOURS = [(150, 100, 120), (120, 140, 130), (170, 90, 150), (100, 130, 110), (180, 120, 100),
           (90, 120, 140), (140, 150, 90), (110, 90, 150)]


@pytest.fixture(scope="module")
def schema5_app(tmp_path_factory, web_app):  # noqa: F811 (web_app: prerequisites check)
    d = tmp_path_factory.mktemp("schema5")
    write_model(d / "model_fp32.onnx", W5, B5)
    art = ArtifactInfo("onnx_fp32", "model_fp32.onnx", threshold=0.55,
                       modality_thresholds={"dermoscopic": 0.4, "phone": 0.7})
    m = Manifest(classes=CLASSES, modalities=MODALITIES, modality_index=4,
                 modality_thresholds={"dermoscopic": 0.3, "phone": 0.6}, threshold=0.5,
                 guard=Guard(method="test", index=5, threshold=0.5),
                 artifacts={"onnx_fp32": art})
    m.save(d / "manifest.json")
    rng = np.random.default_rng(0)
    files = []
    for k, c in enumerate(COLOURS):
        img = np.clip(np.asarray(c) + rng.integers(-20, 21, (256, 256, 3)), 0, 255)
        files.append(d / f"img{k}.png")
        cv2.imwrite(str(files[-1]), img.astype(np.uint8)[..., ::-1])
    app = build_webapp(d / "model_fp32.onnx", d / "app").out
    server, url = serve(app)
    yield url, Classifier(d / "model_fp32.onnx"), files
    server.shutdown()


def test_schema5_page_uses_and_shows_the_modality_threshold(browser, schema5_app):  # noqa: F811
    url, clf, files = schema5_app
    assert clf.manifest.modality_thresholds == {"dermoscopic": 0.4, "phone": 0.7}
    page = open_page(browser, url)
    status = page.text_content("#status")
    assert " · thresholds dermoscopic 0.400, phone photo 0.700 · " in status, status
    got = pick_files(page, files)
    want = [clf.predict_file(f) for f in files]
    named = {"phone": "phone photo", "dermoscopic": "dermoscopic"}
    lines = page.locator("#list li").all_text_contents()
    for f, g, w, line in zip(files, got, want, lines):
        assert (g["status"], g["label"], g["modality"], g["threshold"]) == \
            (w.status, w.label, w.modality, w.threshold), (f.name, g, w)
        assert g["probability"] == pytest.approx(w.probability, abs=1e-5)
        assert line == (f"{f.name}: {w.label} ({down(g['probability'], 3)}, "
                        f"{named[w.modality]} threshold {down(w.threshold, 3)})")
    assert {w.modality for w in want} == {"phone", "dermoscopic"}
    decisive = {w.modality for w in want if w.label != clf.manifest.label_for(w.probability)}
    assert decisive == {"phone", "dermoscopic"}, decisive
    last = got[-1]
    assert page.text_content("#prob") == (f"p(malignant) = {down(last['probability'], 3)} "
                                          f"({named[last['modality']]} threshold "
                                          f"{down(last['threshold'], 3)})")
    assert not page.errors
    page.close()
