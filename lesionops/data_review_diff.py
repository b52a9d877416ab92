"""Pure comparison of two analysed data versions, the verdict, and the Markdown a reviewer reads.

Kept apart from `lesionops.data_review` (which materialises versions and runs the stages) so that the
rules deciding "needs review" can be read, and tested, without git, DVC or any image on disk.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pandas as pd

from components.common.errors import ConfigError
from components.common.io import records

BOX_KEYS = ("label_raw", "xmin", "ymin", "xmax", "ymax")
DATASET = "(dataset)"  # dataset-wide findings name the dataset folder, whose path differs per version
MAX_ROWS = 20  # rows per list in the Markdown; the JSON twin always has everything


@dataclass(frozen=True)
class ReviewConfig:
    """The `data_review` section of params.yaml: when a data change needs a human look."""

    # A class whose accepted boxes shrink by more than this share (A → B) is flagged.
    max_class_box_drop: float = 0.2

    def __post_init__(self) -> None:
        if not 0 <= self.max_class_box_drop <= 1:
            raise ConfigError(f"data_review.max_class_box_drop: must be in [0, 1], found {self.max_class_box_drop}")


@dataclass(frozen=True)
class Side:
    """One analysed data version: what ingest and validation said about it."""

    label: str  # the revision as the user typed it (or WORKTREE)
    md5: str  # DVC's md5 of the folder ('uncommitted' for WORKTREE)
    manifest: pd.DataFrame
    report: dict[str, Any]


def _images(side: Side) -> dict[str, str]:
    rows = side.manifest[side.manifest.row_type == "image"]
    return dict(zip(rows.rel_path.astype(str), rows.sha256.astype(str), strict=True))


def _value(v: Any) -> Any:
    """Box fields as comparable values: coordinates rounded (parquet float noise), NaN as None."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return round(float(v), 3) if isinstance(v, int | float) and not isinstance(v, bool) else v


def _boxes(side: Side) -> dict[tuple[str, int], dict[str, Any]]:
    rows = records(side.manifest[side.manifest.row_type == "box"])
    return {(str(r["rel_path"]), int(r["box_index"])): {k: _value(r.get(k)) for k in BOX_KEYS} for r in rows}


def _patients(side: Side) -> Counter[str]:
    rows = side.manifest[side.manifest.row_type == "image"]
    return Counter(rows.patient_id.astype(str))


def _findings(side: Side) -> Counter[tuple[str, str, str]]:
    """(severity, code, file) with multiplicity.

    Per-image findings name relative paths; dataset-wide ones name the dataset folder as a URI,
    which differs between the two materialised versions, so it is replaced by one neutral name.
    """
    out: Counter[tuple[str, str, str]] = Counter()
    for f in side.report.get("findings", []):
        file = str(f.get("file"))
        out[(str(f["severity"]), str(f["code"]), DATASET if file == "." or file.startswith("file://") else file)] += 1
    return out


def _counter_rows(c: Counter[tuple[str, str, str]]) -> list[dict[str, Any]]:
    return [{"severity": s, "code": code, "file": f, "count": n} for (s, code, f), n in sorted(c.items())]


