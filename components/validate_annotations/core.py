"""Validate the manifest: findings per file, box and dataset, a quarantine list, the accepted table.

The user's files are never moved or rewritten; quarantine is a list in the report, and the
accepted table is what downstream stages read. Order: per-image checks → dataset-wide checks
(duplicates, patients, filenames) → the Great Expectations contract on what would be accepted →
class balance on what finally is. Every input file (image, or annotation without an image) ends
in exactly one of accepted or quarantined; `check_invariant` proves it before anything is written.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from components.common.errors import DataError, LesionOpsError
from components.common.io import records, write_json, write_parquet
from components.common.task import TaskConfig
from components.validate_annotations import dataset_checks as ds
from components.validate_annotations.checks import (
    ERROR,
    WARNING,
    Finding,
    check_box,
    check_duplicates,
    check_image,
)
from components.validate_annotations.config import ValidateConfig
from components.validate_annotations.report import (
    QUARANTINE_JSON,
    REPORT_HTML,
    REPORT_JSON,
    counts,
    quarantine_list,
    render_html,
)

ACCEPTED = "accepted.parquet"
Row = dict[str, Any]


class InvariantError(LesionOpsError):
    """An input file ended in neither or both of accepted/quarantined: a bug here, never the data's."""


@dataclass
class _State:
    """What the checks have decided so far."""

    images: list[Row]
    orphans: list[Row]
    clean_boxes: dict[str, list[Row]]
    findings: list[Finding]

    def quarantined(self) -> set[str]:
        return {f.input_file for f in self.findings if f.severity == ERROR and f.input_file}

    def accepted(self) -> list[Row]:
        q = self.quarantined()
        return [img for img in self.images if img["rel_path"] not in q]

    def accepted_boxes(self) -> list[Row]:
        return [b for img in self.accepted() for b in self.clean_boxes[img["rel_path"]]]


def _validate_image(img: Row, boxes: list[Row], task: TaskConfig,
                    cfg: ValidateConfig) -> tuple[list[Finding], list[Row]]:
    findings = check_image(img, task, cfg)
    clean: list[Row] = []
    if img.get("image_error"):  # no real size to check boxes against; the image is quarantined anyway
        boxes = []
    for box in sorted(boxes, key=lambda b: int(b["box_index"])):
        box_findings, kept = check_box(box, img, task, cfg)
        findings.extend(box_findings)
        if kept is not None:
            clean.append(kept)
    dup_findings, clean = check_duplicates(clean, img.get("annotation_path") or img["rel_path"], cfg)
    findings.extend(dup_findings)
    if (task.sample == "patches" and img.get("annotation_path") and not boxes
            and not img.get("annotation_error") and not img.get("image_error")):
        findings.append(Finding("ANNOTATION_EMPTY", WARNING, img["annotation_path"], "no boxes drawn"))
    return [replace(f, input_file=img["rel_path"]) for f in findings], clean


def _load(manifest_dir: Path) -> tuple[list[Row], dict[str, list[Row]], list[Row]]:
    path = manifest_dir / "manifest.parquet"
    if not path.is_file():
        raise DataError(path, "manifest not found; run ingest_data first")
    manifest = pd.read_parquet(path)
    images = sorted(records(manifest[manifest.row_type == "image"]), key=lambda r: r["rel_path"])
    boxes: dict[str, list[Row]] = {img["rel_path"]: [] for img in images}
    for box in records(manifest[manifest.row_type == "box"]):
        boxes.setdefault(box["rel_path"], []).append(box)
    orphans = sorted(records(manifest[manifest.row_type == "annotation"]), key=lambda r: r["rel_path"])
    return images, boxes, orphans


def _check_all(images: list[Row], boxes: dict[str, list[Row]], orphans: list[Row], task: TaskConfig,
               cfg: ValidateConfig) -> _State:
    state = _State(images, orphans, {}, [])
    for img in images:
        found, clean = _validate_image(img, boxes.get(img["rel_path"], []), task, cfg)
        state.findings += found
        state.clean_boxes[img["rel_path"]] = clean
    state.findings += ds.check_dataset(images, orphans, cfg)
    flagged = {(f.input_file, f.box_index) for f in state.findings if f.code == "BOX_SIZE_OUTLIER"}
    by_path = {img["rel_path"]: img for img in images}
    state.findings += [f for f in ds.box_size_outliers(state.accepted_boxes(), by_path, cfg)
                       if (f.input_file, f.box_index) not in flagged]
    return state


def _labelled(images: list[Row], clean_boxes: dict[str, list[Row]], task: TaskConfig) -> list[Row]:
    """Accepted image rows with their label: the majority box label, or the folder label."""
    out = []
    for img in images:
        labels = Counter(b["label"] for b in clean_boxes[img["rel_path"]])
        folder = task.normalize(str(img["image_label"])) if img.get("image_label") else None
        out.append({**img, "label": labels.most_common(1)[0][0] if labels else folder})
    return out


