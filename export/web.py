"""The static web app: build it from an exported ONNX model, and serve it locally.

``build_webapp`` copies the page (``web/public``, ``web/src``), the runtime vendored from npm
(``web/node_modules/onnxruntime-web``: its ES module and one WebAssembly build), the model and
its ``manifest.json`` into one folder, and writes a service worker that precaches all of it
(offline after the first load). The folder is written beside ``out`` and renamed into place.
``serve`` is a static HTTP server that adds the cross-origin isolation headers (COOP/COEP)
onnxruntime-web needs for threads. CLI: ``export/webapp.py``.

Example:
    >>> from pathlib import Path
    >>> app = build_webapp(Path("models/model_int8.onnx"), Path("build/web"))  # doctest: +SKIP
    >>> (app.out / "index.html").is_file()                                      # doctest: +SKIP
    True
"""
from __future__ import annotations

import functools
import hashlib
import http.server
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from edge.manifest import MANIFEST_NAME, ManifestError, find_manifest

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "web"
ORT_DIST = WEB / "node_modules" / "onnxruntime-web" / "dist"
# the wasm-only ES build of onnxruntime-web and its one WebAssembly binary (SIMD + threads)
RUNTIME_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
}


class WebAppError(ValueError):
    """The web app cannot be built; ``str(e)`` names the file and the fix."""


@dataclass
class WebApp:
    """A built app folder: where it is, what model it carries, every file it precaches."""

    out: Path
    model: str
    files: list[str] = field(default_factory=list)
    bytes: int = 0
    runtime: str = ""


def runtime_version() -> str:
    """Version of the vendored onnxruntime-web (from its package.json)."""
    try:
        return json.loads((ORT_DIST.parent / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError) as e:
        raise WebAppError(f"{ORT_DIST.parent}: onnxruntime-web is not installed ({e}); "
                          "run: npm ci --prefix web") from e


def _check_model(model: Path) -> None:
    if not model.is_file():
        raise WebAppError(f"{model}: no such model file; export one with export/convert.py "
                          "(e.g. models/model_int8.onnx)")
    if model.suffix.lower() != ".onnx":
        raise WebAppError(f"{model}: the web app runs ONNX models (onnxruntime-web); pass the "
                          ".onnx file of the export, e.g. models/model_int8.onnx")
    try:
        find_manifest(model)
    except ManifestError as e:
        raise WebAppError(str(e)) from e


def _copy_tree(src: Path, dst: Path) -> None:
    for f in sorted(src.rglob("*")):
        if f.is_file():
            target = dst / f.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, target)


def _write_app(tmp: Path, model: Path) -> None:
    _copy_tree(WEB / "public", tmp)
    _copy_tree(WEB / "src", tmp)
    runtime_version()
    for name in RUNTIME_FILES:
        if not (ORT_DIST / name).is_file():
            raise WebAppError(f"{ORT_DIST / name}: missing; run: npm ci --prefix web")
        (tmp / "vendor").mkdir(exist_ok=True)
        shutil.copy2(ORT_DIST / name, tmp / "vendor" / name)
    shutil.copy2(model, tmp / model.name)
    manifest = model.with_name(MANIFEST_NAME)
    if manifest.is_file():
        shutil.copy2(manifest, tmp / MANIFEST_NAME)
    else:  # embedded only: write it out as the sidecar the page fetches
        (tmp / MANIFEST_NAME).write_text(find_manifest(model).to_json())
    page = tmp / "index.html"
    page.write_text(page.read_text().replace("__MODEL__", model.name))


def _write_service_worker(tmp: Path) -> list[str]:
    """Fill in sw.js: every file but itself and host config (``_headers``); the precache list."""
    files = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*")
                   if p.is_file() and p.name != "sw.js" and not p.name.startswith("_"))
    digest = hashlib.sha256()
    for name in files:
        digest.update(name.encode() + (tmp / name).read_bytes())
    sw = tmp / "sw.js"
    precache = ["./"] + [f"./{n}" for n in files]
    sw.write_text(sw.read_text().replace("__VERSION__", digest.hexdigest()[:16])
                  .replace("__FILES__", json.dumps(precache, indent=2)))
    return precache


def build_webapp(model: Path, out: Path) -> WebApp:
    """Write the app for ``model`` (an .onnx file with its manifest) into ``out``, atomically."""
    model, out = Path(model), Path(out)
    _check_model(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        _write_app(tmp, model)
        _write_service_worker(tmp)
        tmp.chmod(0o755)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    size = sum((out / f).stat().st_size for f in files)
    return WebApp(out, model.name, files, size, f"onnxruntime-web {runtime_version()}")


class IsolatedHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with COOP/COEP (threads in onnxruntime-web) and no caching surprises."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".mjs": "text/javascript", ".js": "text/javascript",
                      ".wasm": "application/wasm", ".webmanifest": "application/manifest+json",
                      ".onnx": "application/octet-stream"}

    def end_headers(self) -> None:
        for k, v in ISOLATION_HEADERS.items():
            self.send_header(k, v)
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format: str, *args) -> None:  # quiet: one line per request is noise
        pass


def make_server(folder: Path, port: int = 8000, host: str = "127.0.0.1", cert: Path | None = None,
                key: Path | None = None) -> http.server.ThreadingHTTPServer:
    """A server for ``folder`` (port 0: any free port; ``server.server_address`` tells);
    HTTPS when ``cert`` (PEM, with ``key`` unless the key is in the same file) is given."""
    if not (Path(folder) / "index.html").is_file():
        raise WebAppError(f"{folder}: no index.html; build the app first: "
                          "python export/webapp.py --model models/model_int8.onnx --out build/web")
    handler = functools.partial(IsolatedHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer((host, port), handler)
    if cert is not None:
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            ctx.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as e:
            server.server_close()
            raise WebAppError(f"{cert}: cannot load the certificate/key ({e}); make one with "
                              "the openssl command in docs/web.md") from e
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    return server
