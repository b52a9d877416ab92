"""The model side of a data review: how the pipeline's results moved between the two revisions.

A data change is judged by what it does to the data (`lesionops.data_review_diff`) and, when both
revisions carry pipeline results (dvc.yaml's `metrics:` and `plots:`, committed with `dvc.lock`),
by what it did to the model: `dvc metrics diff` as a table in the Markdown report, and
`dvc plots diff` rendered to HTML next to it (confusion matrix, ROC, reliability, training curves).
A revision without results (data added, pipeline not yet run) is said so, never guessed.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

WORKSPACE = "workspace"  # DVC's name for the working tree


def _has_results(shown: dict[str, Any], rev: str) -> bool:
    """Whether `rev` has at least one metrics file DVC could read."""
    files = (shown.get(rev) or {}).get("data") or {}
    return any("data" in f and f["data"] for f in files.values())


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _rows(diff: dict[str, dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """dvc's {file: {metric: {old, new, diff}}} as flat rows, numbers only."""
    rows = []
    for path, metrics in sorted(diff.items()):
        for name, change in sorted(metrics.items()):
            old, new = _number(change.get("old")), _number(change.get("new"))
            if old is None and new is None:
                continue
            delta = new - old if old is not None and new is not None else None
            rows.append({"file": path, "metric": name, "old": old, "new": new, "change": delta})
    return rows


def results_diff(root: Path, rev_a: str, rev_b: str, out_dir: Path) -> dict[str, Any]:
    """`dvc metrics diff rev_a rev_b` and `dvc plots diff rev_a rev_b -o out_dir/plots` in the DVC
    repo at `root`, when both revisions have results; otherwise says which lacks them."""
    from dvc.repo import Repo  # lazy: importing dvc costs a second; only reviews need it

    with Repo(str(root)) as repo:
        shown = repo.metrics.show(revs=[rev_a, rev_b], hide_workspace=False)
        missing = [rev for rev in (rev_a, rev_b) if not _has_results(shown, rev)]
        if missing:
            return {"compared": False, "reason": f"no pipeline results (dvc metrics) at {', '.join(missing)}"}
        rows = _rows(repo.metrics.diff(a_rev=rev_a, b_rev=rev_b, all=True).get("diff", {}))
    plots = out_dir / "plots"
    plots.parent.mkdir(parents=True, exist_ok=True)  # dvc makes the last folder, not its parents
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "plots", "diff", rev_a, rev_b, "-o", str(plots)],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    html = plots / "index.html"
    return {
        "compared": True,
        "metrics": rows,
        "plots_html": str(html) if proc.returncode == 0 and html.is_file() else None,
        "plots_error": None if proc.returncode == 0 else (proc.stderr.strip() or proc.stdout.strip())[-500:],
    }


def _fmt(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.4g}"


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.4g}"


def render(results: dict[str, Any]) -> str:
    """The report's "Model results" section."""
    lines = ["", "## Model results (`dvc metrics diff`, `dvc plots diff`)", ""]
    if not results.get("compared"):
        return "\n".join([*lines, f"Not compared: {results.get('reason', 'unknown')}.", ""])
    moved = [r for r in results["metrics"] if r["change"] is None or r["change"] != 0]
    lines += ["| file | metric | before | after | change |", "|---|---|---|---|---|"]
    lines += [
        f"| {r['file']} | {r['metric']} | {_fmt(r['old'])} | {_fmt(r['new'])} | {_signed(r['change'])} |" for r in moved
    ]
    lines.append(f"\n{len(results['metrics']) - len(moved)} other metric(s) unchanged.")
    if results.get("plots_html"):
        lines.append(f"\nPlots of both revisions side by side: `{results['plots_html']}`.")
    elif results.get("plots_error"):
        lines.append(f"\n`dvc plots diff` failed: {results['plots_error']}")
    return "\n".join([*lines, ""])
