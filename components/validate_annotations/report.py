"""What a person reads (HTML), what machines read (JSON), and the run summary in MLflow."""

from __future__ import annotations

import html
from collections import Counter
from pathlib import Path
from typing import Any

from components.validate_annotations.checks import Finding

REPORT_JSON = "validation_report.json"
REPORT_HTML = "validation_report.html"
QUARANTINE_JSON = "quarantine.json"
_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}
_STYLE = (
    "body{font-family:sans-serif;margin:2em}td,th{border:1px solid #ccc;padding:4px;text-align:left}"
    "table{border-collapse:collapse;margin-bottom:1.5em}.error{color:#b00}.warning{color:#a60}"
)


def quarantine_list(findings: list[Finding], quarantined: list[str]) -> list[dict[str, Any]]:
    """Each quarantined input file with every error that put it there (and the other findings)."""
    reasons: dict[str, list[dict[str, Any]]] = {q: [] for q in quarantined}
    for f in findings:
        if f.input_file in reasons:
            reasons[f.input_file].append(
                {"code": f.code, "severity": f.severity, "file": f.file, "box_index": f.box_index, "message": f.message}
            )
    return [
        {"file": q, "codes": sorted({r["code"] for r in rs if r["severity"] == "error"}), "reasons": rs}
        for q, rs in reasons.items()
    ]


