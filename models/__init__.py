"""The shipped model: int8 TFLite and ONNX, manifest.json and the export report (package data).

Installed as the package ``skinlesion_models`` (pyproject ``package-dir``); edge/modelpath.py finds it."""
