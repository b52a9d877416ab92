"""`lesionops data review` on a throwaway git+DVC repo: two real data versions, one PR's worth of change."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from lesionops.data_review import WORKTREE, CacheMissError, review
from tests.conftest import TINY_CLASSES, tiny_params

DVC = str(Path(sys.executable).with_name("dvc"))


def _sh(repo: Path, *cmd: str) -> str:
    return subprocess.run(cmd, cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def _commit(repo: Path, message: str) -> str:
    _sh(repo, DVC, "add", "--quiet", "data")
    _sh(repo, "git", "add", "data.dvc", ".gitignore", "params.yaml")
    _sh(repo, "git", "commit", "--quiet", "-m", message)
    return _sh(repo, "git", "rev-parse", "HEAD")


def _drop_metadata_row(meta: Path, name: str) -> dict[str, str]:
    with meta.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    keep = [r for r in rows if r["filename"] != name]
    with meta.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(keep)
    return next(r for r in rows if r["filename"] == name)


def _add_metadata_row(meta: Path, row: dict[str, str]) -> None:
    with meta.open("a", newline="") as fh:
        csv.DictWriter(fh, fieldnames=list(row)).writerow(row)


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Rev A: 19 photos (one held back). Rev B: one photo+xml deleted, the held-back one added,
    one XML relabelled, one XML broken. Returns the repo, both revisions and what was done."""
    from lesionops.synth.skin import SynthConfig, generate_skin_dataset

    repo = tmp_path_factory.mktemp("review_repo")
    data = repo / "data"
    generate_skin_dataset(
        SynthConfig(
            out_dir=data,
            n_images=20,
            seed=5,
            image_width=128,
            image_height=96,
            classes=TINY_CLASSES,
            class_priors=(0.5, 0.5),
            images_per_patient_min=1,
            images_per_patient_max=2,
        ),
        progress=False,
    )
    _sh(repo, "git", "init", "--quiet")
    _sh(repo, "git", "config", "user.email", "t@example.com")
    _sh(repo, "git", "config", "user.name", "t")
    _sh(repo, DVC, "init", "--quiet")
    _sh(repo, DVC, "config", "core.analytics", "false")
    (repo / "params.yaml").write_text(yaml.safe_dump(tiny_params(repo)))
    images = sorted((data / "images").glob("*.jpg"))
    held, deleted, relabelled, broken = images[-1], images[0], images[1], images[2]
    stash = repo.parent / f"{repo.name}_held"
    stash.mkdir()
    for p in (held, held.with_suffix(".xml")):
        shutil.move(p, stash / p.name)
    held_row = _drop_metadata_row(data / "metadata.csv", held.name)
    _sh(repo, "git", "add", "-A", ".dvc")
    rev_a = _commit(repo, "data A")

    n_deleted_boxes = deleted.with_suffix(".xml").read_text().count("<object>")
    deleted.unlink()
    deleted.with_suffix(".xml").unlink()
    for p in stash.iterdir():
        shutil.copy(p, data / "images" / p.name)
    _add_metadata_row(data / "metadata.csv", held_row)
    xml = relabelled.with_suffix(".xml")
    text = xml.read_text()
    old = next(c for c in TINY_CLASSES if f"<name>{c}</name>" in text)
    new = next(c for c in TINY_CLASSES if c != old)
    xml.write_text(text.replace(f"<name>{old}</name>", f"<name>{new}</name>"))
    n_broken_boxes = broken.with_suffix(".xml").read_text().count("<object>")
    broken.with_suffix(".xml").write_text("<annotation><filename>oops")
    rev_b = _commit(repo, "data B")
    return {
        "repo": repo,
        "a": rev_a,
        "b": rev_b,
        "held": held.name,
        "deleted": deleted.name,
        "relabelled": relabelled.name,
        "broken": broken.name,
        "n_held_boxes": (stash / held.with_suffix(".xml").name).read_text().count("<object>"),
        "n_deleted_boxes": n_deleted_boxes,
        "n_relabelled_boxes": text.count("<object>"),
        "n_broken_boxes": n_broken_boxes,
        "old": old,
        "new": new,
    }


