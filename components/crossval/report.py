"""The k-fold numbers a person reads: per-model spread, stability across repeats, paired gain.

Seed 002 reports the mean over its 10 × 3 folds and, as stability, how much the repeat means
differ (a repeat is one full re-partition of the patients, so the sd of repeat means is the
"would I get the same number with another shuffle" figure; the sd over single folds mixes that
with the fold-to-fold difficulty). The paired cnn − baseline difference is taken fold by fold:
both models saw the same patients, so the fold's difficulty cancels out.

Fold scores are not independent (training sets overlap), so a naive t-test on them is far too
optimistic; the difference carries the corrected resampled t-test (Nadeau & Bengio 2003,
Bouckaert & Frank 2004), which inflates the variance by n_test / n_train.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

METRICS = ("accuracy", "macro_f1", "macro_recall")
PAIR = ("cnn", "baseline")  # difference = PAIR[0] − PAIR[1]


def describe(values: list[float]) -> dict[str, Any]:
    """mean, sd (n − 1; None below 2 values), min, max and n; all None when empty."""
    arr = np.asarray(values, dtype=float)
    if not len(arr):
        return {"mean": None, "sd": None, "min": None, "max": None, "n": 0}
    return {
        "mean": float(arr.mean()),
        "sd": float(arr.std(ddof=1)) if len(arr) > 1 else None,
        "min": float(arr.min()),
        "max": float(arr.max()),
        "n": int(len(arr)),
    }


def _by_repeat(rows: list[tuple[int, dict[str, float]]], per_repeat: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Mean of each repeat (with whether all its folds were scored) and the sd of those means."""
    means: dict[str, Any] = {}
    for repeat in sorted({r for r, _ in rows}):
        part = [values for r, values in rows if r == repeat]
        means[str(repeat)] = {
            **{m: float(np.mean([v[m] for v in part])) for m in part[0]},
            "n_folds": len(part),
            "complete": len(part) == per_repeat,
        }
    spread = {m: describe([v[m] for v in means.values()])["sd"] for m in (rows[0][1] if rows else {})}
    return means, spread


def model_summary(folds: list[dict[str, Any]], model: str, classes: list[str], per_repeat: int) -> dict[str, Any]:
    """Spread over folds, repeat means, and per-class recall over the folds that held the class."""
    results = [(f["repeat"], f["results"][model]) for f in folds if model in f["results"]]
    out: dict[str, Any] = {m: describe([r[m] for _, r in results]) for m in METRICS}
    out["repeat_means"], out["sd_repeat_means"] = _by_repeat(
        [(repeat, {m: r[m] for m in METRICS}) for repeat, r in results], per_repeat
    )
    out["per_class_recall"] = {
        c: describe([r["per_class_recall"][c] for _, r in results if r["support"][c] > 0]) for c in classes
    }
    out["n_folds"] = len(results)
    return out


def corrected_t_test(diffs: list[float], test_train_ratio: float) -> dict[str, Any]:
    """Nadeau–Bengio corrected resampled t-test of mean(diffs) = 0 (two-sided)."""
    from scipy import stats

    arr = np.asarray(diffs, dtype=float)
    if len(arr) < 2 or arr.var(ddof=1) == 0:
        return {"t": None, "p": None, "df": max(len(arr) - 1, 0), "test_train_ratio": test_train_ratio}
    t = float(arr.mean() / np.sqrt((1 / len(arr) + test_train_ratio) * arr.var(ddof=1)))
    return {
        "t": t,
        "p": float(2 * stats.t.sf(abs(t), len(arr) - 1)),
        "df": len(arr) - 1,
        "test_train_ratio": test_train_ratio,
    }


def paired_difference(folds: list[dict[str, Any]], per_repeat: int) -> dict[str, Any] | None:
    """cnn − baseline per fold where both were scored, summarised like a model; None if not both ran."""
    both = [f for f in folds if all(m in f["results"] for m in PAIR)]
    if not both:
        return None
    per_fold = [
        {
            "repeat": f["repeat"],
            "fold": f["fold"],
            **{m: f["results"][PAIR[0]][m] - f["results"][PAIR[1]][m] for m in METRICS},
        }
        for f in both
    ]
    out: dict[str, Any] = {"of": list(PAIR), "per_fold": per_fold}
    out.update({m: describe([d[m] for d in per_fold]) for m in METRICS})
    out["repeat_means"], out["sd_repeat_means"] = _by_repeat(
        [(d["repeat"], {m: d[m] for m in METRICS}) for d in per_fold], per_repeat
    )
    out["cnn_better_folds"] = sum(d["macro_f1"] > 0 for d in per_fold)
    ratio = float(np.mean([f["n_patches"]["test"] / (f["n_patches"]["fit"] + f["n_patches"]["val"]) for f in both]))
    out["corrected_t_test_macro_f1"] = corrected_t_test([d["macro_f1"] for d in per_fold], ratio)
    return out


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    """The `summary`, `difference` and `skipped` blocks of kfold_report.json."""
    folds, per_repeat = report["folds"], report["folds_per_repeat"]
    return {
        "summary": {m: model_summary(folds, m, report["classes"], per_repeat) for m in report["models"]},
        "difference": paired_difference(folds, per_repeat),
        "skipped": [{"repeat": f["repeat"], "fold": f["fold"], "reason": f["skipped"]} for f in folds if f["skipped"]],
    }


