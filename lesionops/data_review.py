"""`lesionops data review REV_A REV_B`: what a data change does, as a Markdown report for its PR.

A change to `data.dvc` is one opaque md5 in a diff. This module rebuilds both data versions from
DVC's local cache (no remote, no `dvc checkout` of the user's `data/`), runs the real `ingest_data`
and `validate_annotations` logic on each (no MLflow: a review must not pollute the run history),
and compares the manifests and validation reports (`lesionops.data_review_diff`).

Each version is read with `dvc.api.DVCFileSystem` at its revision (a configured `cache.dir` and
remote are honoured); when both revisions have pipeline results, `dvc metrics diff` and
`dvc plots diff` between them join the report (`lesionops.data_review_results`).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from components.common.errors import DataError
from components.common.io import read_json, write_json
from components.common.params import load_params, section
from components.validate_annotations.config import ValidateConfig
from lesionops.data_review_diff import ReviewConfig, Side, compare, render_markdown
from lesionops.data_review_results import WORKSPACE, results_diff
from lesionops.data_review_results import render as render_results

if TYPE_CHECKING:
    import pandas as pd

WORKTREE = "WORKTREE"  # the special revision: the current (uncommitted) dataset folder


class CacheMissError(DataError):
    """A revision's data version is not in the local DVC cache (never added here, or not pulled)."""


@dataclass(frozen=True)
class ReviewResult:
    """Where the report went and what it says."""

    markdown: Path
    json: Path
    result: dict[str, Any]