def compare(a: Side, b: Side, cfg: ReviewConfig, max_quarantine_fraction: float) -> dict[str, Any]:
    """Everything that changed from A to B, and the verdict; JSON-serialisable."""
    ia, ib = _images(a), _images(b)
    ba, bb = _boxes(a), _boxes(b)
    changed_boxes = [
        {"rel_path": k[0], "box_index": k[1], "a": ba[k], "b": bb[k]}
        for k in sorted(ba.keys() & bb.keys())
        if ba[k] != bb[k]
    ]
    pa, pb = _patients(a), _patients(b)
    classes = list(dict.fromkeys([*a.report.get("boxes_per_class", {}), *b.report.get("boxes_per_class", {})]))
    per_class = []
    for c in classes:
        na, nb = int(a.report.get("boxes_per_class", {}).get(c, 0)), int(b.report.get("boxes_per_class", {}).get(c, 0))
        per_class.append({"class": c, "a": na, "b": nb, "delta": nb - na, "drop": (na - nb) / na if na else 0.0})
    fa, fb = _findings(a), _findings(b)
    result: dict[str, Any] = {
        "a": _summary(a),
        "b": _summary(b),
        "images": {
            "added": sorted(ib.keys() - ia.keys()),
            "removed": sorted(ia.keys() - ib.keys()),
            "changed": sorted(k for k in ia.keys() & ib.keys() if ia[k] != ib[k]),
        },
        "boxes": {
            "added": [{"rel_path": k[0], "box_index": k[1], **bb[k]} for k in sorted(bb.keys() - ba.keys())],
            "removed": [{"rel_path": k[0], "box_index": k[1], **ba[k]} for k in sorted(ba.keys() - bb.keys())],
            "changed": changed_boxes,
        },
        "boxes_per_class": per_class,
        "patients": {
            "added": sorted(pb.keys() - pa.keys()),
            "removed": sorted(pa.keys() - pb.keys()),
            "changed": sorted(
                (
                    {"patient_id": p, "a": pa.get(p, 0), "b": pb.get(p, 0), "delta": pb.get(p, 0) - pa.get(p, 0)}
                    for p in pa.keys() | pb.keys()
                    if pa.get(p, 0) != pb.get(p, 0)
                ),
                key=lambda r: (-abs(r["delta"]), r["patient_id"]),
            ),
        },
        "findings": {"appeared": _counter_rows(fb - fa), "disappeared": _counter_rows(fa - fb)},
        "limits": {"max_quarantine_fraction": max_quarantine_fraction, "max_class_box_drop": cfg.max_class_box_drop},
    }
    result["verdict"] = verdict(result, cfg, max_quarantine_fraction)
    return result


def _summary(side: Side) -> dict[str, Any]:
    r = side.report
    return {
        "rev": side.label,
        "md5": side.md5,
        "n_images": r.get("n_images", 0),
        "n_boxes": int((side.manifest.row_type == "box").sum()),
        "n_orphan_annotations": r.get("n_orphan_annotations", 0),
        "n_patients": len(_patients(side)),
        "n_accepted_images": r.get("n_accepted_images", 0),
        "n_accepted_boxes": r.get("n_accepted_boxes", 0),
        "n_quarantined": r.get("n_quarantined", 0),
        "quarantine_share": float(r.get("quarantine_share", 0.0)),
        "by_severity": dict(r.get("by_severity", {})),
    }


def verdict(result: dict[str, Any], cfg: ReviewConfig, max_quarantine_fraction: float) -> dict[str, Any]:
    """'needs review' on new errors, quarantine over the stage's limit, or a class losing boxes.

    Warnings alone never block: they are the normal texture of annotated photos, and the
    validation report already lists them.
    """
    reasons: list[str] = []
    new_errors = [f for f in result["findings"]["appeared"] if f["severity"] == "error"]
    if new_errors:
        codes = Counter[str]()
        for f in new_errors:
            codes[f["code"]] += f["count"]
        reasons.append(
            f"{sum(codes.values())} new error finding(s) ("
            + ", ".join(f"{c} ×{n}" for c, n in sorted(codes.items()))
            + ")"
        )
    share = result["b"]["quarantine_share"]
    if share > max_quarantine_fraction:
        reasons.append(f"{share:.1%} of images quarantined (limit {max_quarantine_fraction:.0%})")
    for row in result["boxes_per_class"]:
        if row["drop"] > cfg.max_class_box_drop:
            reasons.append(
                f"class {row['class']} lost {row['drop']:.0%} of its accepted boxes "
                f"({row['a']} → {row['b']}; limit {cfg.max_class_box_drop:.0%})"
            )
    ok = not reasons
    if ok:
        n = sum(len(result["images"][k]) for k in ("added", "removed", "changed"))
        reasons.append(
            f"{n} image change(s), no new errors, quarantine {share:.1%} "
            f"(limit {max_quarantine_fraction:.0%}), no class lost more than "
            f"{cfg.max_class_box_drop:.0%} of its boxes"
        )
    return {"ok": ok, "status": "OK to merge" if ok else "needs review", "reasons": reasons}


