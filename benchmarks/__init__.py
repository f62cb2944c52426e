"""Latency benchmark: every exported artifact x runtime x thread count, in one report.

Entry point: ``python benchmarks/latency.py`` (see its docstring). Modules:
``artifacts`` (what to time, accuracy by sha256), ``stats`` (latency statistics and the
timed loop), ``machine`` (machine record and warnings), ``cost`` (params, MACs, matmul
peak), ``runner`` (one case in a fresh child process), ``e2e`` (end-to-end stages and the
camera loop), ``reference_model`` (the MobileNetV2-1.0 yardstick for Pi 4 estimates),
``suite`` (plans and runs the cases), ``derive`` (GMAC/s, accuracy, Pi 4 columns),
``report``/``markdown``/``chart`` (JSON, Markdown, PNG) and ``compare`` (regressions).
"""
