"""``export/webapp.py``: the app folder it writes, its errors, and the server's headers/HTTPS."""
from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import threading
import urllib.request
from pathlib import Path

import pytest

from export import webapp
from export.web import make_server
from tests.test_web import MODEL

pytestmark = pytest.mark.web


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Path:
    if not (Path(__file__).parents[1] / "web" / "node_modules" / "onnxruntime-web").is_dir():
        pytest.fail("web/node_modules missing: run npm ci --prefix web (make test does it)",
                    pytrace=False)
    out = tmp_path_factory.mktemp("cli") / "web"
    assert webapp.main(["--model", str(MODEL), "--out", str(out)]) == 0
    return out


def test_build_writes_a_complete_offline_app(app, capsys):
    for f in ("index.html", "app.js", "classifier.js", "preprocess.js", "quality.js", "sw.js",
              "app.webmanifest", "manifest.json", "model_int8.onnx",
              "vendor/ort.wasm.min.mjs", "vendor/ort-wasm-simd-threaded.wasm"):
        assert (app / f).is_file(), f
    assert 'data-model="model_int8.onnx"' in (app / "index.html").read_text()
    sw = (app / "sw.js").read_text()
    assert "__FILES__" not in sw and '"./vendor/ort-wasm-simd-threaded.wasm"' in sw
    assert json.loads((app / "manifest.json").read_text()) == json.loads(
        (MODEL.parent / "manifest.json").read_text())
    assert not list(app.parent.glob(".web.*")), "temporary build folder left behind"


@pytest.mark.parametrize("model, words", [("missing.onnx", "no such model file"),
                                          ("models/model_int8.tflite", "runs ONNX models")])
def test_bad_model_is_one_line_and_exit_2(tmp_path, capsys, model, words):
    root = Path(__file__).parents[1]
    assert webapp.main(["--model", str(root / model), "--out", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "\n" not in err and not (tmp_path / "w").exists()


def test_serve_https_with_isolation_headers(app, tmp_path):
    if shutil.which("openssl") is None:
        pytest.fail("openssl not found (apt-get install openssl)", pytrace=False)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    server = make_server(app, 0, cert=cert, key=key)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False
    try:
        url = f"https://127.0.0.1:{server.server_address[1]}/vendor/ort-wasm-simd-threaded.wasm"
        with urllib.request.urlopen(url, context=ctx) as r:
            assert r.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
            assert r.headers["Cross-Origin-Opener-Policy"] == "same-origin"
            assert r.headers["Content-Type"] == "application/wasm"
    finally:
        server.shutdown()
        server.server_close()


def test_default_model_follows_the_lookup_from_any_folder(tmp_path, monkeypatch, capsys):
    """No --model: the ONNX file of the default model's folder (edge/modelpath.py), so the app
    builds from any folder; a $SKINLESION_MODEL that names nothing is a one-line error."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SKINLESION_MODEL", raising=False)
    assert webapp.main(["--out", str(tmp_path / "w")]) == 0
    shipped = Path(__file__).parents[1] / "models"
    assert (tmp_path / "w" / "model_int8.onnx").read_bytes() == (
        shipped / "model_int8.onnx").read_bytes()
    monkeypatch.setenv("SKINLESION_MODEL", str(tmp_path / "nothing"))
    assert webapp.main(["--out", str(tmp_path / "w2")]) == 2
    err = capsys.readouterr().err.strip()
    assert "SKINLESION_MODEL" in err and "\n" not in err and not (tmp_path / "w2").exists()
