"""Export report: one row per format (size, load time, parity figures, status) as JSON and Markdown.

Both files are written atomically beside the artifacts. The Markdown is a view of the JSON
(``report_markdown(dict)``); ``format_table`` is what the CLI prints. Scores print cut, never
rounded up (``core.digits``); ``python export/convert.py --report-only models`` re-renders the Markdown of an
export folder from its JSON.

Example:
    >>> row = {"format": "tflite_int8", "file": "model_int8.tflite", "bytes": 4205920, "ok": True,
    ...        "seconds": 168.05, "load_ms": 6.67, "status": "ok", "parity": {
    ...            "threshold": 0.16827, "accuracy": 0.85308, "roc_auc": 0.95730,
    ...            "sensitivity": 0.96785, "specificity": 0.76203, "agreement": 0.99368}}
    >>> table_rows([row])[0][2:11]
    ['4.21 MB', '168.1', '6.7', '0.1682', '0.8530', '0.9573', '0.9678', '0.7620', '99.36%']
"""
from __future__ import annotations

import dataclasses
import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from core import first_line
from core.atomic import atomic_write_text
from core.digits import down, pct
from edge.manifest import Manifest

REPORT_JSON = "export_report.json"
REPORT_MD = "export_report.md"
COLUMNS = ("format", "file", "size", "export s", "load ms", "threshold", "accuracy", "AUC", "sens.",
           "spec.", "agree", "agree (own thr)", "max |dp|", "mean |dp|", "status")


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} KB" if n else "-"