def _git_show(rev: str, dvc_file: Path) -> str:
    """`dvc_file` as committed at `rev` (`./name` makes git resolve it relative to its folder)."""
    spec = f"{rev}:./{dvc_file.name}"
    try:
        proc = subprocess.run(["git", "show", spec], cwd=dvc_file.parent, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise DataError(spec, "git is not installed; it is needed to read a past data.dvc") from exc
    if proc.returncode != 0:
        raise DataError(spec, f"cannot read the DVC file at revision {rev!r}: {proc.stderr.strip()}")
    return proc.stdout


def dir_md5(rev: str, dvc_file: Path) -> str:
    """The `.dir` md5 that `dvc_file` pinned at `rev`; refuses a .dvc file that tracks no folder."""
    where = f"{rev}:{dvc_file.name}"
    try:
        doc = yaml.safe_load(_git_show(rev, dvc_file)) or {}
    except yaml.YAMLError as exc:
        raise DataError(where, f"not valid YAML: {exc}") from exc
    outs = doc.get("outs") if isinstance(doc, dict) else None
    md5 = str((outs or [{}])[0].get("md5") or "")
    if not md5.endswith(".dir"):
        raise DataError(where, f"expected one tracked folder (an md5 ending in .dir), found {md5 or 'none'!r}")
    return md5


def materialise(rev: str, dvc_file: Path, dest: Path) -> str:
    """Rebuild the folder pinned by `dvc_file` at `rev` under `dest`; returns its md5.

    Read through `dvc.api.DVCFileSystem` at that revision (DVC's public API: it honours
    `cache.dir` and reads a configured remote when the local cache lacks an object); what neither
    has is a CacheMissError naming the revision, the data version and the missing file."""
    from dvc.api import DVCFileSystem  # lazy: importing dvc costs a second; only reviews need it
    from dvc.repo import Repo

    md5 = dir_md5(rev, dvc_file)
    root = Path(Repo.find_root(str(dvc_file.parent)))
    target = dvc_file.with_suffix("").resolve().relative_to(root.resolve()).as_posix()
    if dest.exists():
        shutil.rmtree(dest)  # a stale file from another version would be reviewed as if it were in this one
    fs = DVCFileSystem(str(root), rev=rev)
    try:
        fs.get(target, str(dest), recursive=True)
    except (FileNotFoundError, OSError) as exc:
        raise CacheMissError(
            f"{rev}:{dvc_file.name}",
            f"data version {md5} of revision {rev!r} is not complete in the DVC cache or remote ({exc}); "
            f"run `dvc fetch --rev {rev}` or `dvc pull`",
        ) from exc
    finally:
        fs.close()
    return md5


def analyse(folder: Path, doc: dict[str, Any], out: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Run ingest_data and validate_annotations on `folder`; returns (manifest, validation report).

    Validation refuses (DataError) when too much is quarantined or the contract is broken, but it
    has written its report first: that refusal is exactly what a reviewer needs to see, so the
    report is read back instead of aborting the review.
    """
    from components.common.task import load_task
    from components.ingest_data.config import IngestConfig
    from components.ingest_data.core import run as ingest
    from components.validate_annotations.core import run as validate
    from components.validate_annotations.report import REPORT_JSON

    manifest = ingest(section(doc, "ingest_data", IngestConfig), folder, out / "ingest_data")
    vout = out / "validate_annotations"
    if vout.exists():
        shutil.rmtree(vout)
    cfg = section(doc, "validate_annotations", ValidateConfig)
    try:
        report = validate(cfg, load_task(doc), out / "ingest_data", vout, tracking=None)
    except DataError:
        if not (vout / REPORT_JSON).is_file():
            raise
        report = read_json(vout / REPORT_JSON)
    return manifest, report


def _side(rev: str, dataset: Path, doc: dict[str, Any], work: Path, slot: str) -> Side:
    if rev == WORKTREE:
        if not dataset.is_dir():
            raise DataError(dataset, "WORKTREE: the dataset folder does not exist")
        manifest, report = analyse(dataset, doc, work / slot)
        return Side(rev, "uncommitted", manifest, report)
    md5 = materialise(rev, Path(f"{dataset}.dvc"), work / slot / "data")
    manifest, report = analyse(work / slot / "data", doc, work / slot)
    return Side(rev, md5, manifest, report)


def _model_results(dataset: Path, rev_a: str, rev_b: str, out: Path) -> dict[str, Any]:
    """How the pipeline's metrics and plots moved between the revisions (WORKTREE: the workspace);
    the plots go beside the report, in `<report>_plots/`."""
    from dvc.repo import Repo  # lazy: importing dvc costs a second; only reviews need it

    root = Path(Repo.find_root(str(dataset.parent)))
    revs = [WORKSPACE if r == WORKTREE else r for r in (rev_a, rev_b)]
    return results_diff(root, revs[0], revs[1], out.with_name(f"{out.stem}_plots"))


def review(
    rev_a: str, rev_b: str, dataset: Path, params: Path, out: Path, work_dir: Path | None = None
) -> ReviewResult:
    """Compare the dataset at two revisions; writes `out` (Markdown) and its `.json` twin.

    The same params (today's `params.yaml`) judge both versions, so the report shows what the
    data change did, not what a params change did.
    """
    dataset = dataset.resolve()
    doc = load_params(params)
    cfg = section(doc, "data_review", ReviewConfig) if "data_review" in doc else ReviewConfig()
    limit = section(doc, "validate_annotations", ValidateConfig).max_quarantine_fraction
    with tempfile.TemporaryDirectory(prefix="lesionops-review-") as tmp:
        work = Path(work_dir) if work_dir is not None else Path(tmp)
        a = _side(rev_a, dataset, doc, work, "a")
        same = rev_a == rev_b or (WORKTREE not in (rev_a, rev_b) and dir_md5(rev_b, Path(f"{dataset}.dvc")) == a.md5)
        b = Side(rev_b, a.md5, a.manifest, a.report) if same else _side(rev_b, dataset, doc, work, "b")
        result = compare(a, b, cfg, limit)
    out.parent.mkdir(parents=True, exist_ok=True)
    result["model_results"] = _model_results(dataset, rev_a, rev_b, out)
    out.write_text(render_markdown(result) + render_results(result["model_results"]), encoding="utf-8")
    twin = write_json(out.with_suffix(".json"), result)
    return ReviewResult(out, twin, result)
