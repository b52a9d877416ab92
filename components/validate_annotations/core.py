"""Validate the manifest: findings per image and box, a quarantine list, and the accepted table.

The user's files are never moved or rewritten; quarantine is a list in the report, and the
accepted table is what downstream stages read.
"""

from __future__ import annotations

import html
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from components.common.errors import DataError
from components.common.io import records, write_json, write_parquet
from components.common.task import TaskConfig
from components.validate_annotations.checks import (
    ERROR,
    Finding,
    ValidateConfig,
    check_box,
    check_duplicates,
    check_image,
)

ACCEPTED = "accepted.parquet"
REPORT_JSON = "validation_report.json"
REPORT_HTML = "validation_report.html"


def _validate_image(img: dict[str, Any], boxes: list[dict[str, Any]], task: TaskConfig,
                    cfg: ValidateConfig) -> tuple[list[Finding], list[dict[str, Any]]]:
    findings = check_image(img, task, cfg)
    clean: list[dict[str, Any]] = []
    for box in boxes:
        box_findings, kept = check_box(box, img, task, cfg)
        findings.extend(box_findings)
        if kept is not None:
            clean.append(kept)
    dup_findings, clean = check_duplicates(clean, img.get("annotation_path") or img["rel_path"], cfg)
    findings.extend(dup_findings)
    if task.sample == "patches" and img.get("annotation_path") and not boxes:
        findings.append(Finding("ANNOTATION_EMPTY", "warning", img["annotation_path"], "no boxes drawn"))
    return findings, clean


def _html(report: dict[str, Any], findings: list[Finding]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(x.severity)}</td><td>{html.escape(x.code)}</td>"
        f"<td>{html.escape(x.file)}</td><td>{'' if x.box_index is None else x.box_index}</td>"
        f"<td>{html.escape(x.message)}</td></tr>" for x in findings)
    counts = "".join(f"<li>{html.escape(k)}: {v}</li>" for k, v in sorted(report["by_code"].items()))
    return (
        "<!doctype html><meta charset=utf-8><title>LesionOps validation report</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{border:1px solid #ccc;padding:4px}"
        "table{border-collapse:collapse}</style>"
        f"<h1>Annotation validation</h1><p>{report['n_images']} images, "
        f"{report['n_accepted_images']} accepted, {report['n_quarantined_images']} quarantined, "
        f"{report['n_accepted_boxes']} boxes accepted.</p><ul>{counts}</ul>"
        "<table><tr><th>severity</th><th>code</th><th>file</th><th>box</th><th>message</th></tr>"
        f"{rows}</table>"
    )


def run(cfg: ValidateConfig, task: TaskConfig, manifest_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Validate `manifest_dir/manifest.parquet`; write the accepted table and the reports."""
    path = manifest_dir / "manifest.parquet"
    if not path.is_file():
        raise DataError(path, "manifest not found; run ingest_data first")
    manifest = pd.read_parquet(path)
    images = records(manifest[manifest.row_type == "image"])
    boxes_by_image: dict[str, list[dict[str, Any]]] = {}
    for box in records(manifest[manifest.row_type == "box"]):
        boxes_by_image.setdefault(box["rel_path"], []).append(box)
    findings: list[Finding] = []
    accepted_rows: list[dict[str, Any]] = []
    quarantined: list[str] = []
    for img in images:
        img_findings, clean = _validate_image(img, boxes_by_image.get(img["rel_path"], []), task, cfg)
        findings.extend(img_findings)
        if any(x.severity == ERROR for x in img_findings):
            quarantined.append(img["rel_path"])
            continue
        labels = Counter(b["label"] for b in clean)
        accepted_rows.append({**img, "label": labels.most_common(1)[0][0] if labels else None})
        accepted_rows.extend(clean)
    accepted = pd.DataFrame(accepted_rows)
    n_boxes = int((accepted.row_type == "box").sum()) if len(accepted) else 0
    per_class = Counter(r["label"] for r in accepted_rows if r["row_type"] == "box")
    report = {
        "n_images": len(images), "n_accepted_images": len(images) - len(quarantined),
        "n_quarantined_images": len(quarantined), "n_accepted_boxes": n_boxes,
        "boxes_per_class": {c: per_class.get(c, 0) for c in task.classes},
        "by_code": dict(Counter(x.code for x in findings)),
        "by_severity": dict(Counter(x.severity for x in findings)),
        "quarantined": quarantined, "findings": [x.as_dict() for x in findings],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / REPORT_JSON, report)
    (out_dir / REPORT_HTML).write_text(_html(report, findings), encoding="utf-8")
    share = len(quarantined) / max(len(images), 1)
    if share > cfg.max_quarantine_fraction:
        raise DataError(manifest_dir, f"{share:.0%} of images quarantined (limit "
                        f"{cfg.max_quarantine_fraction:.0%}); see {out_dir / REPORT_HTML}")
    write_parquet(out_dir / ACCEPTED, accepted)
    return report