def test_cli_review_a_to_b_reports_every_change(versions: dict[str, Any], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from lesionops.cli import app

    repo, out = versions["repo"], tmp_path / "review.md"
    res = CliRunner().invoke(
        app,
        [
            "data",
            "review",
            versions["a"],
            versions["b"],
            "--dataset",
            str(repo / "data"),
            "--params",
            str(repo / "params.yaml"),
            "--out",
            str(out),
            "--work-dir",
            str(tmp_path / "work"),
        ],
    )
    assert res.exit_code == 0, res.output
    result = json.loads(out.with_suffix(".json").read_text())
    im, bx = result["images"], result["boxes"]
    assert im["added"] == [f"images/{versions['held']}"]
    assert im["removed"] == [f"images/{versions['deleted']}"]
    assert im["changed"] == []
    assert len(bx["added"]) == versions["n_held_boxes"]
    assert len(bx["removed"]) == versions["n_deleted_boxes"] + versions["n_broken_boxes"]  # malformed: no boxes read
    assert len(bx["changed"]) == versions["n_relabelled_boxes"]
    assert {(c["a"]["label_raw"], c["b"]["label_raw"]) for c in bx["changed"]} == {(versions["old"], versions["new"])}
    assert result["a"]["n_images"] == 19 and result["b"]["n_images"] == 19
    appeared = {(f["severity"], f["code"], Path(f["file"]).stem) for f in result["findings"]["appeared"]}
    assert ("error", "XML_MALFORMED", Path(versions["broken"]).stem) in appeared
    assert result["b"]["n_quarantined"] == result["a"]["n_quarantined"] + 1
    per_class = {r["class"]: r for r in result["boxes_per_class"]}
    assert (
        sum(r["b"] - r["a"] for r in per_class.values())
        == result["b"]["n_accepted_boxes"] - result["a"]["n_accepted_boxes"]
    )
    assert result["verdict"]["status"] == "needs review"
    md = out.read_text()
    assert md.startswith("**Verdict: needs review** — ") and "XML_MALFORMED" in md
    assert "| lichen_planus |" in md and "needs review" in res.output


def test_same_version_is_ok_with_no_changes(versions: dict[str, Any], tmp_path: Path) -> None:
    repo = versions["repo"]
    done = review(versions["a"], versions["a"], repo / "data", repo / "params.yaml", tmp_path / "r.md")
    r = done.result
    assert r["verdict"]["status"] == "OK to merge"
    assert all(not r["images"][k] and not r["boxes"][k] for k in ("added", "removed", "changed"))
    assert not r["findings"]["appeared"] and not r["findings"]["disappeared"]
    assert not r["patients"]["added"] and not r["patients"]["removed"] and not r["patients"]["changed"]
    assert (tmp_path / "r.md").read_text().startswith("**Verdict: OK to merge**")


def test_worktree_compares_uncommitted_data(versions: dict[str, Any], tmp_path: Path) -> None:
    """HEAD (rev B) against the working copy, which is rev B's data: nothing changed."""
    repo = versions["repo"]
    r = review("HEAD", WORKTREE, repo / "data", repo / "params.yaml", tmp_path / "w.md").result
    assert r["b"]["md5"] == "uncommitted"
    assert not r["images"]["added"] and not r["images"]["removed"] and not r["images"]["changed"]
    assert not r["findings"]["appeared"]
    assert r["verdict"]["status"] == "OK to merge"


def test_missing_cache_entry_is_a_clear_error(versions: dict[str, Any], tmp_path: Path) -> None:
    """A file only rev A has, gone from the cache (and no remote): the error names the revision
    and its data version, and says how to get it."""
    repo = versions["repo"]
    cache = repo / ".dvc" / "cache" / "files" / "md5"

    def listing(rev: str) -> tuple[str, dict[str, str]]:
        md5 = yaml.safe_load(_sh(repo, "git", "show", f"{rev}:data.dvc"))["outs"][0]["md5"]
        entries = json.loads((cache / md5[:2] / md5[2:]).read_text())
        return md5, {e["md5"]: e["relpath"] for e in entries}

    md5, files_a = listing(versions["a"])
    only_a = next(m for m in files_a if m not in listing(versions["b"])[1])
    obj, moved = cache / only_a[:2] / only_a[2:], tmp_path / "object"
    shutil.move(obj, moved)
    try:
        with pytest.raises(CacheMissError, match=rf"{versions['a']}.*{md5}|{md5}.*{versions['a']}"):
            review(versions["a"], versions["b"], repo / "data", repo / "params.yaml", tmp_path / "x.md")
    finally:
        shutil.move(moved, obj)


def test_model_results_move_between_revisions_through_dvc_metrics_and_plots_diff(tmp_path: Path) -> None:
    """Two commits of pipeline results (metrics.json + roc.csv, as dvc.yaml declares them): the
    review's model section is dvc's own metrics diff and a rendered plots diff; a revision with no
    results yet is said so."""
    from lesionops.data_review_results import render, results_diff

    repo = tmp_path / "repo"
    out = repo / "outputs" / "evaluate_model"
    out.mkdir(parents=True)
    _sh(repo, "git", "init", "--quiet")
    _sh(repo, "git", "config", "user.email", "t@example.org")
    _sh(repo, "git", "config", "user.name", "t")
    _sh(repo, DVC, "init", "--quiet")
    (repo / "dvc.yaml").write_text(
        "metrics: [outputs/evaluate_model/metrics.json]\nplots:\n  - outputs/evaluate_model/roc.csv: {x: fpr, y: tpr}\n"
    )
    _sh(repo, "git", "add", "-A")
    _sh(repo, "git", "commit", "--quiet", "-m", "no results yet")
    revs = [_sh(repo, "git", "rev-parse", "HEAD")]
    for f1, tpr in ((0.70, 0.6), (0.82, 0.9)):
        (out / "metrics.json").write_text(json.dumps({"test_macro_f1": f1, "n_test": 40}))
        (out / "roc.csv").write_text(f"fpr,tpr\n0,0\n0.2,{tpr}\n1,1\n")
        _sh(repo, "git", "add", "-A")
        _sh(repo, "git", "commit", "--quiet", "-m", f"results {f1}")
        revs.append(_sh(repo, "git", "rev-parse", "HEAD"))

    moved = results_diff(repo, revs[1], revs[2], tmp_path / "review")
    rows = {r["metric"]: r for r in moved["metrics"]}
    assert rows["test_macro_f1"]["old"] == 0.70 and rows["test_macro_f1"]["new"] == 0.82
    assert rows["test_macro_f1"]["change"] == pytest.approx(0.12) and rows["n_test"]["change"] == 0
    assert moved["plots_html"] and "roc.csv" in Path(moved["plots_html"]).read_text()
    text = render(moved)
    assert "| outputs/evaluate_model/metrics.json | test_macro_f1 | 0.7 | 0.82 | +0.12 |" in text
    assert "1 other metric(s) unchanged" in text
    none_yet = results_diff(repo, revs[0], revs[2], tmp_path / "review0")
    assert not none_yet["compared"] and revs[0] in none_yet["reason"] and "Not compared" in render(none_yet)
