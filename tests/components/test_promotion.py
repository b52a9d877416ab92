"""Promotion and rollback against a real SQLite MLflow registry with real (tiny) logged models.

Covers the alias history (champion/previous), the audit log, provenance on the version (tags,
artifacts, model card), refusals (failed gate, stale evaluation, lock held), idempotence, a real
two-process race, and rollback through the promotion history.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
from filelock import FileLock
from mlflow.tracking import MlflowClient

from components.common.bootstrap import BootstrapConfig
from components.common.cli import run_main
from components.common.errors import GateFailed, LesionOpsError
from components.common.io import write_json
from components.common.tracking import TrackingConfig, setup
from components.evaluate_model.subgroups import subgroup_table
from components.promote_model.__main__ import main
from components.promote_model.audit import LAST_MOVE_TAG, read_audit
from components.promote_model.config import PromoteConfig
from components.promote_model.core import PromotionRefused, run
from components.promote_model.rollback import rollback
from lesionops.champion import card_section, champion_card

CLASSES = ["lichen_planus", "psoriasis"]


class _Echo(mlflow.pyfunc.PythonModel):
    """The registry does not care about the flavour: the smallest model that can be logged."""

    def predict(self, context: Any, model_input: list[Any], params: Any = None) -> list[Any]:
        return model_input


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store with its schema created once: migrating a fresh one costs seconds."""
    db = tmp_path_factory.mktemp("store") / "mlflow.db"
    mlflow.set_tracking_uri(f"sqlite:///{db}")
    MlflowClient().search_experiments()
    return db


@pytest.fixture()
def store(tmp_path: Path, empty_store: Path) -> tuple[PromoteConfig, TrackingConfig]:
    """Each test its own registry (a copy of the empty store), artifact root and audit log."""
    (tmp_path / "mlruns").mkdir()
    shutil.copy(empty_store, tmp_path / "mlruns" / "mlflow.db")
    tracking = TrackingConfig(
        tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}",
        artifact_root=str(tmp_path / "mlruns" / "artifacts"),
    )
    return PromoteConfig(audit_log=str(tmp_path / "mlruns" / "audit.jsonl"), lock_timeout_s=60.0), tracking


def _train(tracking: TrackingConfig, root: Path, tag: str, **extra: Any) -> Path:
    """A logged model in its own run plus the train folder a training stage would leave."""
    setup(tracking)
    with mlflow.start_run(run_name=f"train-{tag}") as active:
        mlflow.set_tags({"git_commit": f"commit-{tag}", "data_version": f"data-{tag}"})
        info = mlflow.pyfunc.log_model(name="model", python_model=_Echo(), pip_requirements=["mlflow"])
    out = root / f"train-{tag}"
    write_json(
        out / "train_summary.json",
        {
            "run_id": active.info.run_id,
            "model_uri": info.model_uri,
            "data_version": f"data-{tag}",
            "classes": CLASSES,
            **extra,
        },
    )
    return out


def _evaluate(
    root: Path,
    tag: str,
    train_dir: Path,
    champion: str | None,
    passed: bool = True,
    ci: dict[str, list[float]] | None = None,
    subgroups: dict[str, Any] | None = None,
) -> Path:
    """decision.json + metrics.json as evaluate_model writes them, against `champion`."""
    run_id = json.loads((train_dir / "train_summary.json").read_text())["run_id"]
    rules = [
        {
            "name": "min_accuracy",
            "value": 0.9 if passed else 0.3,
            "threshold": 0.5,
            "passed": passed,
            "reason": "0.9000 ≥ 0.5000" if passed else "0.3000 < 0.5000",
        },
        {
            "name": "non_inferior_to_champion",
            "value": None,
            "threshold": None,
            "passed": True,
            "reason": "no champion yet: first model" if champion is None else "ok",
        },
    ]
    out = root / f"eval-{tag}"
    write_json(
        out / "decision.json",
        {
            "passed": passed,
            "rules": rules,
            "run_id": run_id,
            "failed": [] if passed else ["min_accuracy"],
            "champion_version": champion,
        },
    )
    metrics: dict[str, Any] = {
        "test_accuracy": 0.912345,
        "test_macro_f1": 0.87654,
        "test_recall_lichen_planus": 0.9,
        "test_recall_psoriasis": 0.8,
        "n_test": 40,
        "confusion_matrix": [[18, 2], [4, 16]],
        "per_class": {
            "lichen_planus": {"recall": 0.9, "precision": 0.82, "support": 20},
            "psoriasis": {"recall": 0.8, "precision": 0.89, "support": 20},
        },
    }
    if ci is not None:
        metrics["ci"] = ci
    write_json(out / "metrics.json", metrics)
    if subgroups is not None:
        write_json(out / "subgroups.json", subgroups)
    return out