def check_invariant(inputs: list[str], accepted: set[str], quarantined: set[str]) -> None:
    """Every input file is in exactly one of accepted or quarantined."""
    both, seen = accepted & quarantined, set(inputs)
    neither = seen - accepted - quarantined
    unknown = (accepted | quarantined) - seen
    repeated = [p for p, n in Counter(inputs).items() if n > 1]
    if both or neither or unknown or repeated:
        raise InvariantError(f"accepted/quarantined partition broken: both={sorted(both)[:5]} "
                             f"neither={sorted(neither)[:5]} not-an-input={sorted(unknown)[:5]} "
                             f"listed twice={repeated[:5]}")


def _report(state: _State, accepted: list[Row], cfg: ValidateConfig, task: TaskConfig,
            contract: dict[str, Any]) -> dict[str, Any]:
    quarantined = sorted(state.quarantined())
    n_img_q = len(state.images) - len(accepted)
    boxes = state.accepted_boxes()
    per_class = Counter(b["label"] for b in boxes)
    share = n_img_q / max(len(state.images), 1)
    return {
        "n_input_files": len(state.images) + len(state.orphans), "n_images": len(state.images),
        "n_orphan_annotations": len(state.orphans), "n_accepted_images": len(accepted),
        "n_quarantined_images": n_img_q, "n_quarantined": len(quarantined), "n_accepted_boxes": len(boxes),
        "quarantine_share": share, "max_quarantine_fraction": cfg.max_quarantine_fraction,
        "passed": share <= cfg.max_quarantine_fraction and not _table_violations(state.findings),
        "boxes_per_class": {c: per_class.get(c, 0) for c in task.classes},
        "accepted": [a["rel_path"] for a in accepted], "quarantined": quarantined,
        "contract": contract, **counts(state.findings), "findings": [x.as_dict() for x in state.findings],
    }


def _table_violations(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.code == "CONTRACT_VIOLATION" and f.input_file is None]


def _class_counts(accepted: list[Row], boxes: list[Row], task: TaskConfig) -> dict[str, int]:
    if task.sample == "patches":
        return dict(Counter(b["label"] for b in boxes))
    return dict(Counter(a["label"] for a in accepted if a.get("label")))


def run(cfg: ValidateConfig, task: TaskConfig, manifest_dir: Path, out_dir: Path,
        tracking: Any | None = None) -> dict[str, Any]:
    """Validate `manifest_dir/manifest.parquet`; write the accepted table and the reports.

    `tracking` (a TrackingConfig) logs the summary to MLflow when `cfg.log_to_mlflow` is on.
    """
    from components.validate_annotations.contract import check_contract

    images, boxes, orphans = _load(manifest_dir)
    state = _check_all(images, boxes, orphans, task, cfg)
    root = ds.dataset_root(images)
    out_dir.mkdir(parents=True, exist_ok=True)
    found, contract = check_contract(_labelled(state.accepted(), state.clean_boxes, task),
                                     state.accepted_boxes(), task, cfg, out_dir, root)
    state.findings += found
    accepted = _labelled(state.accepted(), state.clean_boxes, task)
    state.findings += ds.class_balance(_class_counts(accepted, state.accepted_boxes(), task), task, cfg, root)
    check_invariant([r["rel_path"] for r in images + orphans], {a["rel_path"] for a in accepted},
                    state.quarantined())
    report = _report(state, accepted, cfg, task, contract)
    _write(report, state, out_dir)
    if tracking is not None and cfg.log_to_mlflow:
        from components.validate_annotations.report import log_to_mlflow

        report["mlflow_run_id"] = log_to_mlflow(report, out_dir, tracking)
    _fail_if_needed(report, state, manifest_dir, out_dir)
    rows = [r for a in accepted for r in (a, *state.clean_boxes[a["rel_path"]])]
    write_parquet(out_dir / ACCEPTED, pd.DataFrame(rows))
    return report


def _write(report: dict[str, Any], state: _State, out_dir: Path) -> None:
    quarantine = quarantine_list(state.findings, report["quarantined"])
    write_json(out_dir / QUARANTINE_JSON, quarantine)
    write_json(out_dir / REPORT_JSON, report)
    (out_dir / REPORT_HTML).write_text(render_html(report, state.findings, quarantine), encoding="utf-8")


def _fail_if_needed(report: dict[str, Any], state: _State, manifest_dir: Path, out_dir: Path) -> None:
    if report["quarantine_share"] > report["max_quarantine_fraction"]:
        raise DataError(manifest_dir, f"{report['quarantine_share']:.0%} of images quarantined (limit "
                        f"{report['max_quarantine_fraction']:.0%}); see {out_dir / REPORT_HTML}")
    if table := _table_violations(state.findings):
        raise DataError(manifest_dir, f"data contract violated: {table[0].message}; see {out_dir / 'data_docs'}")