def headline(report: dict[str, Any]) -> dict[str, float]:
    """Flat numbers for the MLflow parent run (None values left out)."""
    out: dict[str, Any] = {"n_folds_skipped": len(report["skipped"])}
    for model, s in report["summary"].items():
        for m in METRICS:
            out.update(
                {
                    f"{model}_{m}_mean": s[m]["mean"],
                    f"{model}_{m}_sd": s[m]["sd"],
                    f"{model}_{m}_sd_repeat_means": s["sd_repeat_means"].get(m),
                }
            )
    if report["difference"]:
        d = report["difference"]
        out.update(
            {
                "cnn_minus_baseline_macro_f1_mean": d["macro_f1"]["mean"],
                "cnn_minus_baseline_macro_f1_sd": d["macro_f1"]["sd"],
                "cnn_minus_baseline_macro_f1_p": d["corrected_t_test_macro_f1"]["p"],
            }
        )
    return {k: float(v) for k, v in out.items() if v is not None}


def _num(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _mean_sd(d: dict[str, Any]) -> str:
    return f"{_num(d['mean'])} ± {_num(d['sd'])}" if d["n"] else "—"


def markdown(report: dict[str, Any]) -> str:
    pool = report["pool"]
    lines = [
        f"# Grouped repeated k-fold ({report['repeats']} × {report['folds_per_repeat']}-fold by patient)",
        "",
        f"{report['n_folds_run']} of {report['n_folds_total']} folds run on {pool['n_patches']} un-augmented "
        f"patches of {pool['n_patients']} patients ({pool['dropped_augmented_copies']} oversampled copies "
        f"left out; class weights: cnn {report['cnn']['class_weights']}, baseline "
        f"{report['baseline']['class_weight']}). CNN: {report['cnn']['arch']}, {report['cnn']['epochs']} epochs "
        f"max; baseline C: {report['baseline']['C']}.",
        "",
        *(
            [
                f"{pool['undersampled_crops_missing']} crop(s) that crop_patches.balance undersampled have no patch "
                "file and are not in the pool (crop_patches.balance.undersample: false keeps every crop).",
                "",
            ]
            if pool["undersampled_crops_missing"]
            else []
        ),
        "| model | folds | macro-F1 mean ± sd | min – max | sd of repeat means | accuracy mean ± sd "
        "| macro recall mean ± sd |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = dict(report["summary"])
    if report["difference"]:
        rows["cnn − baseline"] = {**report["difference"], "n_folds": report["difference"]["macro_f1"]["n"]}
    for name, s in rows.items():
        f1 = s["macro_f1"]
        lines.append(
            f"| {name} | {s['n_folds']} | {_mean_sd(f1)} | {_num(f1['min'])} – {_num(f1['max'])} | "
            f"{_num(s['sd_repeat_means'].get('macro_f1'))} | {_mean_sd(s['accuracy'])} | "
            f"{_mean_sd(s['macro_recall'])} |"
        )
    lines += [
        "",
        "Per-class recall, mean ± sd over the folds whose held-out part has the class:",
        "",
        "| class | " + " | ".join(report["summary"]) + " |",
        "|---|" + "---|" * len(report["summary"]),
    ]
    for c in report["classes"]:
        lines.append(
            f"| {c} | " + " | ".join(_mean_sd(s["per_class_recall"][c]) for s in report["summary"].values()) + " |"
        )
    if report["difference"]:
        d, t = report["difference"], report["difference"]["corrected_t_test_macro_f1"]
        lines += [
            "",
            f"CNN better than the baseline on macro-F1 in {d['cnn_better_folds']} of {d['macro_f1']['n']} "
            f"paired folds; corrected resampled t-test (Nadeau–Bengio): t = {_num(t['t'], 2)}, "
            f"p = {_num(t['p'], 4)} (df {t['df']}).",
        ]
    if report["skipped"]:
        lines += ["", "Skipped folds:", ""]
        lines += [f"- repeat {s['repeat']} fold {s['fold']}: {s['reason']}" for s in report["skipped"]]
    return "\n".join(lines) + "\n"


def write_markdown(report: dict[str, Any], path: Path) -> Path:
    path.write_text(markdown(report), encoding="utf-8")
    return path


def plot(report: dict[str, Any], path: Path) -> Path:
    """Box + strip (one dot per fold, coloured by repeat) of macro-F1 per model, and of the paired
    difference when both models ran."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {
        m: [(f["repeat"], f["results"][m]["macro_f1"]) for f in report["folds"] if m in f["results"]]
        for m in report["models"]
    }
    diff = report["difference"]
    fig, axes = plt.subplots(
        1,
        2 if diff else 1,
        figsize=(9 if diff else 5, 4.5),
        squeeze=False,
        width_ratios=(len(groups), 1) if diff else None,
    )
    panels: list[tuple[Any, dict[str, Any], str, tuple[int, int] | None]] = [
        (axes[0][0], groups, "macro-F1 per held-out fold", (0, 1))
    ]
    if diff:
        panels.append(
            (
                axes[0][1],
                {"cnn − baseline": [(d["repeat"], d["macro_f1"]) for d in diff["per_fold"]]},
                "paired difference",
                None,
            )
        )
    jitter, cmap = np.random.default_rng(0), plt.get_cmap("tab10")
    for ax, data, title, limits in panels:
        names = list(data)
        ax.boxplot(
            [[v for _, v in data[n]] or [np.nan] for n in names], showfliers=False, medianprops={"color": "black"}
        )
        for i, name in enumerate(names, start=1):
            for repeat, value in data[name]:
                ax.scatter(i + jitter.uniform(-0.12, 0.12), value, s=14, color=cmap(repeat % 10), alpha=0.8, zorder=3)
        ax.set_xticks(range(1, len(names) + 1), names)
        ax.set_title(title)
        if limits:
            ax.set_ylim(*limits)
        else:
            ax.axhline(0, color="grey", linestyle="--", linewidth=1)
    axes[0][0].set_ylabel("macro-F1 (dots coloured by repeat)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