def _tone_table() -> dict[str, Any]:
    """evaluate_model's subgroups.json for 8 test patients, 4 of light and 4 of dark skin."""
    patients = [f"p{i}" for i in range(8) for _ in range(5)]
    y = np.array([0, 1] * 20)
    tone = ["light"] * 20 + ["dark"] * 20
    table = subgroup_table({"skin_tone": tone}, y, y, patients, patients, tuple(CLASSES), BootstrapConfig(100))
    return {**table, "min_group_size": 4}


def _promote(
    store: tuple[PromoteConfig, TrackingConfig], root: Path, tag: str, champion: str | None, **kwargs: Any
) -> dict[str, Any]:
    cfg, tracking = store
    train = _train(tracking, root, tag)
    return run(cfg, tracking, train, _evaluate(root, tag, train, champion, **kwargs), root / f"out-{tag}")


def _aliases(tracking: TrackingConfig, name: str | None = None) -> dict[str, str]:
    mlflow.set_tracking_uri(tracking.tracking_uri)
    model = MlflowClient().get_registered_model(name or tracking.registered_model)
    return {alias: str(version) for alias, version in model.aliases.items()}


def test_promotions_move_champion_keep_previous_and_leave_provenance(store, tmp_path: Path) -> None:
    cfg, tracking = store
    first = _promote(store, tmp_path, "a", None)
    assert (first["version"], first["moved"], first["previous_version"]) == ("1", True, None)
    patches = tmp_path / "patches"
    write_json(
        patches / "crop_report.json",
        {
            "per_split_class_counts": {
                "train": {"lichen_planus": 60, "psoriasis": 60},
                "val": {"lichen_planus": 9, "psoriasis": 11},
                "test": {"lichen_planus": 20, "psoriasis": 20},
            },
            "patients_per_split": {"train": 30, "val": 6, "test": 8},
        },
    )
    train = _train(tracking, tmp_path, "b")
    second = run(
        cfg,
        tracking,
        train,
        _evaluate(tmp_path, "b", train, "1", ci={"macro_f1": [0.8, 0.93]}, subgroups=_tone_table()),
        tmp_path / "out-b",
        patches,
    )
    assert (second["version"], second["previous_version"]) == ("2", "1")
    assert _aliases(tracking) == {"champion": "2", "previous": "1"}
    assert json.loads((tmp_path / "out-b" / "promotion.json").read_text())["version"] == "2"

    audit = read_audit(Path(cfg.audit_log))
    assert [(r["action"], r["from_version"], r["to_version"]) for r in audit] == [
        ("promote", None, "1"),
        ("promote", "1", "2"),
    ]
    assert audit[1]["run_id"] == second["run_id"] and audit[1]["model"] == tracking.registered_model
    assert {"time", "alias", "user", "host", "reason"} <= set(audit[1])
    client = MlflowClient()
    model = client.get_registered_model(tracking.registered_model)
    assert json.loads(model.tags[LAST_MOVE_TAG]) == audit[1]

    version = client.get_model_version(tracking.registered_model, "2")
    assert version.tags["data_version"] == "data-b" and version.tags["git_commit"] == "commit-b"
    assert version.tags["gate_passed"] == "true"
    assert version.tags["gate_report"] == "min_accuracy=pass;non_inferior_to_champion=pass"
    assert version.tags["test_accuracy"] == "0.9123" and version.tags["test_recall_psoriasis"] == "0.8000"
    assert "n_test" not in version.tags
    card = (tmp_path / "out-b" / "model_card.md").read_text()
    assert version.description == card
    assert "[0.8000, 0.9300]" in card and "| test | 20 | 20 | 8 |" in card
    artifacts = {a.path for a in client.list_artifacts(second["run_id"], "promotion")}
    assert artifacts == {"promotion/decision.json", "promotion/model_card.md"}
    # what `make demo` prints: the champion's card, read back from its run, cut to the subgroup table
    tone = card_section(champion_card(second["run_id"]) or "", "Subgroups") or ""
    assert tone.startswith("## Subgroups") and "### By skin tone" in tone and "| dark | 20 | 4 |" in tone
    assert "## Calibration" not in tone
    assert card_section(champion_card(first["run_id"]) or "", "Subgroups") == (
        "## Subgroups\n\nNot reported by this evaluation (no subgroup column in its subgroups.json, or none given)."
    )


