"""Any image classifier, end to end, on real multi-class data and real runtimes.

The seven HAM10000 lesion types (``dx``) of ``../shared/datasets/ham10000-extra`` become class
folders in a temporary directory (symbolic links to the real JPEGs); ``train/train.py`` trains
a 7-class softmax on them, ``train/evaluate.py`` scores it per class, ``export/convert.py``
exports every format, and ``edge/classify.py`` and the browser app label the test images with
the folder names. A bare ``keras.applications`` MobileNetV2 with 3 labels, input [-1, 1],
exports with ``--labels`` and classifies the same way. Each bad input gives one line and exit 2.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from edge.classifier import Classifier
from edge.images import load_rgb
from edge.manifest import Manifest
from tests.test_web import browser, open_page, pick_files, serve, web_app, y4m  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
HAM = ROOT.parent / "shared" / "datasets" / "ham10000-extra"
DX = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
TRAIN_PER_CLASS, TEST_PER_CLASS = 14, 4

pytestmark = pytest.mark.skipif(not (HAM / "MANIFEST.csv").is_file(),
                                reason=f"{HAM} not found")


def dx_folders(root: Path, classes=DX, n_train=TRAIN_PER_CLASS, n_test=TEST_PER_CLASS) -> Path:
    """``root/train/<dx>/`` and ``root/test/<dx>/``: links to the first images of each type."""
    with open(HAM / "MANIFEST.csv", newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["path"])
    for dx in classes:
        mine = [r for r in rows if r["dx"] == dx][:n_train + n_test]
        for i, r in enumerate(mine):
            d = root / ("test" if i < n_test else "train") / dx
            d.mkdir(parents=True, exist_ok=True)
            (d / Path(r["path"]).name).symlink_to(HAM / r["path"])
    return root


def run_main(module, argv: list[str], capsys) -> tuple[int, str, str]:
    code = module.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def csv_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


@pytest.fixture(scope="module")
def dx7(tmp_path_factory) -> Path:
    return dx_folders(tmp_path_factory.mktemp("dx7"))


@pytest.fixture(scope="module")
def dx7_run(dx7, tmp_path_factory) -> Path:
    """A 7-class seed_cnn trained 2 epochs at 64 px, evaluated, exported to every format."""
    from export import convert
    from train import evaluate, train

    run = tmp_path_factory.mktemp("runs") / "dx7"
    assert train.main(["--data", str(dx7), "--model", "seed_cnn", "--image-size", "64",
                       "--epochs", "2", "--out", str(run), "-q"]) == 0
    assert evaluate.main(["--run", str(run), "--bootstrap", "100"]) == 0
    assert convert.main(["--run", str(run)]) == 0
    return run


def test_training_records_the_classes_and_where_they_came_from(dx7_run, dx7):
    cfg = json.loads((dx7_run / "config.json").read_text())
    assert cfg["labels"] == list(DX) and cfg["positive"] == "" and cfg["data"] == str(dx7)
    assert cfg["trained_on"] == f"{dx7.name}: 7 classes ({', '.join(DX)}); 98 training images"
    m = Manifest.load(dx7_run / "export" / "manifest.json")
    assert (m.output, m.labels, m.positive_index, m.schema) == ("softmax", DX, -1, 6)
    assert m.trained_on == cfg["trained_on"] and "Kaggle" not in m.trained_on
    assert m.guard is None and not m.quality.enabled
    assert set(m.artifacts) == {"tflite_fp32", "tflite_fp16", "tflite_dynamic", "tflite_int8",
                                "onnx_fp32", "onnx_int8"}


def test_evaluation_reports_every_class_with_a_confusion_matrix(dx7_run):
    import cv2

    met = json.loads((dx7_run / "metrics.json").read_text())
    t = met["test"]
    assert met["task"] == "multiclass" and met["n_test"] == len(DX) * TEST_PER_CLASS
    assert set(t["per_class"]) == set(DX)
    assert all(t["per_class"][c]["n"] == TEST_PER_CLASS for c in DX)
    matrix = np.array(t["confusion"]["matrix"])
    assert matrix.shape == (7, 7) and matrix.sum() == met["n_test"]
    assert t["accuracy"] == pytest.approx(np.trace(matrix) / matrix.sum())
    assert t["balanced_accuracy"] == pytest.approx(np.mean(np.diag(matrix) / matrix.sum(1)))
    lo, hi = t["ci95"]["macro_roc_auc"]
    assert lo <= t["macro_roc_auc"] <= hi
    assert json.loads((dx7_run / "confusion.json").read_text()) == t["confusion"]
    assert cv2.imread(str(dx7_run / "confusion.png")) is not None


def test_classify_labels_every_test_image_with_a_folder_name(dx7_run, dx7, tmp_path, capsys):
    from edge import classify

    out_csv, out_json = tmp_path / "out.csv", tmp_path / "out.json"
    code, out, _ = run_main(classify, ["--model", str(dx7_run / "export" / "model_int8.tflite"),
                                       "--csv", str(out_csv), "--json", str(out_json),
                                       "--top-k", "3", str(dx7 / "test")], capsys)
    assert code == 0
    rows = csv_rows(out_csv)
    assert len(rows) == len(DX) * TEST_PER_CLASS
    assert all(r["status"] == "ok" and r["label"] in DX for r in rows)
    for r in rows:  # the top list: 3 labels, most likely first, the first is the label
        top = [t.rsplit(" ", 1) for t in r["top"].split("; ")]
        assert len(top) == 3 and top[0][0] == r["label"]
        assert [float(p) for _, p in top] == sorted((float(p) for _, p in top), reverse=True)
    doc = json.loads(out_json.read_text())
    assert all(len(p["top"]) == 3 for p in doc["predictions"])
    assert doc["trained_on"].startswith(dx7.name) and "not a medical device" in doc["disclaimer"]
    assert "label: the most likely of 7 classes" in out and "top: " in out


def test_every_format_reads_the_same_labels(dx7_run, dx7):
    """float files agree with each other exactly; int8 files within their resolution."""
    files = sorted((dx7 / "test").rglob("*.jpg"))
    ref = [Classifier(dx7_run / "export" / "model_fp32.tflite").predict_file(f) for f in files]
    for name in ("model_fp32.onnx", "model_int8.onnx", "model_int8.tflite"):
        clf = Classifier(dx7_run / "export" / name)
        got = [clf.predict_file(f) for f in files]
        tol = 1e-5 if "fp32" in name else 0.03
        for g, r in zip(got, ref):
            np.testing.assert_allclose([p for _, p in sorted(g.top)],
                                       [p for _, p in sorted(r.top)], atol=tol)


def test_browser_app_gives_the_python_runner_result(browser, dx7_run, dx7, tmp_path):  # noqa: F811
    from export.web import build_webapp

    model = dx7_run / "export" / "model_fp32.onnx"
    server, url = serve(build_webapp(model, tmp_path / "app").out)
    try:
        page = open_page(browser, url)
        files = [sorted((dx7 / "test" / dx).iterdir())[0].resolve() for dx in DX]
        got = pick_files(page, files)
        clf = Classifier(model)
        for f, g in zip(files, got):
            w = clf.predict_file(f)
            assert (g["status"], g["label"], g["threshold"]) == ("ok", w.label, None), f.name
            assert g["probability"] == pytest.approx(w.probability, abs=1e-4), f.name
            assert [t[0] for t in g["top"]] == [t[0] for t in w.top], f.name
        assert page.locator("#top li").count() == 3
        assert page.text_content("#trained") == f"Trained on: {clf.manifest.trained_on}"
        assert not page.errors
        page.close()
    finally:
        server.shutdown()


def write_bare_mobilenet(path: Path, size: int = 96) -> None:
    """A bare keras.applications MobileNetV2 (local ImageNet no-top weights) with a 3-way
    softmax, expecting [-1, 1] input (keras.applications.mobilenet_v2.preprocess_input)."""
    import keras

    from train.models import find_imagenet_weights

    keras.utils.set_random_seed(0)
    base = keras.applications.MobileNetV2(input_shape=(size, size, 3), alpha=0.35,
                                          include_top=False, pooling="avg",
                                          weights=str(find_imagenet_weights(0.35)))
    out = keras.layers.Dense(3, activation="softmax")(base.output)
    keras.Model(base.input, out).save(path)


def test_bare_keras_model_exports_with_labels_and_classifies(tmp_path, capsys):
    from edge import classify
    from export import convert

    data = dx_folders(tmp_path / "dx3", ("bkl", "mel", "nv"), 10, 4)
    write_bare_mobilenet(tmp_path / "m.keras")
    out = tmp_path / "out"
    code, text, err = run_main(convert, ["--model", str(tmp_path / "m.keras"), "--labels",
                                         "bkl,mel,nv", "--input-range", "-1,1", "--data",
                                         str(data), "--out", str(out), "--formats",
                                         "tflite_int8,onnx_fp32", "-n", "30"], capsys)
    assert code == 0, err
    m = Manifest.load(out / "manifest.json")
    assert (m.output, m.labels, m.pixel_range, m.color_order) == (
        "softmax", ("bkl", "mel", "nv"), (-1.0, 1.0), "RGB")
    assert m.trained_on.startswith("not stated")
    code, _, _ = run_main(classify, ["--model", str(out / "model_int8.tflite"), "--csv",
                                     str(tmp_path / "o.csv"), str(data / "test")], capsys)
    rows = csv_rows(tmp_path / "o.csv")
    assert code == 0 and len(rows) == 12
    assert all(r["status"] == "ok" and r["label"] in m.labels for r in rows)
    # the runner feeds [-1, 1]: fed 0..255 instead, the float model says something else
    clf = Classifier(out / "model_fp32.onnx")
    f = sorted((data / "test").rglob("*.jpg"))[0]
    x = clf.prepare(load_rgb(f))
    wrong = clf.runtime.run(((x + 1) * 127.5).astype(np.float32)).reshape(-1)
    assert not np.allclose(wrong, clf.raw_outputs(x), atol=1e-3)


# ----------------------------------------------------------------- bad input: one line, exit 2
def one_line_error(code: int, err: str, *words: str) -> None:
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error")]
    assert code == 2 and len(lines) == 1, err
    assert all(w in lines[0] for w in words), lines[0]


@pytest.fixture(scope="module")
def small_models(tmp_path_factory):
    """A 3-output image model and a model that does not take images."""
    import keras

    d = tmp_path_factory.mktemp("models")
    img = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.GlobalAveragePooling2D(),
                            keras.layers.Dense(3, activation="softmax")])
    img.save(d / "img3.keras")
    flat = keras.Sequential([keras.Input((10,)), keras.layers.Dense(3, activation="softmax")])
    flat.save(d / "flat.keras")
    return d


def test_export_bad_inputs_exit_2_with_one_line(small_models, tmp_path, capsys):
    from export import convert

    data = dx_folders(tmp_path / "dx3", ("bkl", "mel", "nv"), 3, 1)
    base = ["--data", str(data), "--out", str(tmp_path / "o"), "--formats", "onnx_fp32"]
    img3, flat = str(small_models / "img3.keras"), str(small_models / "flat.keras")
    one_line_error(*run_main(convert, ["--model", img3, "--labels", "a,b", *base], capsys)[::2],
                   "--labels gives 2 names", "outputs 3 values")
    one_line_error(*run_main(convert, ["--model", flat, "--labels", "a,b,c", *base],
                             capsys)[::2], "not an image classifier", "(None, 10)")
    one_line_error(*run_main(convert, ["--model", img3, "--labels", "bkl,mel,xx", *base],
                             capsys)[::2], "no images for label(s) xx", str(data))
    (data / "train" / "empty").mkdir()
    one_line_error(*run_main(convert, ["--model", img3, "--labels", "bkl,mel,nv", *base],
                             capsys)[::2], "class folder holds no image", "empty")
    assert not (tmp_path / "o" / "model_fp32.onnx").exists()


def test_train_bad_inputs_exit_2_with_one_line(tmp_path, capsys):
    from train import train

    data = dx_folders(tmp_path / "dx3", ("bkl", "mel", "nv"), 3, 1)
    args = ["--data", str(data), "--model", "seed_cnn", "--image-size", "32", "--epochs", "1"]
    one_line_error(*run_main(train, [*args, "--positive", "cat", "--out", str(tmp_path / "a")],
                             capsys)[::2], "--positive 'cat'", "bkl, mel, nv")
    (data / "train" / "empty").mkdir()
    one_line_error(*run_main(train, [*args, "--out", str(tmp_path / "b")], capsys)[::2],
                   "class folder holds no image")
    one = dx_folders(tmp_path / "one", ("nv",), 3, 1)
    one_line_error(*run_main(train, ["--data", str(one), "--out", str(tmp_path / "c")],
                             capsys)[::2], "1 class(es) found", "two or more")


def test_classify_refuses_a_manifest_it_does_not_understand(dx7_run, dx7, tmp_path, capsys):
    from edge import classify

    src = dx7_run / "export"
    for key, value, words in (("layout", "x", ("'layout'", "not understood")),
                              ("output", "multilabel", ("output='multilabel'", "sigmoid"))):
        d = tmp_path / key
        d.mkdir()
        (d / "model_fp32.onnx").write_bytes((src / "model_fp32.onnx").read_bytes())
        doc = json.loads((src / "manifest.json").read_text())
        doc[key] = value
        (d / "manifest.json").write_text(json.dumps(doc))
        code, _, err = run_main(classify, ["--model", str(d / "model_fp32.onnx"),
                                           str(dx7 / "test")], capsys)
        one_line_error(code, err, *words)
