"""``report.md``: the headline table first, then detail, Pi 4 estimates, machine and method.

Built from the ``report.json`` document alone (``report.report_dict``), so a saved JSON can
be re-rendered without re-running anything.

Example:
    >>> doc = load_report(Path("runs/demo/bench/report.json"))      # doctest: +SKIP
    >>> print(render(doc).splitlines()[0])                            # doctest: +SKIP
    # Latency benchmark: mobilenetv2_0.35 (demo)
"""
from __future__ import annotations

from typing import Any

from benchmarks import reference_model as ref
from benchmarks.latency_report import (e2e_table, full_table, headline_table, md_table, num,
                               sort_by_p50)


def _keras_section(rows: list[dict[str, Any]]) -> list[str]:
    base = {r["runtime"]: r for r in rows if r["role"] == "baseline" and r["status"] == "ok"}
    best = next((r for r in sort_by_p50(rows) if r["role"] == "model" and r["status"] == "ok"),
                None)
    if not base or best is None:
        return []
    out = ["## What the export gains over Keras", ""]
    for name, r in sorted(base.items(), key=lambda kv: kv[1]["p50_ms"]):
        out.append(f"- `{name}` {r['threads']}t: p50 {num(r['p50_ms'], 2)} ms -> the fastest "
                   f"artifact ({best['format']}, {best['runtime']}, {best['threads']}t, "
                   f"{num(best['p50_ms'], 3)} ms) is {r['p50_ms'] / best['p50_ms']:.0f}x faster")
    return out + [""]


def _pi_section(doc: dict[str, Any]) -> list[str]:
    r = doc.get("reference")
    out = ["## Raspberry Pi 4 estimate (an estimate, not a measurement)", ""]
    if not r:
        return out + ["No estimate: the MobileNetV2-1.0 reference was not benchmarked "
                      "(see notes).", ""]
    refs = [x for x in sort_by_p50(doc["rows"]) if x["role"] == "reference" and
            x["status"] == "ok"]
    out += [
        "`Pi 4 estimate = artifact p50 / reference p50 (same machine, same run, same threads) "
        "x published Pi 4 latency of the reference`",
        "",
        f"- Reference: MobileNetV2-1.0 at {r['size']}x{r['size']}, random weights, exported "
        "exactly like the model (export.pipeline.export_model), timed in this run.",
        f"- Published Pi 4 figures: fp32 {ref.PI4_MS['fp32']:g} ms, int8 {ref.PI4_MS['int8']:g} "
        f"ms ({ref.PI4_SOURCE}).",
        "- int8 formats are scaled against the int8 reference, all others against fp32; "
        "ONNX rows against the LiteRT reference (so they include onnxruntime's speed relative "
        "to LiteRT measured here).",
        "- Assumes this machine and a Pi 4 slow down alike from MobileNetV2 to your model; "
        "memory bandwidth, cache sizes and NEON vs AVX kernels differ, so treat it as +-50%.",
    ]
    if r.get("size") != 224:
        out.append(f"- **Warning: the reference ran at {r['size']} px, not 224: the published "
                   "figures do not apply; these estimates are not meaningful.**")
    out += [""] + md_table(("reference", "runtime", "threads", "p50 ms", "p90 ms"),
                         ([x["format"], x["runtime"], x["threads"], num(x["p50_ms"], 3),
                           num(x["p90_ms"], 3)] for x in refs))
    return out + [""]


def _compare_section(doc: dict[str, Any]) -> list[str]:
    c = doc.get("compare")
    if not c:
        return []
    out = [f"## Compared with {c['old']}", "",
           f"Regression: p50 more than {c['threshold']:.0%} and {c['floor_ms']} ms slower than "
           f"the old report ({c['old_created'] or 'unknown date'}, {c['old_cpu'] or '?'}).", ""]
    out += [f"- {w}" for w in c.get("warnings", [])]
    both = [m for m in c["matches"] if m["verdict"] not in ("new", "missing")]
    out += md_table(("role", "format", "runtime", "thr", "old p50", "new p50", "ratio", "verdict"),
                    ([m["role"], m["format"], m["runtime"], m["threads"],
                      num(m["old_p50_ms"], 3), num(m["new_p50_ms"], 3), num(m["ratio"], 2),
                      ("**REGRESSION**" if m["verdict"] == "regression" else m["verdict"]) +
                      (" (different file)" if m.get("file_changed") else "")] for m in both))
    n_new = sum(m["verdict"] == "new" for m in c["matches"])
    n_missing = sum(m["verdict"] == "missing" for m in c["matches"])
    if n_new or n_missing:
        out += ["", f"{n_missing} row(s) only in the old report, {n_new} only in this one."]
    return out + [""]