def test_failed_gate_leaves_the_registry_alone(store, tmp_path: Path) -> None:
    cfg, tracking = store
    _promote(store, tmp_path, "a", None)
    with pytest.raises(GateFailed, match="min_accuracy: 0.3000 < 0.5000"):
        _promote(store, tmp_path, "b", "1", passed=False)
    client = MlflowClient()
    assert [v.version for v in client.search_model_versions(f"name='{tracking.registered_model}'")] == [1]
    assert _aliases(tracking) == {"champion": "1"} and len(read_audit(Path(cfg.audit_log))) == 1


def test_the_same_promotion_twice_is_a_noop(store, tmp_path: Path) -> None:
    cfg, tracking = store
    train = _train(tracking, tmp_path, "a")
    evaluation = _evaluate(tmp_path, "a", train, None)
    run(cfg, tracking, train, evaluation, tmp_path / "out")
    again = run(cfg, tracking, train, evaluation, tmp_path / "again")
    assert (again["version"], again["moved"]) == ("1", False)
    assert len(MlflowClient().search_model_versions(f"name='{tracking.registered_model}'")) == 1
    assert len(read_audit(Path(cfg.audit_log))) == 1


def test_stale_evaluation_is_refused_with_exit_4(store, tmp_path: Path, capsys) -> None:
    cfg, tracking = store
    _promote(store, tmp_path, "a", None)
    _promote(store, tmp_path, "b", "1")
    train = _train(tracking, tmp_path, "c")
    evaluation = _evaluate(tmp_path, "c", train, "1")  # judged against v1, but v2 is champion now
    params = json.dumps({"promote_model": vars(cfg), "mlflow": vars(tracking)})
    with pytest.raises(SystemExit) as exit_info:
        run_main(
            main,
            [
                "--model",
                str(train),
                "--evaluation",
                str(evaluation),
                "--out",
                str(tmp_path / "out-c"),
                "--params-json",
                params,
            ],
        )
    assert exit_info.value.code == 4
    assert "champion moved from v1 to v2 since this model was evaluated; re-evaluate" in capsys.readouterr().err
    assert _aliases(tracking) == {"champion": "2", "previous": "1"}
    assert len(MlflowClient().search_model_versions(f"name='{tracking.registered_model}'")) == 2
    assert len(read_audit(Path(cfg.audit_log))) == 2 and not (tmp_path / "out-c" / "promotion.json").exists()


def test_a_held_lock_refuses_after_the_timeout(store, tmp_path: Path) -> None:
    cfg, tracking = store
    train = _train(tracking, tmp_path, "a")
    evaluation = _evaluate(tmp_path, "a", train, None)
    impatient = PromoteConfig(audit_log=cfg.audit_log, lock_timeout_s=0.2)
    with FileLock(f"{cfg.audit_log}.lock"), pytest.raises(PromotionRefused, match="lock_timeout_s=0.2s"):
        run(impatient, tracking, train, evaluation, tmp_path / "out")
    assert read_audit(Path(cfg.audit_log)) == []


