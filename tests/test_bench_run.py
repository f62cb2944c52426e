"""Real benchmark runs on the tiny export: every format, the JSON schema, error rows, Ctrl-C,
compare/regression marking through the CLI, and the MobileNetV2 reference at a small size."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks import latency, suite
from benchmarks.compare import compare_rows, verdict
from benchmarks.cost import count_model
from benchmarks.latency_report import E2E_KEYS, ROW_KEYS
from export.formats import FORMATS

TINY_MACS = 32 * 32 * 8 * 27 + 16 * 16 * 16 * 72 + 16  # conv 3->8 @32, conv 8->16 @16, dense 16->1


def _strict_json(path: Path) -> dict:
    def no_nan(name):
        raise AssertionError(f"{path}: non-standard JSON constant {name}")
    return json.loads(path.read_text(), parse_constant=no_nan)


def _quick(artifacts: Path, out: Path, *extra: str) -> list[str]:
    return ["--artifacts", str(artifacts), "--out", str(out), "--quick", "--no-progress",
            "--compare", "none", *extra]


@pytest.fixture(scope="session")
def quick_report(tiny_export, synthetic_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench"
    rc = latency.main(_quick(tiny_export, out, "--images", str(synthetic_dataset / "test")))
    return rc, out


def test_every_format_measured(quick_report, tiny_export):
    rc, out = quick_report
    assert rc == 0
    doc = _strict_json(out / "report.json")
    rows = {r["format"]: r for r in doc["rows"] if r["role"] == "model"}
    assert set(rows) == set(FORMATS)
    for fmt, r in rows.items():
        assert r["status"] == "ok", r["error"]
        assert r["runtime"] == FORMATS[fmt].runtime and r["threads"] == 1
        assert r["runs"] >= 20 and r["warmup"] == 2
        assert 0 < r["min_ms"] <= r["p50_ms"] <= r["p90_ms"] <= r["p95_ms"] <= r["p99_ms"] \
            <= r["max_ms"]
        assert r["load_ms"] > 0 and r["first_ms"] > 0 and r["peak_rss_mb"] > 10
        assert r["size_mb"] == pytest.approx((tiny_export / r["file"]).stat().st_size / 1e6)
        assert r["macs"] == TINY_MACS and r["gmacs"] > 0 and r["peak_gmacs"] > 0
        assert r["accuracy"] is not None  # joined from export_report.json by sha256
    export_rep = json.loads((tiny_export / "export_report.json").read_text())
    by_fmt = {x["format"]: x["parity"]["accuracy"] for x in export_rep["rows"]}
    assert all(rows[f]["accuracy"] == by_fmt[f] for f in rows)
    assert rows["tflite_int8"]["input_dtype"] == "int8"
    assert (out / "latency.png").stat().st_size > 1000


def test_report_schema(quick_report):
    _, out = quick_report
    doc = _strict_json(out / "report.json")
    for key in ("schema", "machine", "warnings", "method", "rows", "e2e", "peak_gmacs", "cost",
                "interrupted", "command", "trained_on", "disclaimer"):
        assert key in doc
    assert doc["rows"] and all(tuple(r) == ROW_KEYS for r in doc["rows"])
    assert doc["e2e"] and all(tuple(r) == E2E_KEYS for r in doc["e2e"])
    assert all(r["status"] in ("ok", "error") for r in doc["rows"] + doc["e2e"])
    assert doc["interrupted"] is False and doc["cases"]["done"] == doc["cases"]["planned"]
    assert doc["cost"]["model"]["macs"] == TINY_MACS


def test_end_to_end_and_markdown(quick_report):
    _, out = quick_report
    doc = _strict_json(out / "report.json")
    assert {r["format"] for r in doc["e2e"]} == set(FORMATS)
    for r in doc["e2e"]:
        assert r["status"] == "ok", r["error"]
        assert r["images"] == 8 and r["bad_images"] == 0
        assert r["total_p50_ms"] >= r["invoke_p50_ms"] > 0 and r["decode_p50_ms"] > 0
        assert r["camera_frames"] == 16 and r["camera_fps"] > 0
    md = (out / "report.md").read_text()
    assert ("| format | runtime | threads | p50 ms | p90 ms | FPS | size | accuracy | "
            "Pi 4 est. ms |") in md
    assert "not a medical device" in md and "## Machine" in md and "## How it was measured" in md
    head = md.split("## Headline")[1].split("\n\n")[1].splitlines()[2:]
    p50s = [float(line.split("|")[4]) for line in head]
    assert p50s == sorted(p50s) and len(p50s) == len(FORMATS)


def test_keras_baseline_rows(tiny_export, tiny_model_path, tmp_path):
    rc = latency.main(_quick(tiny_export, tmp_path / "o", "--no-e2e", "--formats", "tflite_int8",
                             "--keras", str(tiny_model_path), "--keras-budget", "0.5"))
    doc = _strict_json(tmp_path / "o" / "report.json")
    rows = {r["runtime"]: r for r in doc["rows"]}
    assert rc == 0 and set(rows) == {"litert", "keras-predict", "keras-call"}
    keras_acc = json.loads((tiny_export / "export_report.json").read_text())["keras_accuracy"]
    for name in ("keras-predict", "keras-call"):
        r = rows[name]
        assert r["status"] == "ok" and r["role"] == "baseline" and r["format"] == "keras", r
        assert r["runs"] >= 10 and r["p50_ms"] > 0 and r["accuracy"] == keras_acc
        assert r["pi4_est_ms"] is None
    assert rows["keras-predict"]["p50_ms"] > rows["litert"]["p50_ms"]
    assert "What the export gains over Keras" in (tmp_path / "o" / "report.md").read_text()


def test_cost_counts_agree_with_hand_count(tiny_export):
    for fmt in FORMATS.values():
        c = count_model(tiny_export / fmt.filename)
        assert c.macs == TINY_MACS, fmt.name
        assert 1400 <= c.params <= 1409  # 1409 with biases; ONNX keeps the dense bias in an Add


def test_broken_and_missing_formats_become_error_rows(tiny_export, synthetic_dataset, tmp_path,
                                                     capsys):
    art, images = tmp_path / "export", tmp_path / "images"
    shutil.copytree(tiny_export, art)
    (art / "model_fp16.tflite").write_bytes(b"not a flatbuffer at all" * 40)
    (art / "model_int8.onnx").unlink()
    images.mkdir()
    for p in sorted((synthetic_dataset / "test" / "malignant").glob("*.jpg"))[:3]:
        shutil.copy(p, images / p.name)
    (images / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    args = _quick(art, tmp_path / "out", "--images", str(images), "--e2e-images", "4")
    rc = latency.main([a for a in args if a != "--no-progress"])
    assert rc == 0
    progress = capsys.readouterr().err
    doc = _strict_json(tmp_path / "out" / "report.json")
    assert f"{doc['cases']['planned']}/{doc['cases']['planned']}" in progress  # the bar ended
    e2e = {r["format"]: r for r in doc["e2e"]}
    assert e2e["tflite_fp16"]["status"] == "error" and e2e["onnx_int8"]["status"] == "error"
    assert e2e["tflite_int8"]["images"] == 3 and e2e["tflite_int8"]["bad_images"] == 1
    rows = {r["format"]: r for r in doc["rows"]}
    fp16 = rows["tflite_fp16"]
    assert fp16["status"] == "error" and "model_fp16.tflite" in fp16["error"]
    assert rows["tflite_fp16"]["accuracy"] is None  # hash changed: no stale accuracy
    assert rows["onnx_int8"]["status"] == "error" and "missing" in rows["onnx_int8"]["error"]
    assert all(rows[f]["status"] == "ok" for f in ("tflite_fp32", "tflite_int8", "onnx_fp32"))
    assert "## Errors" in (tmp_path / "out" / "report.md").read_text()


def test_missing_runtime_requested_is_an_error_row(tiny_export, tmp_path, monkeypatch):
    monkeypatch.setattr(suite, "installed_runtimes", lambda: {"litert"})
    rc = latency.main(_quick(tiny_export, tmp_path / "o", "--no-e2e", "--formats",
                             "tflite_fp32,onnx_fp32", "--runtimes", "litert,onnxruntime"))
    rows = {r["format"]: r for r in _strict_json(tmp_path / "o" / "report.json")["rows"]}
    assert rc == 0 and rows["tflite_fp32"]["status"] == "ok"
    assert "pip install onnxruntime" in rows["onnx_fp32"]["error"]


def test_ctrl_c_writes_partial_report(tiny_export, tmp_path, monkeypatch):
    real, calls = suite.run_child, []

    def interrupting(kind, spec, threads=None, timeout=600.0):
        calls.append(kind)
        if sum(k == "runtime" for k in calls) == 3:
            raise KeyboardInterrupt
        return real(kind, spec, threads, timeout)

    monkeypatch.setattr(suite, "run_child", interrupting)
    rc = latency.main(_quick(tiny_export, tmp_path / "o", "--no-e2e"))
    assert rc == 130
    doc = _strict_json(tmp_path / "o" / "report.json")
    assert doc["interrupted"] is True and doc["cases"]["done"] < doc["cases"]["planned"]
    assert len([r for r in doc["rows"] if r["status"] == "ok"]) == 2
    assert "Interrupted" in (tmp_path / "o" / "report.md").read_text()


def test_compare_marks_regressions_through_cli(quick_report, tmp_path):
    _, out = quick_report
    doc = json.loads((out / "report.json").read_text())
    fast, slow = dict(doc), dict(doc)
    fast["rows"] = [dict(r, p50_ms=r["p50_ms"] / 20) for r in doc["rows"] if r["p50_ms"]]
    slow["rows"] = [dict(r, p50_ms=r["p50_ms"] * 20) for r in doc["rows"] if r["p50_ms"]]
    (tmp_path / "fast.json").write_text(json.dumps(fast))
    (tmp_path / "slow.json").write_text(json.dumps(slow))
    def run(old: str, out_dir: str) -> int:
        return latency.main(["--artifacts", doc["artifacts"], "--out", str(tmp_path / out_dir),
                             "--quick", "--no-progress", "--compare", str(tmp_path / old),
                             "--fail-on-regression", "--formats", "tflite_int8,onnx_fp32",
                             "--no-e2e", "--floor-ms", "0"])

    rc = run("fast.json", "a")  # the old report was 20x faster: everything regressed
    new = _strict_json(tmp_path / "a" / "report.json")["compare"]
    verdicts = {(m["format"], m["verdict"]) for m in new["matches"]}
    assert rc == 1 and new["regressions"] == 2
    assert ("tflite_int8", "regression") in verdicts and ("onnx_fp32", "regression") in verdicts
    assert ("tflite_fp16", "missing") in verdicts  # only in the old report
    assert "**REGRESSION**" in (tmp_path / "a" / "report.md").read_text()
    rc = run("slow.json", "b")  # the old report was 20x slower: everything improved
    new = _strict_json(tmp_path / "b" / "report.json")["compare"]
    assert rc == 0 and new["regressions"] == 0
    assert {m["verdict"] for m in new["matches"] if m["format"] == "tflite_int8"} == {"improved"}


def test_compare_rules():
    assert verdict(1.0, 1.09, 0.10, 0.0) == "same"
    assert verdict(1.0, 1.11, 0.10, 0.0) == "regression"
    assert verdict(0.010, 0.015, 0.10, 0.02) == "same"  # 50% slower but under the ms floor
    assert verdict(1.0, 0.5, 0.10, 0.02) == "improved"
    old = {"rows": [{"role": "model", "format": "f", "runtime": "r", "threads": 1, "status": "ok",
                     "p50_ms": 1.0, "sha256": "a"}], "machine": {"cpu": "X"}}
    new = [dict(old["rows"][0], p50_ms=1.5, sha256="b"),
           dict(old["rows"][0], threads=2, p50_ms=1.0)]
    c = compare_rows(new, old, 0.10, 0.02)
    by = {m["threads"]: m for m in c["matches"]}
    assert by[1]["verdict"] == "regression" and by[1]["ratio"] == pytest.approx(1.5)
    assert by[1]["file_changed"] and c["warnings"]
    assert by[2]["verdict"] == "new" and c["regressions"] == 1


def test_bad_inputs_exit_2_with_one_line(tmp_path, tiny_export, capsys):
    assert latency.main(["--artifacts", str(tmp_path / "nope"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nope" in err and "--artifacts" in err
    assert latency.main(_quick(tiny_export, tmp_path / "o", "--formats", "tflite_fp99")) == 2
    assert "tflite_fp99" in capsys.readouterr().err
    rc = latency.main(["--artifacts", str(tiny_export), "--compare", str(tmp_path / "old.json")])
    assert rc == 2 and "old.json" in capsys.readouterr().err


@pytest.mark.slow
def test_reference_model_gives_pi4_estimates(tiny_export, tmp_path, monkeypatch):
    monkeypatch.setenv("SKINLESION_BENCH_CACHE", str(tmp_path / "cache"))
    cfg = suite.BenchConfig(artifacts=tiny_export, formats=["tflite_fp32", "tflite_int8",
                            "onnx_fp32"], threads=[1], runs=20, warmup=2, min_seconds=0.0,
                            reference_size=64, peak_seconds=0.05)
    res = suite.run_suite(cfg, progress=False)
    assert res.reference and res.reference["size"] == 64 and not res.reference["cached"]
    refs = {r["format"]: r for r in res.rows if r["role"] == "reference"}
    assert set(refs) == {"tflite_fp32", "tflite_int8"} and all(r["status"] == "ok"
                                                                for r in refs.values())
    # MobileNetV2-1.0 is 300 M MACs at 224 (Sandler et al. 2018); every layer scales with area
    assert res.costs["reference"]["macs"] == pytest.approx(300e6 * (64 / 224) ** 2, rel=0.01)
    for r in (r for r in res.rows if r["role"] == "model"):
        ref = refs["tflite_int8" if r["format"] == "tflite_int8" else "tflite_fp32"]
        want = r["p50_ms"] / ref["p50_ms"] * (17.0 if r["format"] == "tflite_int8" else 46.0)
        assert r["pi4_est_ms"] == pytest.approx(want)
    again = suite.run_child("reference", {"size": 64})
    assert again["cached"] is True and again["dir"] == res.reference["dir"]
