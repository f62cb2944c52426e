"""Export stage: a trained Keras model -> TFLite/ONNX artifacts, a manifest, a parity report.

``export/formats.py`` is the one registry of formats; ``export/pipeline.py`` drives export,
embedding and parity; ``export/convert.py`` is the command line. Needs TensorFlow (the edge
runner never imports this package).
"""
