"""The model card attached to every promoted version: what the model is for, what it saw, how good
it is (with uncertainty when the evaluation measured it) and where it is known to fail.

A pure function over the stage files (train_summary.json, metrics.json, decision.json and, when
given, crop_report.json and evaluate_model's subgroups.json), so it is tested without a registry
and says plainly what is missing instead of leaving a section out.
"""

from __future__ import annotations

import math
from typing import Any

_USE = {
    "classifier": "classifies a lesion patch cropped around a labelImg box into one of the task's diseases",
    "detector": "proposes boxes around lesions in a whole clinical photo, with a disease label per box",
}


def _num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _fmt(value: Any) -> str:
    if _num(value):
        return str(value) if isinstance(value, int) else f"{value:.4f}"
    return "—" if value is None else str(value)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_fmt(c).replace("|", "\\|") for c in row) + " |" for row in rows]


def _ci(ci: dict[str, Any], key: str) -> str:
    bounds = ci.get(key, ci.get(key.removeprefix("test_")))
    if isinstance(bounds, list | tuple) and len(bounds) == 2 and all(_num(b) for b in bounds):
        return f"[{bounds[0]:.4f}, {bounds[1]:.4f}]"
    return "—"


def _classes(summary: dict[str, Any], metrics: dict[str, Any]) -> list[str]:
    return list(metrics.get("classes") or summary.get("classes") or (metrics.get("per_class") or {}))


def _data(summary: dict[str, Any], crop_report: dict[str, Any] | None) -> list[str]:
    lines = ["## Data", "", f"- Data version (DVC): `{summary.get('data_version', 'unknown')}`"]
    if summary.get("classes"):
        lines.append(f"- Classes: {', '.join(summary['classes'])}")
    counts = (crop_report or {}).get("per_split_class_counts")
    if not counts:
        lines += [
            "- Per-split class counts: not available (promotion ran without `--patches`, so "
            "crop_report.json was not read).",
            "",
        ]
        return lines
    classes = sorted({c for per in counts.values() for c in per})
    patients = (crop_report or {}).get("patients_per_split", {})
    rows = [[split, *(per.get(c, 0) for c in classes), patients.get(split)] for split, per in counts.items()]
    lines += ["- Patches per split and class (train includes balancing copies):", ""]
    return lines + _table(["split", *classes, "patients"], rows) + [""]


def _test_size(metrics: dict[str, Any]) -> str | None:
    parts = [
        f"{metrics[k]} {label}"
        for k, label in (
            ("n_test", "samples"),
            ("n_test_images", "images"),
            ("n_test_boxes", "boxes"),
            ("n_test_patients", "patients"),
        )
        if _num(metrics.get(k))
    ]
    return ", ".join(parts) or None


def _metrics(metrics: dict[str, Any]) -> list[str]:
    ci = metrics.get("ci") if isinstance(metrics.get("ci"), dict) else None
    confidence = (metrics.get("bootstrap") or {}).get("confidence", 0.95)
    keys = [k for k, v in metrics.items() if k.startswith("test_") and _num(v) and not k.startswith("test_recall_")]
    lines = ["## Metrics (held-out test split)", ""]
    if not keys:
        return lines + ["No test metrics were recorded.", ""]
    header = ["metric", "value", f"{confidence * 100:g} % CI"]
    lines += _table(header, [[k, metrics[k], _ci(ci or {}, k)] for k in keys]) + [""]
    if ci is None:
        lines.append(
            "Confidence intervals: not computed by this evaluation (metrics.json has no `ci`); "
            "treat the point estimates as uncertain, especially on a small test set."
        )
    else:
        lines.append(
            "Confidence intervals: patient-level bootstrap from the evaluation (`ci` in metrics.json); "
            "`—` = no interval for that metric."
        )
    if _test_size(metrics):
        lines.append(f"Test set: {_test_size(metrics)}.")
    return lines + [""]


