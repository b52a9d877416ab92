"""Validate the manifest: findings per file, box and dataset, a quarantine list, the accepted table.

The user's files are never moved or rewritten; quarantine is a list in the report, and the
accepted table is what downstream stages read. Order: per-image checks → dataset-wide checks
(duplicates, patients, filenames) → the Great Expectations contract on what would be accepted →
class balance on what finally is. Every input file (image, or annotation without an image) ends
in exactly one of accepted or quarantined; `check_invariant` proves it before anything is written.
Box-level errors drop the box, not the photo: the accepted image row says how many boxes it lost
(`n_dropped_boxes`) and whether the detector may train on it (`detection_usable`), and carries the
`split_group` crop_patches splits by (patients joined with their byte copies and near-duplicates).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from components.common.errors import DataError, LesionOpsError
from components.common.io import records, write_json, write_parquet
from components.common.split_groups import split_groups, summarize
from components.common.task import TaskConfig
from components.validate_annotations import dataset_checks as ds
from components.validate_annotations.checks import (
    WARNING,
    Finding,
    box_number,
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
    drop_summary,
    dropped_boxes,
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
    raw_boxes: dict[str, list[Row]] = field(default_factory=dict)
    groups: dict[str, tuple[str, str]] = field(default_factory=dict)

    def quarantined(self) -> set[str]:
        return {f.input_file for f in self.findings if f.quarantines and f.input_file}

    def accepted(self) -> list[Row]:
        q = self.quarantined()
        return [img for img in self.images if img["rel_path"] not in q]

    def accepted_boxes(self) -> list[Row]:
        return [b for img in self.accepted() for b in self.clean_boxes[img["rel_path"]]]

    def dropped(self) -> dict[str, set[int]]:
        """Box indices dropped by box-level errors, per accepted image."""
        q, out = self.quarantined(), dict[str, set[int]]()
        for f in self.findings:
            if f.drops_box and f.input_file and f.input_file not in q:
                out.setdefault(f.input_file, set()).add(int(f.box_index))  # type: ignore[arg-type]
        return out


def _validate_image(
    img: Row, boxes: list[Row], task: TaskConfig, cfg: ValidateConfig
) -> tuple[list[Finding], list[Row]]:
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
    if (
        task.sample == "patches"
        and img.get("annotation_path")
        and not boxes
        and not img.get("annotation_error")
        and not img.get("image_error")
    ):
        findings.append(
            Finding(
                "ANNOTATION_EMPTY",
                WARNING,
                img["annotation_path"],
                "no boxes drawn: nothing to crop; a negative (background) for the detector",
            )
        )
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


def _check_all(
    images: list[Row], boxes: dict[str, list[Row]], orphans: list[Row], task: TaskConfig, cfg: ValidateConfig
) -> _State:
    state = _State(images, orphans, {}, [], boxes)
    for img in images:
        found, clean = _validate_image(img, boxes.get(img["rel_path"], []), task, cfg)
        state.findings += found
        state.clean_boxes[img["rel_path"]] = clean
    pairs = ds.near_duplicate_pairs(images, cfg)
    state.findings += ds.check_dataset(images, orphans, cfg, state.quarantined(), _annotations(boxes, task), pairs)
    state.groups = split_groups(images, [(a["rel_path"], b["rel_path"]) for a, b, _ in pairs])
    flagged = {(f.input_file, f.box_index) for f in state.findings if f.code == "BOX_SIZE_OUTLIER"}
    by_path = {img["rel_path"]: img for img in images}
    state.findings += [
        f
        for f in ds.box_size_outliers(state.accepted_boxes(), by_path, cfg)
        if (f.input_file, f.box_index) not in flagged
    ]
    return state


def _annotations(boxes: dict[str, list[Row]], task: TaskConfig) -> dict[str, list[ds.Box]]:
    """Each image's boxes as annotated (label as the task reads it), to compare byte copies."""

    def box(b: Row) -> ds.Box:
        x0, y0, x1, y1 = (box_number(b.get(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        return task.normalize(str(b["label_raw"])) or str(b["label_raw"]), x0, y0, x1, y1

    return {rel: [box(b) for b in rows] for rel, rows in boxes.items()}


def _labelled(state: _State, task: TaskConfig, cfg: ValidateConfig) -> list[Row]:
    """Accepted image rows with their label (the majority box label, or the folder label), the boxes
    they lost, whether the detector may train on them, and their split group."""
    out, dropped = [], state.dropped()
    for img in state.accepted():
        rel = img["rel_path"]
        labels = Counter(b["label"] for b in state.clean_boxes[rel])
        folder = task.normalize(str(img["image_label"])) if img.get("image_label") else None
        group, reason = state.groups.get(rel, (str(img["patient_id"]), ""))
        n_dropped = len(dropped.get(rel, ()))
        out.append(
            {
                **img,
                "label": labels.most_common(1)[0][0] if labels else folder,
                "n_dropped_boxes": n_dropped,
                "detection_usable": n_dropped == 0 or cfg.detection_keep_partial,
                "split_group": group,
                "split_group_reason": reason,
            }
        )
    return out


def check_invariant(inputs: list[str], accepted: set[str], quarantined: set[str]) -> None:
    """Every input file is in exactly one of accepted or quarantined."""
    both, seen = accepted & quarantined, set(inputs)
    neither = seen - accepted - quarantined
    unknown = (accepted | quarantined) - seen
    repeated = [p for p, n in Counter(inputs).items() if n > 1]
    if both or neither or unknown or repeated:
        raise InvariantError(
            f"accepted/quarantined partition broken: both={sorted(both)[:5]} "
            f"neither={sorted(neither)[:5]} not-an-input={sorted(unknown)[:5]} "
            f"listed twice={repeated[:5]}"
        )


def _report(
    state: _State, accepted: list[Row], cfg: ValidateConfig, task: TaskConfig, contract: dict[str, Any]
) -> dict[str, Any]:
    quarantined = sorted(state.quarantined())
    n_img_q = len(state.images) - len(accepted)
    boxes = state.accepted_boxes()
    per_class = Counter(b["label"] for b in boxes)
    share = n_img_q / max(len(state.images), 1)
    drops = dropped_boxes(state.findings, state.quarantined(), state.raw_boxes)
    n_input_boxes = sum(len(state.raw_boxes.get(a["rel_path"], [])) for a in accepted)
    drop_share = len(drops) / max(n_input_boxes, 1)
    return {
        "n_input_files": len(state.images) + len(state.orphans),
        "n_images": len(state.images),
        "n_orphan_annotations": len(state.orphans),
        "n_accepted_images": len(accepted),
        "n_quarantined_images": n_img_q,
        "n_quarantined": len(quarantined),
        "n_accepted_boxes": len(boxes),
        "quarantine_share": share,
        "max_quarantine_fraction": cfg.max_quarantine_fraction,
        "n_input_boxes": n_input_boxes,
        "n_dropped_boxes": len(drops),
        "dropped_box_share": drop_share,
        "max_dropped_box_fraction": cfg.max_dropped_box_fraction,
        "dropped_boxes_by_code": dict(Counter(d["code"] for d in drops)),
        "n_boxes_not_for_patches": sum(not b.get("for_patches", True) for b in boxes),
        "n_empty_annotations": sum(
            bool(a.get("annotation_path")) and not state.raw_boxes.get(a["rel_path"]) and not a.get("annotation_error")
            for a in accepted
        ),
        "n_images_not_for_detection": sum(not a["detection_usable"] for a in accepted),
        "passed": (
            share <= cfg.max_quarantine_fraction
            and drop_share <= cfg.max_dropped_box_fraction
            and not _table_violations(state.findings)
        ),
        "boxes_per_class": {c: per_class.get(c, 0) for c in task.classes},
        "split_groups": summarize(accepted)[0],
        "accepted": [a["rel_path"] for a in accepted],
        "quarantined": quarantined,
        "dropped_boxes": drops,
        "contract": contract,
        **counts(state.findings),
        "findings": [x.as_dict() for x in state.findings],
    }


def _table_violations(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.code == "CONTRACT_VIOLATION" and f.input_file is None]


def _class_counts(accepted: list[Row], boxes: list[Row], task: TaskConfig) -> dict[str, int]:
    if task.sample == "patches":  # what will be cropped: boxes too small for a patch do not count
        return dict(Counter(b["label"] for b in boxes if b.get("for_patches", True)))
    return dict(Counter(a["label"] for a in accepted if a.get("label")))


def run(
    cfg: ValidateConfig, task: TaskConfig, manifest_dir: Path, out_dir: Path, tracking: Any | None = None
) -> dict[str, Any]:
    """Validate `manifest_dir/manifest.parquet`; write the accepted table and the reports.

    `tracking` (a TrackingConfig) logs the summary to MLflow when `cfg.log_to_mlflow` is on.
    """
    from components.validate_annotations.contract import check_contract

    images, boxes, orphans = _load(manifest_dir)
    state = _check_all(images, boxes, orphans, task, cfg)
    root = ds.dataset_root(images)
    out_dir.mkdir(parents=True, exist_ok=True)
    found, contract = check_contract(_labelled(state, task, cfg), state.accepted_boxes(), task, cfg, out_dir, root)
    state.findings += found
    accepted = _labelled(state, task, cfg)
    state.findings += ds.class_balance(_class_counts(accepted, state.accepted_boxes(), task), task, cfg, root)
    check_invariant([r["rel_path"] for r in images + orphans], {a["rel_path"] for a in accepted}, state.quarantined())
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
        raise DataError(
            manifest_dir,
            f"{report['quarantine_share']:.0%} of images quarantined (limit "
            f"{report['max_quarantine_fraction']:.0%}); see {out_dir / REPORT_HTML}",
        )
    if report["dropped_box_share"] > report["max_dropped_box_fraction"]:
        raise DataError(
            manifest_dir,
            f"{report['dropped_box_share']:.0%} of the boxes of accepted images were "
            f"dropped (limit {report['max_dropped_box_fraction']:.0%}): {drop_summary(report)}; "
            f"see {out_dir / REPORT_HTML}",
        )
    if table := _table_violations(state.findings):
        raise DataError(manifest_dir, f"data contract violated: {table[0].message}; see {out_dir / 'data_docs'}")
