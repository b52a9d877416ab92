"""The same stages through two drivers — `dvc repro` and kfp.local — on tiny data, and they agree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from components.common.tracking import TrackingConfig
from components.promote_model.config import PromoteConfig
from components.promote_model.core import run as promote
from lesionops.champion import card_section, champion_card, champion_summary
from tests.conftest import REPO, tiny_params

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _project(tmp: Path, tiny_dataset: Path, name: str) -> tuple[Path, dict]:
    """A throw-away checkout: our code, dvc.yaml, tiny params, the dataset, its own MLflow store."""
    root = tmp / name
    root.mkdir()
    shutil.copytree(REPO / "components", root / "components", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    shutil.copytree(tiny_dataset, root / "data")
    doc = tiny_params(root)
    (root / "params.yaml").write_text(yaml.safe_dump(doc))
    return root, doc


def test_dvc_and_kfp_local_run_the_same_stages_and_agree(tiny_dataset: Path, tmp_path: Path) -> None:
    dvc_root, dvc_doc = _project(tmp_path, tiny_dataset, "dvc")
    _run(["git", "init", "-q"], dvc_root)
    _run([sys.executable, "-m", "dvc", "init", "-q"], dvc_root)
    _run([sys.executable, "-m", "dvc", "repro"], dvc_root)
    promotion = json.loads((dvc_root / "outputs/promote_model/classifier/promotion.json").read_text())
    # what a data-version review draws: the classifier's plots from their CSVs, every evaluation's metrics
    shown = json.loads(_run([sys.executable, "-m", "dvc", "plots", "show", "--json"], dvc_root).stdout)
    drawn = {name for name, plots in shown["data"].items() if plots}
    assert {f"outputs/evaluate_model/{f}" for f in ("confusion.csv", "roc.csv", "reliability.csv", "roc.png")} <= drawn
    assert "outputs/train_model/curves.csv" in drawn and not shown.get("errors"), shown.get("errors")
    shown = json.loads(_run([sys.executable, "-m", "dvc", "metrics", "show", "--json"], dvc_root).stdout)
    files = shown[""]["data"]
    assert files["outputs/evaluate_model/metrics.json"]["data"]["test_macro_f1"] > 0
    assert "best_val_macro_f1" in files["outputs/train_model/train_summary.json"]["data"]
    assert "error" not in files["outputs/train_baseline/baseline_metrics.json"]
    tone = files["outputs/crop_patches/crop_report.json"]["data"]["skin_tone"]["per_split"]  # the data version's
    assert sum(split["measured"] for split in tone.values()) > 0  # skin-tone mix, in `dvc metrics diff` too
    # every stage ran; the ones this task does not use said so instead of failing the graph
    for skipped in (
        "promote_model/detector/promotion.json",
        "train_detector/train_summary.json",
        "crossval/kfold_report.json",
    ):
        assert "skipped" in json.loads((dvc_root / "outputs" / skipped).read_text()), skipped
    assert json.loads((dvc_root / "outputs/monitor_history.json").read_text()) is not None
    assert promotion["version"] == "1" and promotion["alias"] == "champion"
    again = promote(
        PromoteConfig(),
        TrackingConfig(**dvc_doc["mlflow"]),
        dvc_root / "outputs/train_model",
        dvc_root / "outputs/evaluate_model",
        tmp_path / "again",
    )
    assert again["version"] == "1" and again["moved"] is False  # idempotent

    kfp_root, kfp_doc = _project(tmp_path, tiny_dataset, "kfp")
    _run(
        [
            sys.executable,
            "-m",
            "lesionops",
            "pipeline",
            "run",
            "--source",
            "data",
            "--params",
            "params.yaml",
            "--pipeline-root",
            "kfp_root",
        ],
        kfp_root,
    )
    kfp_champion = champion_summary(TrackingConfig(**kfp_doc["mlflow"]))
    assert kfp_champion is not None and kfp_champion["version"] == "1"
    # what `make demo` prints under the champion: its card's table per skin tone, with CIs
    subgroups = card_section(champion_card(kfp_champion["run_id"]) or "", "Subgroups") or ""
    assert "### By skin tone" in subgroups and "accuracy [95 % CI]" in subgroups, subgroups
    assert "### By skin tone" in (dvc_root / "outputs/promote_model/classifier/model_card.md").read_text()

    # Same patches, same splits, same lineage.
    dvc_patches = pd.read_parquet(dvc_root / "outputs/crop_patches/patches.parquet")
    [kfp_table] = list((kfp_root / "kfp_root").rglob("patches.parquet"))
    kfp_patches = pd.read_parquet(kfp_table)
    cols = ["patch_path", "sha256", "box_index", "label", "patient_id", "split"]
    pd.testing.assert_frame_equal(
        dvc_patches[cols].sort_values("patch_path").reset_index(drop=True),
        kfp_patches[cols].sort_values("patch_path").reset_index(drop=True),
    )
    # Same seeded training on the same data: the same test metrics.
    dvc_metrics = json.loads((dvc_root / "outputs/evaluate_model/metrics.json").read_text())
    assert kfp_champion["test_metrics"]["test_macro_f1"] == pytest.approx(dvc_metrics["test_macro_f1"], abs=1e-6)
    assert kfp_champion["test_metrics"]["test_accuracy"] == pytest.approx(dvc_metrics["test_accuracy"], abs=1e-6)

    # A challenger that cannot pass the gate: kfp skips promote_model (dsl.If), champion unchanged.
    strict = {
        **kfp_doc,
        "evaluate_model": {
            **kfp_doc["evaluate_model"],
            "gate": {**kfp_doc["evaluate_model"]["gate"], "min_accuracy": 1.01},
        },
    }
    (kfp_root / "strict.yaml").write_text(yaml.safe_dump(strict))
    out = _run(
        [
            sys.executable,
            "-m",
            "lesionops",
            "pipeline",
            "run",
            "--source",
            "data",
            "--params",
            "strict.yaml",
            "--pipeline-root",
            "kfp_root",
        ],
        kfp_root,
    ).stdout
    assert "gate FAILED (min_accuracy)" in out and "promote_model:" not in out
    after = champion_summary(TrackingConfig(**kfp_doc["mlflow"]))
    assert after is not None and after["version"] == "1"