def _f(v: Any, fmt: str = ".4f", cut: bool = True) -> str:
    """A table cell: '-' for a missing value; scores (".Nf", ".N%") cut by ``core.digits``,
    times (``cut=False``) and other formats as ``format`` writes them."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if cut and fmt[-1] in "f%" and fmt[1:-1].isdigit():
        return (down if fmt[-1] == "f" else pct)(v, int(fmt[1:-1]))
    return format(v, fmt)


def table_rows(rows: list[dict]) -> list[list[str]]:
    """The table's cells for the report's ``rows`` (``FormatResult.to_row()`` dicts)."""
    out = []
    for r in rows:
        p = r.get("parity") or {}
        op = r.get("operating") or {}
        thr = op.get("threshold", p.get("threshold"))
        load = r.get("load_ms") if r.get("ok") else None
        out.append([r["format"], r.get("file") or "-", _size(r.get("bytes") or 0),
                    f"{r.get('seconds') or 0:.1f}", _f(load, ".1f", cut=False),
                    _f(thr), _f(p.get("accuracy")), _f(p.get("roc_auc")), _f(p.get("sensitivity")),
                    _f(p.get("specificity")), _f(p.get("agreement"), ".2%"),
                    _f(p.get("decision_agreement"), ".2%"),
                    _f(p.get("max_abs_diff"), ".1e"), _f(p.get("mean_abs_diff"), ".1e"),
                    r.get("status", "")])
    return out


GUARD_COLUMNS = ("format", "guard agree", "max score diff", "test pass", "non-lesion reject")


def guard_table(rows: list[dict]) -> str:
    """Per-format guard figures (parity with a guard): decision agreement with Keras on the
    test + non-lesion images, the file's pass rate on test lesions, rejection of non-lesions."""
    lines = ["| " + " | ".join(GUARD_COLUMNS) + " |", "|" + "---|" * len(GUARD_COLUMNS)]
    for r in rows:
        p = r.get("parity") or {}
        if p.get("guard_agreement") is None:  # no guard checked
            continue
        lines.append(f"| {r['format']} | {_f(p['guard_agreement'], '.2%')} | "
                     f"{_f(p.get('guard_max_abs_diff'), '.3f')} | "
                     f"{_f(p.get('guard_test_pass'), '.2%')} | "
                     f"{_f(p.get('guard_nonlesion_reject'), '.2%')} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def guard_markdown(guard: dict | None, quality: dict, rows: list[dict] = ()) -> list[str]:
    """The report's guard and quality-gate section, from the manifest's ``guard`` and ``quality``
    as dicts (``dataclasses.asdict``); empty when neither is on."""
    g, q = guard, quality
    lines = []
    if q.get("enabled"):
        lines += ["## Quality gate", "",
                  f"- unusable when: shorter side < {q['min_side']} px, mean luma < "
                  f"{q['min_brightness']:g} or > {q['max_brightness']:g}, more than "
                  f"{pct(q['max_flat_fraction'], 0)} of pixels within {q['flat_tolerance']:g} grey "
                  f"levels of the median, Laplacian variance < {q['min_sharpness']:g}.",
                  f"- fitted on: {q['fitted_on']}", ""]
    if g is None:
        return lines
    st = g.get("stats") or {}
    val = ", ".join(f"{k} {pct(v)}" for k, v in st.get("val_pass", {}).items() if v is not None)
    rej = st.get("nonlesion_reject", {})
    lines += ["## Not-a-lesion guard", "",
              f"- method {g['method']}, output index {g['index']}, threshold {g['threshold']:g}: "
              f"{g['rule']}.",
              f"- fitted on: {g['fitted_on']}.",
              f"- Keras model: validation pass rate {val}"
              + (f"; rejects {pct(rej['all'])} of {st.get('nonlesion_set', 'non-lesion images')}"
                 f" ({', '.join(f'{k} {pct(v, 0)}' for k, v in rej.items() if k != 'all')})"
                 if rej else "") + ".", ""]
    table = guard_table(list(rows))
    return lines + ([table, ""] if table else [])


def format_table(rows: list[dict]) -> str:
    """A Markdown table of the report's rows (also readable in a terminal)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(rows)]
    return "\n".join(lines)


def report_dict(results, manifest: Manifest, extra: dict | None = None) -> dict[str, Any]:
    """The JSON report; ``extra`` adds how it was made (e.g. ``command``, ``calibration_images``)."""
    checked = [r.parity for r in results if r.parity is not None]
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": manifest.model_name, "run_id": manifest.run_id,
        "input": [manifest.input_height, manifest.input_width, manifest.channels],
        "threshold": manifest.threshold, "temperature": manifest.temperature,
        "n_test": checked[0].n if checked else 0,
        "keras_accuracy": checked[0].keras_accuracy if checked else None,
        "evaluation_metrics": manifest.metrics,
        "passed": all(r.passed for r in results),
        "rows": [r.to_row() for r in results],
        "guard": dataclasses.asdict(manifest.guard) if manifest.guard else None,
        "quality": dataclasses.asdict(manifest.quality),
        "trained_on": manifest.trained_on, "disclaimer": manifest.disclaimer,
        **(extra or {}),
    }


def report_markdown(d: dict[str, Any]) -> str:
    """The Markdown report, a view of the JSON one (``report_dict``, or ``export_report.json``)."""
    rows = d["rows"]
    failed = [r for r in rows if not r.get("passed")]
    rule = next((r["operating"]["rule"] for r in rows if r.get("operating")), "")
    h, w = d["input"][:2]
    lines = [
        f"# Export report: {d.get('model') or 'model'} ({d.get('run_id') or 'no run id'})",
        "",
        f"- Input {h}x{w} RGB, pixels 0..255 "
        f"(the model scales them); Keras model threshold {down(d['threshold'])} on the "
        f"calibrated probability (temperature {down(d['temperature'], 3)}).",
        *([f"- Each file's threshold: {rule}."] if rule else []),
        f"- Parity on {d['n_test']} test images against the Keras model"
        + (f" (Keras accuracy {down(d['keras_accuracy'])})." if d["keras_accuracy"] is not None
           else " was not run."),
        "- |dp| is the absolute difference of the raw sigmoid output from Keras; agree is the "
        "share of images with the same label as the Keras model, both at the Keras threshold "
        "(the format's effect; checked against the tolerance); agree (own thr) puts the file "
        "at its own threshold (the labels a user of the file sees).",
        "",
        format_table(rows),
        "",
    ]
    lines += guard_markdown(d.get("guard"), d.get("quality") or {}, rows)
    if failed:
        lines += ["## Problems", ""] + [f"- **{r['format']}**: {r.get('error') or r.get('status')}"
                                        for r in failed]
        lines.append("")
    lines += [f"Trained on: {d['trained_on']}.", "", f"*{d['disclaimer']}*", ""]
    return "\n".join(lines)


def write_reports(out_dir: Path, results, manifest: Manifest,
                  extra: dict | None = None) -> tuple[Path, Path]:
    """Write ``export_report.json`` and ``export_report.md`` atomically; return their paths."""
    out_dir = Path(out_dir)
    d = report_dict(results, manifest, extra)
    text = json.dumps(d, indent=2, default=str)
    j = atomic_write_text(out_dir / REPORT_JSON, text)
    m = atomic_write_text(out_dir / REPORT_MD, report_markdown(json.loads(text)))
    return j, m


def rerender(out_dir: Path) -> Path:
    """Write ``export_report.md`` again from ``export_report.json`` in ``out_dir`` (after a change
    of how reports print; no number is measured again)."""
    src = Path(out_dir) / REPORT_JSON
    try:
        d = json.loads(src.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{src}: {first_line(e)}; pass the folder convert.py wrote") from None
    return atomic_write_text(Path(out_dir) / REPORT_MD, report_markdown(d))