def _per_class(metrics: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    per = metrics.get("per_class") or {}
    rows = [[c, m.get("recall"), m.get("precision"), m.get("support")] for c, m in per.items()]
    if not rows:
        rows = [
            [c, metrics.get(f"test_recall_{c}"), None, None]
            for c in _classes(summary, metrics)
            if f"test_recall_{c}" in metrics
        ]
    if not rows and isinstance(metrics.get("per_class_ap50"), dict):  # detectors: AP per class instead
        ap = [[c, v] for c, v in metrics["per_class_ap50"].items()]
        return ["## Per-class AP@0.5", ""] + _table(["class", "AP@0.5"], ap) + [""]
    lines = ["## Per-class recall (sensitivity)", ""]
    return lines + (_table(["class", "recall", "precision", "support"], rows) if rows else ["Not recorded."]) + [""]


def _flat(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"after": {"ece": 0.1}} → {"after.ece": 0.1}: calibration reports nest before/after."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            out |= _flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def _with_ci(value: Any, bounds: Any) -> str:
    if not _num(value):
        return "—"
    if isinstance(bounds, list | tuple) and len(bounds) == 2 and all(_num(b) for b in bounds):
        return f"{value:.3f} [{bounds[0]:.3f}, {bounds[1]:.3f}]"
    return f"{value:.3f}"


def _group_rows(rows: list[dict[str, Any]], min_size: int | None) -> list[list[Any]]:
    out = []
    for r in rows:
        ci = r.get("ci") or {}
        worst = r.get("worst_class")
        worst_ci = ((r.get("per_class") or {}).get(worst) or {}).get("recall_ci")
        gated = "—" if min_size is None else ("yes" if r.get("n_patients", 0) >= min_size else "no (too few patients)")
        out.append(
            [
                r.get("group"),
                r.get("n"),
                r.get("n_patients"),
                _with_ci(r.get("accuracy"), ci.get("accuracy")),
                _with_ci(r.get("macro_f1"), ci.get("macro_f1")),
                "—" if worst is None else f"{_with_ci(r.get('worst_recall'), worst_ci)} ({worst})",
                gated,
            ]
        )
    return out


def _subgroups(subgroups: dict[str, Any] | None) -> list[str]:
    """Metrics per skin tone / body site: an average can hide the group the model fails."""
    lines = ["## Subgroups", ""]
    if not subgroups or not subgroups.get("groupings"):
        return lines + [
            "Not reported by this evaluation (no subgroup column in its subgroups.json, or none given).",
            "",
        ]
    confidence = (subgroups.get("bootstrap") or {}).get("confidence", 0.95)
    min_size = subgroups.get("min_group_size")
    header = ["group", "patches", "patients", f"accuracy [{confidence * 100:g} % CI]", "macro-F1 [CI]"]
    header += ["worst class recall", "gated"]
    groupings = subgroups["groupings"]
    for grouping in [g for g in subgroups.get("order") or groupings if g in groupings]:
        rows = _group_rows(groupings[grouping], min_size)
        lines += [f"### By {grouping.replace('_', ' ')}", "", *_table(header, rows), ""]
    lines.append(
        "CIs: patient bootstrap within each group. Gate: the worst class recall of every group with "
        f"≥ {_fmt(min_size)} patients must reach {_fmt(subgroups.get('min_group_recall'))} "
        "(`gate.min_group_recall`); smaller groups are reported, not gated."
    )
    if subgroups.get("not_known"):
        lines.append(f"Not known for this data (no column): {', '.join(subgroups['not_known'])}.")
    return lines + [""]


def _calibration(metrics: dict[str, Any]) -> list[str]:
    raw = metrics.get("calibration")
    calibration: dict[str, Any] = raw if isinstance(raw, dict) else {}
    found = {k: v for k, v in _flat(calibration).items() if _num(v)}
    found |= {k: v for k, v in metrics.items() if _num(v) and ("ece" in k.lower() or "temperature" in k.lower())}
    lines = ["## Calibration", ""]
    if not found:
        return lines + ["Not reported by this evaluation: do not read the scores as probabilities.", ""]
    return lines + _table(["quantity", "value"], [[k, v] for k, v in found.items()]) + [""]


def _gate(decision: dict[str, Any], metrics: dict[str, Any]) -> list[str]:
    rules = decision.get("rules") or []
    champion = decision.get("champion_version")
    lines = [
        "## Promotion gate",
        "",
        f"Verdict: {'PASSED' if decision.get('passed') else 'FAILED'}; evaluated against "
        f"{'champion v' + str(champion) if champion is not None else 'no champion (first model)'}.",
        "",
    ]
    rows = [
        [r.get("name"), r.get("value"), r.get("threshold"), "pass" if r.get("passed") else "FAIL", r.get("reason")]
        for r in rules
    ]
    lines += _table(["rule", "value", "threshold", "verdict", "reason"], rows) + [""]
    diff = metrics.get("diff_ci") or decision.get("diff_ci") or []
    if len(diff) == 2 and all(_num(b) for b in diff):
        lines += [f"Macro-F1 difference to the champion (paired bootstrap): [{diff[0]:+.4f}, {diff[1]:+.4f}].", ""]
    return lines


def most_confused(matrix: list[list[int]], classes: list[str]) -> tuple[str, str, int, int] | None:
    """(true class, predicted class, count, support of the true class) of the largest off-diagonal
    cell, or None when nothing was confused."""
    best: tuple[str, str, int, int] | None = None
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            if i != j and count > 0 and (best is None or count > best[2]):
                best = (
                    classes[i] if i < len(classes) else str(i),
                    classes[j] if j < len(classes) else str(j),
                    int(count),
                    int(sum(row)),
                )
    return best


def _limits(summary: dict[str, Any], metrics: dict[str, Any], crop_report: dict[str, Any] | None) -> list[str]:
    lines = [
        "## Limits",
        "",
        f"- Small, possibly synthetic data: the test split has {_test_size(metrics) or 'an unknown size'}; "
        "the demo dataset is synthetic, so its metrics say nothing about real patients. "
        "Validate on the target clinic's photos before any use.",
        "- Patient split: train/val/test are split by patient (no patient in two splits), so the test "
        "metrics are for unseen patients; patches of one patient are correlated, so the effective sample "
        "size is nearer the number of patients.",
    ]
    if crop_report and crop_report.get("patients_per_split"):
        lines[-1] += f" Test patients: {crop_report['patients_per_split'].get('test', 'unknown')}."
    matrix = metrics.get("confusion_matrix")
    pair = most_confused(matrix, _classes(summary, metrics)) if isinstance(matrix, list) else None
    if pair is not None:
        true, pred, count, support = pair
        lines.append(
            f"- Known confusion: `{true}` is most often predicted as `{pred}` "
            f"({count} of {support} test samples of `{true}`)."
        )
    elif isinstance(matrix, list):
        lines.append("- Known confusions: none on the test split (no off-diagonal cell).")
    else:
        lines.append("- Known confusions: not assessed (metrics.json has no `confusion_matrix`).")
    return lines + [""]


def model_card(
    summary: dict[str, Any],
    metrics: dict[str, Any],
    decision: dict[str, Any],
    crop_report: dict[str, Any] | None,
    *,
    name: str | None = None,
    version: str | None = None,
    subgroups: dict[str, Any] | None = None,
) -> str:
    """The Markdown card for one promoted version (`name`/`version` only label the title;
    `subgroups` is evaluate_model's subgroups.json)."""
    kind = summary.get("kind", "classifier")
    title = f"{name or summary.get('registered_model', 'model')}" + (f" v{version}" if version else "")
    head = [
        f"# Model card: {title}",
        "",
        f"- Kind: {kind}" + (f" (`{summary['arch']}`)" if summary.get("arch") else ""),
        f"- MLflow run: `{summary.get('run_id', 'unknown')}`; model: `{summary.get('model_uri', 'unknown')}`",
        "",
        "## Intended use",
        "",
        f"Assistive only: the model {_USE.get(kind, 'makes predictions on lesion images')}, to help a "
        "dermatologist triage and review photos. It is **not a diagnostic device**: every output must be "
        "confirmed by a clinician, it must not be used to rule a disease out, and it knows only the classes "
        "it was trained on (any other condition is forced into one of them).",
        "",
    ]
    sections = [
        head,
        _data(summary, crop_report),
        _metrics(metrics),
        _per_class(metrics, summary),
        _subgroups(subgroups),
        _calibration(metrics),
        _gate(decision, metrics),
        _limits(summary, metrics, crop_report),
    ]
    return "\n".join(line for part in sections for line in part).rstrip() + "\n"