def _table(header: list[str], rows: list[list[Any]], total: int | None = None) -> list[str]:
    def cell(v: Any) -> str:
        return str("" if v is None else v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows[:MAX_ROWS]]
    more = (total if total is not None else len(rows)) - min(len(rows), MAX_ROWS)
    if more > 0:
        lines.append(f"\n… and {more} more (see the JSON twin)")
    return [*lines, ""]


def _delta(a: float, b: float) -> str:
    d = b - a
    return f"{d:+d}" if isinstance(d, int) else f"{d:+.3f}"


def render_markdown(result: dict[str, Any]) -> str:
    """A PR comment: verdict first, then totals, then each kind of change as a short table."""
    v, a, b = result["verdict"], result["a"], result["b"]
    out = [
        f"**Verdict: {v['status']}** — " + "; ".join(v["reasons"]),
        "",
        f"# Data review: `{a['rev']}` → `{b['rev']}`",
        "",
        f"DVC md5: A `{a['md5']}` → B `{b['md5']}`",
        "",
    ]
    totals = [
        ("images", "n_images"),
        ("boxes", "n_boxes"),
        ("annotations without image", "n_orphan_annotations"),
        ("patients", "n_patients"),
        ("accepted images", "n_accepted_images"),
        ("accepted boxes", "n_accepted_boxes"),
        ("quarantined files", "n_quarantined"),
    ]
    rows: list[list[Any]] = [[name, a[k], b[k], _delta(a[k], b[k])] for name, k in totals]
    rows.append(
        [
            "quarantine share",
            f"{a['quarantine_share']:.1%}",
            f"{b['quarantine_share']:.1%}",
            f"{(b['quarantine_share'] - a['quarantine_share']) * 100:+.1f} pp",
        ]
    )
    out += ["## Totals", "", *_table(["", "A", "B", "Δ"], rows)]
    im, bx = result["images"], result["boxes"]
    out += [
        "## Images",
        "",
        f"added {len(im['added'])}, removed {len(im['removed'])}, "
        f"changed (same path, different sha256) {len(im['changed'])}",
        "",
    ]
    listed = (
        [["added", p] for p in im["added"]]
        + [["removed", p] for p in im["removed"]]
        + [["changed", p] for p in im["changed"]]
    )
    if listed:
        out += _table(["change", "image"], listed)
    out += [
        "## Boxes",
        "",
        f"added {len(bx['added'])}, removed {len(bx['removed'])}, changed (label or coordinates) {len(bx['changed'])}",
        "",
    ]

    def box(d: dict[str, Any]) -> str:
        return f"{d['label_raw']} ({d['xmin']}, {d['ymin']}, {d['xmax']}, {d['ymax']})"

    listed = [["changed", c["rel_path"], c["box_index"], box(c["a"]), box(c["b"])] for c in bx["changed"]]
    listed += [["added", d["rel_path"], d["box_index"], "", box(d)] for d in bx["added"]]
    listed += [["removed", d["rel_path"], d["box_index"], box(d), ""] for d in bx["removed"]]
    if listed:
        out += _table(["change", "image", "box", "A", "B"], listed)
    out += [
        "## Accepted boxes per class",
        "",
        *_table(
            ["class", "A", "B", "Δ", "Δ %"],
            [
                [r["class"], r["a"], r["b"], f"{r['delta']:+d}", f"{-r['drop']:+.0%}" if r["a"] else "n/a"]
                for r in result["boxes_per_class"]
            ],
        ),
    ]
    pt = result["patients"]
    out += [
        "## Patients",
        "",
        f"added {len(pt['added'])}, removed {len(pt['removed'])}, "
        f"with a different number of images {len(pt['changed'])} (largest changes first)",
        "",
    ]
    if pt["changed"]:
        out += _table(
            ["patient", "images A", "images B", "Δ"],
            [[r["patient_id"], r["a"], r["b"], f"{r['delta']:+d}"] for r in pt["changed"]],
        )
    for kind in ("appeared", "disappeared"):
        found = result["findings"][kind]
        out += [f"## Validation findings that {kind}", ""]
        out += (
            _table(
                ["severity", "code", "file", "count"],
                [[f["severity"], f["code"], f["file"], f["count"]] for f in found],
            )
            if found
            else ["none", ""]
        )
    return "\n".join(out).rstrip() + "\n"
