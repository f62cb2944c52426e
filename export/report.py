"""Export report: one row per format (size, load time, parity figures, status) as Markdown and JSON.

Both files are written atomically beside the artifacts; ``format_table`` is what the CLI prints.

Example:
    >>> print(format_table(results))        # doctest: +SKIP
    | format | file | size | ...
"""
from __future__ import annotations

import dataclasses
import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from core.atomic import atomic_write_text
from edge.manifest import Manifest

REPORT_JSON = "export_report.json"
REPORT_MD = "export_report.md"
COLUMNS = ("format", "file", "size", "export s", "load ms", "threshold", "accuracy", "AUC", "sens.",
           "spec.", "agree", "agree (own thr)", "max |dp|", "mean |dp|", "status")


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} KB" if n else "-"


def _f(v: Any, fmt: str = ".4f") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def table_rows(results) -> list[list[str]]:
    rows = []
    for r in results:
        p = r.parity
        thr = r.threshold if r.threshold is not None else (p.threshold if p else None)
        rows.append([r.name, r.path.name if r.path else "-", _size(r.bytes), f"{r.seconds:.1f}",
                     _f(r.load_ms if r.ok else None, ".1f"), _f(thr),
                     _f(p and p.accuracy), _f(p and p.roc_auc), _f(p and p.sensitivity),
                     _f(p and p.specificity), _f(p and p.agreement, ".2%"),
                     _f(p and p.decision_agreement, ".2%"),
                     _f(p and p.max_abs_diff, ".1e"), _f(p and p.mean_abs_diff, ".1e"),
                     r.status])
    return rows


GUARD_COLUMNS = ("format", "guard agree", "max score diff", "test pass", "non-lesion reject")


def guard_table(results) -> str:
    """Per-format guard figures (parity with a guard): decision agreement with Keras on the
    test + non-lesion images, the file's pass rate on test lesions, rejection of non-lesions."""
    lines = ["| " + " | ".join(GUARD_COLUMNS) + " |", "|" + "---|" * len(GUARD_COLUMNS)]
    for r in results:
        p = r.parity
        if p is None or p.guard_agreement != p.guard_agreement:  # NaN: no guard checked
            continue
        lines.append(f"| {r.name} | {_f(p.guard_agreement, '.2%')} | "
                     f"{_f(p.guard_max_abs_diff, '.3f')} | {_f(p.guard_test_pass, '.2%')} | "
                     f"{_f(p.guard_nonlesion_reject, '.2%')} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def guard_markdown(results, manifest: Manifest) -> list[str]:
    """The report's guard and quality-gate section (empty without a guard)."""
    g, q = manifest.guard, manifest.quality
    lines = []
    if q.enabled:
        lines += ["## Quality gate", "",
                  f"- unusable when: shorter side < {q.min_side} px, mean luma < "
                  f"{q.min_brightness:g} or > {q.max_brightness:g}, more than "
                  f"{q.max_flat_fraction:.0%} of pixels within {q.flat_tolerance:g} grey levels "
                  f"of the median, Laplacian variance < {q.min_sharpness:g}.",
                  f"- fitted on: {q.fitted_on}", ""]
    if g is None:
        return lines
    st = g.stats
    val = ", ".join(f"{k} {v:.2%}" for k, v in st.get("val_pass", {}).items() if v is not None)
    rej = st.get("nonlesion_reject", {})
    lines += ["## Not-a-lesion guard", "",
              f"- method {g.method}, output index {g.index}, threshold {g.threshold:g}: {g.rule}.",
              f"- fitted on: {g.fitted_on}.",
              f"- Keras model: validation pass rate {val}"
              + (f"; rejects {rej['all']:.2%} of {st.get('nonlesion_set', 'non-lesion images')}"
                 f" ({', '.join(f'{k} {v:.0%}' for k, v in rej.items() if k != 'all')})"
                 if rej else "") + ".", ""]
    table = guard_table(results)
    return lines + ([table, ""] if table else [])


def _own_rule(results) -> str:
    return next((r.operating.rule for r in results if r.operating is not None), "")


def format_table(results) -> str:
    """A Markdown table of the results (also readable in a terminal)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(results)]
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


def report_markdown(results, manifest: Manifest) -> str:
    d = report_dict(results, manifest)
    failed = [r for r in results if not r.passed]
    lines = [
        f"# Export report: {manifest.model_name or 'model'} ({manifest.run_id or 'no run id'})",
        "",
        f"- Input {manifest.input_height}x{manifest.input_width} RGB, pixels 0..255 "
        f"(the model scales them); Keras model threshold {manifest.threshold:.4f} on the "
        f"calibrated probability (temperature {manifest.temperature:.3f}).",
        *([f"- Each file's threshold: {rule}."] if (rule := _own_rule(results)) else []),
        f"- Parity on {d['n_test']} test images against the Keras model"
        + (f" (Keras accuracy {d['keras_accuracy']:.4f})." if d["keras_accuracy"] is not None
           else " was not run."),
        "- |dp| is the absolute difference of the raw sigmoid output from Keras; agree is the "
        "share of images with the same label as the Keras model, both at the Keras threshold "
        "(the format's effect; checked against the tolerance); agree (own thr) puts the file "
        "at its own threshold (the labels a user of the file sees).",
        "",
        format_table(results),
        "",
    ]
    lines += guard_markdown(results, manifest)
    if failed:
        lines += ["## Problems", ""] + [f"- **{r.name}**: {r.error or r.status}" for r in failed]
        lines.append("")
    lines += [f"Trained on: {manifest.trained_on}.", "", f"*{manifest.disclaimer}*", ""]
    return "\n".join(lines)


def write_reports(out_dir: Path, results, manifest: Manifest,
                  extra: dict | None = None) -> tuple[Path, Path]:
    """Write ``export_report.json`` and ``export_report.md`` atomically; return their paths."""
    out_dir = Path(out_dir)
    j = atomic_write_text(out_dir / REPORT_JSON,
                          json.dumps(report_dict(results, manifest, extra), indent=2, default=str))
    m = atomic_write_text(out_dir / REPORT_MD, report_markdown(results, manifest))
    return j, m