def _machine_section(doc: dict[str, Any]) -> list[str]:
    m = doc["machine"]
    out = ["## Machine", ""]
    out.append(f"- governor: {m.get('governor') or 'unknown (no cpufreq exposed)'}")
    for key in ("timestamp", "cpu", "arch", "cores", "physical_cores", "os", "python",
                "machine_class", "busy_before", "busy_after", "pi"):
        v = m.get(key)
        if isinstance(v, dict):
            v = ", ".join(f"{k} {x}" for k, x in v.items() if x is not None) or None
        if v is not None:
            out.append(f"- {key}: {v}")
    out.append("- versions: " + ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items()))
    return out + [""]


def _method_section(doc: dict[str, Any]) -> list[str]:
    me = doc["method"]
    budget = f"; a time budget of {me['time_budget']} s per case" if me.get("time_budget") \
        else ""
    return ["## How it was measured", "",
            "- Each (artifact, runtime, threads) case runs in a fresh Python process "
            "(`benchmarks/runner.py`), so memory and thread settings are its own.",
            "- load = `edge.runtimes.open_runtime` (read + allocate); first = the first "
            f"`run()`; then {me['warmup']} untimed warm-up runs; then at least {me['runs']} "
            f"timed runs and at least {me['min_seconds']} s{budget}, each timed with "
            "`time.perf_counter()` (batch 1, one random image quantized like real input).",
            f"- Keras rows stop after {me['keras_budget']} s of timed runs.",
            "- Percentiles: numpy `linear` interpolation (Hyndman-Fan type 7); std is the "
            "population std; FPS/inf/s = 1000 / mean.",
            "- peak RSS = `ru_maxrss` of the case's process (Python + runtime + model).",
            "- GMAC/s = MACs per inference / p50; % of peak = that / best float32 numpy matmul "
            "(512..2048) at the same BLAS thread count, timed in this run; int8 kernels can "
            "pass 100% of a float32 peak.",
            f"- Accuracy: {me.get('accuracy_source') or 'no export_report.json found'}.",
            "- End-to-end: decode (`edge.images.load_rgb`), preprocess (`Classifier.prepare`), "
            "invoke (`Classifier.raw_outputs`), postprocess (`Manifest.read`: calibrate, "
            f"label) on {me.get('images_source') or 'no images'}; camera FPS = "
            f"`edge.camera.run_loop` over {me.get('frames')} frames of a 640x480 mp4v video "
            "made from those images (capture included).",
            ""]


def render(doc: dict[str, Any]) -> str:
    rows = doc["rows"]
    errors = [r for r in rows + doc.get("e2e", []) if r["status"] == "error"]
    title = doc.get("model") or "model"
    out = [f"# Latency benchmark: {title} ({doc.get('run_id') or 'no run id'})", "",
           f"*{doc.get('disclaimer', '')}* Trained on: {doc.get('trained_on', '?')}.", "",
           f"Produced by: `{doc.get('command', 'python benchmarks/latency.py')}`", ""]
    if doc.get("interrupted"):
        out += [f"**Interrupted: {doc['cases']['done']} of {doc['cases']['planned']} cases "
                "measured.**", ""]
    out += [f"> warning: {w}" for w in doc.get("warnings", [])]
    out += ["", "## Headline (batch 1, sorted by p50)", ""] + headline_table(rows)
    out += ["", "FPS = 1000 / mean latency. Accuracy is the export's parity accuracy for that "
            "exact file (sha256). The Pi 4 column is an **estimate** (formula below).", ""]
    out += _keras_section(rows)
    out += ["## All measurements (ms)", ""] + full_table(rows) + [""]
    if doc.get("e2e"):
        out += ["## End-to-end through the edge runner (ms per image)", "",
                "Each artifact at its fastest thread count from the table above.", ""]
        out += e2e_table(doc["e2e"]) + [""]
    cost = doc.get("cost") or {}
    if cost.get("model"):
        c = cost["model"]
        peaks = ", ".join(f"{k}t {v:.1f}" for k, v in (doc.get("peak_gmacs") or {}).items())
        out += ["## Model cost", "",
                f"- {c['params']:,} parameters, {c['macs'] / 1e6:.1f} M MACs per inference "
                f"(counted from {c['source']}).",
                f"- Measured float32 matmul peak (GMAC/s): {peaks or '-'}.", ""]
    out += _pi_section(doc) + _compare_section(doc)
    if errors:
        out += ["## Errors", ""] + [f"- {r['format']} / {r['runtime']} / {r['threads']}t: "
                                    f"{r['error']}" for r in errors] + [""]
    if doc.get("notes"):
        out += ["## Notes", ""] + [f"- {n}" for n in doc["notes"]] + [""]
    out += _machine_section(doc) + _method_section(doc)
    return "\n".join(out) + "\n"