def dropped_boxes(
    findings: list[Finding], quarantined: set[str], raw_boxes: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Every box left out of an accepted image by a box-level error: file, box, code, label as typed."""
    out, seen = [], set()
    for f in findings:
        if not f.drops_box or f.input_file in quarantined or (f.input_file, f.box_index) in seen:
            continue
        seen.add((f.input_file, f.box_index))
        raw = next((b for b in raw_boxes.get(str(f.input_file), []) if int(b["box_index"]) == f.box_index), {})
        out.append(
            {
                "file": f.input_file,
                "annotation": f.file,
                "box_index": f.box_index,
                "code": f.code,
                "label": raw.get("label_raw"),
                "message": f.message,
            }
        )
    return out


def drop_summary(report: dict[str, Any]) -> str:
    """What dropped the boxes, most frequent first, and for unknown labels which ones were typed,
    so that a taxonomy mismatch reads as one and says what to change."""
    codes = sorted(report["dropped_boxes_by_code"].items(), key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{code} {n}" for code, n in codes[:3])
    unknown = Counter(str(d["label"]) for d in report["dropped_boxes"] if d["code"] == "LABEL_UNKNOWN")
    if unknown:
        typed = ", ".join(f"{label!r} ({n})" for label, n in unknown.most_common(5))
        text += (
            f"; labels typed but not in task.classes: {typed}: declare them in task.classes or "
            "task.aliases (or pass the right --task)"
        )
    return text


def counts(findings: list[Finding]) -> dict[str, Any]:
    return {
        "by_code": dict(Counter(x.code for x in findings)),
        "by_severity": dict(Counter(x.severity for x in findings)),
        "by_code_severity": dict(Counter(f"{x.code}/{x.severity}" for x in findings)),
    }


def _cell(value: Any) -> str:
    return f"<td>{html.escape('' if value is None else str(value))}</td>"


def render_html(report: dict[str, Any], findings: list[Finding], quarantine: list[dict[str, Any]]) -> str:
    """One page: the verdict, counts per code and severity, the quarantine list, every finding."""
    code_rows = "".join(
        f"<tr>{_cell(k.split('/')[1])}{_cell(k.split('/')[0])}{_cell(v)}</tr>"
        for k, v in sorted(
            report["by_code_severity"].items(), key=lambda kv: (_SEVERITY_ORDER.get(kv[0].split("/")[1], 9), kv[0])
        )
    )
    q_rows = "".join(
        f"<tr>{_cell(q['file'])}{_cell(', '.join(q['codes']))}"
        f"{_cell('; '.join(r['message'] for r in q['reasons'] if r['severity'] == 'error'))}</tr>"
        for q in quarantine
    )
    ordered = sorted(findings, key=lambda x: (_SEVERITY_ORDER.get(x.severity, 9), x.file, x.code))
    rows = "".join(
        f"<tr class={x.severity}>{_cell(x.severity)}{_cell(x.code)}{_cell(x.file)}"
        f"{_cell(x.box_index)}{_cell(x.message)}</tr>"
        for x in ordered
    )
    drop_rows = "".join(
        f"<tr>{_cell(d['file'])}{_cell(d['box_index'])}{_cell(d['code'])}{_cell(d['label'])}</tr>"
        for d in report["dropped_boxes"]
    )
    contract = report.get("contract") or {}
    docs = (
        (
            '<p>Data contract (Great Expectations): <a href="data_docs/index.html">Data Docs</a> — '
            + ", ".join(f"{t}: {'passed' if s['success'] else 'FAILED'}" for t, s in contract.items())
            + "</p>"
        )
        if contract
        else ""
    )
    return (
        f"<!doctype html><meta charset=utf-8><title>LesionOps validation report</title><style>{_STYLE}</style>"
        f"<h1>Annotation validation</h1><p>{report['n_input_files']} input files: {report['n_images']} images "
        f"and {report['n_orphan_annotations']} annotations without an image. {report['n_accepted_images']} "
        f"images accepted, {report['n_quarantined']} files quarantined ({report['quarantine_share']:.1%}; "
        f"limit {report['max_quarantine_fraction']:.0%}), {report['n_accepted_boxes']} boxes accepted, "
        f"{report['n_dropped_boxes']} dropped ({report['dropped_box_share']:.1%}; limit "
        f"{report['max_dropped_box_fraction']:.0%}), {report['n_images_not_for_detection']} images kept out of "
        f"detector training, {report['n_empty_annotations']} empty annotations; {_groups_line(report)}</p>{docs}"
        "<h2>Findings per code</h2><table><tr><th>severity</th><th>code</th><th>count</th></tr>"
        f"{code_rows}</table><h2>Quarantined files</h2>"
        f"<table><tr><th>file</th><th>codes</th><th>why</th></tr>{q_rows}</table>"
        "<h2>Dropped boxes</h2><table><tr><th>file</th><th>box</th><th>code</th><th>label</th></tr>"
        f"{drop_rows}</table>"
        "<h2>All findings</h2><table><tr><th>severity</th><th>code</th><th>file</th><th>box</th>"
        f"<th>message</th></tr>{rows}</table>"
    )


def _groups_line(report: dict[str, Any]) -> str:
    g = report["split_groups"]
    return (
        f"{g['n_groups']} split groups, {g['n_merged_groups']} of them joining several patients "
        f"(byte copies or near-duplicates; {g['n_images_in_merged_groups']} images)"
    )


def log_to_mlflow(report: dict[str, Any], out_dir: Path, tracking: Any) -> str:
    """Counts per code/severity as metrics and the reports as artifacts, in the task's experiment."""
    import mlflow

    from components.common.tracking import setup

    setup(tracking)
    metrics = {
        k: float(report[k])
        for k in (
            "n_images",
            "n_accepted_images",
            "n_quarantined",
            "n_accepted_boxes",
            "quarantine_share",
            "n_dropped_boxes",
            "dropped_box_share",
            "n_images_not_for_detection",
            "n_empty_annotations",
        )
    }
    metrics["n_merged_split_groups"] = float(report["split_groups"]["n_merged_groups"])
    metrics.update({f"dropped_boxes/{k}": float(v) for k, v in report["dropped_boxes_by_code"].items()})
    metrics.update({f"findings/{k}": float(v) for k, v in report["by_code_severity"].items()})
    metrics.update({f"severity/{k}": float(v) for k, v in report["by_severity"].items()})
    with mlflow.start_run(run_name="validate_annotations") as run:
        mlflow.set_tags({"stage": "validate_annotations", "passed": str(report["passed"]).lower()})
        mlflow.log_metrics(metrics)
        for name in (REPORT_JSON, REPORT_HTML, QUARANTINE_JSON):
            mlflow.log_artifact(str(out_dir / name))
        docs = out_dir / "data_docs"
        if docs.is_dir():
            mlflow.log_artifacts(str(docs), artifact_path="data_docs")
        return str(run.info.run_id)