def _promote_in_child(
    cfg: PromoteConfig, tracking: TrackingConfig, train: Path, evaluation: Path, out: Path, barrier: Any, results: Any
) -> None:
    """One racer: everything imported, then released at the same instant as the other one."""
    barrier.wait(timeout=120)
    try:
        results.put(("promoted", run(cfg, tracking, train, evaluation, out)["version"]))
    except PromotionRefused as exc:
        results.put(("refused", str(exc)))
    except Exception as exc:  # reported to the parent, which fails the test with it
        results.put(("error", repr(exc)))


@pytest.mark.slow  # two fresh interpreters import mlflow (~5 s each on an idle core)
def test_two_promotions_at_once_one_wins_the_other_is_refused(store, tmp_path: Path) -> None:
    cfg, tracking = store
    _promote(store, tmp_path, "a", None)
    racers = {tag: _train(tracking, tmp_path, tag) for tag in ("b", "c")}
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(
            target=_promote_in_child,
            args=(
                cfg,
                tracking,
                train,
                _evaluate(tmp_path, tag, train, "1"),
                tmp_path / f"out-{tag}",
                barrier,
                results,
            ),
        )
        for tag, train in racers.items()
    ]
    for proc in procs:
        proc.start()
    outcomes = sorted(results.get(timeout=180) for _ in procs)
    for proc in procs:
        proc.join(timeout=60)
    assert [o[0] for o in outcomes] == ["promoted", "refused"], outcomes
    assert outcomes[0][1] == "2" and "champion moved from v1 to v2" in outcomes[1][1]
    client = MlflowClient()
    versions = client.search_model_versions(f"name='{tracking.registered_model}'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    assert _aliases(tracking) == {"champion": "2", "previous": "1"}
    audit = read_audit(Path(cfg.audit_log))
    assert [(r["from_version"], r["to_version"]) for r in audit] == [(None, "1"), ("1", "2")]


def test_rollback_walks_back_through_the_promotion_history(store, tmp_path: Path) -> None:
    cfg, tracking = store
    for tag, champion in (("a", None), ("b", "1"), ("c", "2")):
        _promote(store, tmp_path, tag, champion)
    first = rollback(cfg, tracking, reason="v3 misreads dark photos")
    assert (first["from_version"], first["to_version"], first["previous_version"]) == ("3", "2", "1")
    assert _aliases(tracking) == {"champion": "2", "previous": "1"}
    last = read_audit(Path(cfg.audit_log))[-1]
    assert (last["action"], last["from_version"], last["to_version"], last["reason"]) == (
        "rollback",
        "3",
        "2",
        "v3 misreads dark photos",
    )
    assert (
        MlflowClient()
        .get_model_version(tracking.registered_model, "3")
        .tags["rolled_back"]
        .endswith("v3 misreads dark photos")
    )
    second = rollback(cfg, tracking)
    assert (second["to_version"], second["previous_version"]) == ("1", None)
    assert _aliases(tracking) == {"champion": "1"}
    with pytest.raises(LesionOpsError, match="nothing to roll back to"):
        rollback(cfg, tracking)
    assert [r["action"] for r in read_audit(Path(cfg.audit_log))] == ["promote"] * 3 + ["rollback"] * 2


def test_rollback_of_an_empty_registry_says_nothing_to_roll_back(store) -> None:
    cfg, tracking = store
    with pytest.raises(LesionOpsError, match="nothing to roll back to"):
        rollback(cfg, tracking)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [({"kind": "detector"}, "lesionops-detector"), ({"kind": "detector", "registered_model": "own-name"}, "own-name")],
)
def test_detectors_go_to_their_own_registered_model(
    store, tmp_path: Path, extra: dict[str, str], expected: str
) -> None:
    cfg, tracking = store
    train = _train(tracking, tmp_path, "det", **extra)
    result = run(cfg, tracking, train, _evaluate(tmp_path, "det", train, None), tmp_path / "out")
    assert (result["name"], result["kind"], result["version"]) == (expected, "detector", "1")
    assert _aliases(tracking, expected) == {"champion": "1"}
    assert MlflowClient().get_registered_model(expected).latest_versions[0].tags["kind"] == "detector"
    if expected == tracking.registered_detector:
        with pytest.raises(LesionOpsError, match="nothing to roll back to"):
            rollback(cfg, tracking, kind="detector")
