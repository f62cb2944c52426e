"""Build the phone/browser app (a static folder) from an exported ONNX model, or serve it.

The app runs the model in the browser with onnxruntime-web (WebAssembly), offline after the
first load (service worker), with the same preprocessing, threshold, temperature and labels
as ``edge/classify.py``, all from the model's ``manifest.json``. Needs ``npm ci --prefix web``
once (the runtime is copied from ``web/node_modules``). See docs/web.md for phones (HTTPS).
Exit code 2: bad input (model, manifest, missing runtime, output folder).

Example:
    python export/webapp.py --out build/web          # the default model's ONNX file (see --help)
    python export/webapp.py --model models/model_int8.onnx --out build/web
    python export/webapp.py --serve build/web --port 8000     # then open http://localhost:8000
    python export/webapp.py --serve build/web --host 0.0.0.0 --cert cert.pem --key key.pem
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse

from core.helpformat import DefaultsHelp, program  # noqa: E402
from edge.modelpath import ModelNotFound, choose_onnx  # noqa: E402
from export.web import WebAppError, build_webapp, make_server  # noqa: E402

from core import DISCLAIMER, EXIT_OK, EXIT_USAGE  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=program("export/webapp.py"), description=__doc__, formatter_class=DefaultsHelp)
    p.add_argument("-m", "--model", type=Path, default=None,
                   help="exported ONNX model; its manifest.json beside it (or embedded) "
                        "(default: model_int8.onnx of the default model's folder: "
                        "$SKINLESION_MODEL, ./models, the packaged model)")
    p.add_argument("-o", "--out", type=Path, default=Path("build/web"), help="app folder to write")
    p.add_argument("--serve", type=Path, metavar="DIR",
                   help="serve this built app folder instead of building (COOP/COEP headers on)")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0: the LAN)")
    p.add_argument("-p", "--port", type=int, default=8000, help="port to serve on")
    p.add_argument("--cert", type=Path, help="PEM certificate: serve HTTPS (a phone on the LAN)")
    p.add_argument("--key", type=Path, help="PEM private key of --cert")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.serve:
            server = make_server(args.serve, args.port, args.host, args.cert, args.key)
            host, port = server.server_address[:2]
            scheme = "https" if args.cert else "http"
            name = "localhost" if host == "127.0.0.1" else host
            print(f"serving {args.serve} on {scheme}://{name}:{port}/ (Ctrl-C stops); "
                  "a phone needs HTTPS: see docs/web.md")
            try:
                server.serve_forever()
            except KeyboardInterrupt:
                return EXIT_OK
            return EXIT_OK
        app = build_webapp(choose_onnx(args.model).path, args.out)
    except (WebAppError, ModelNotFound, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote {app.out}/ ({len(app.files)} files, {app.bytes / 1e6:.1f} MB, {app.runtime}, "
          f"model {app.model})")
    print(DISCLAIMER)
    print(f"next: python export/webapp.py --serve {app.out}   # then open http://localhost:8000")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
