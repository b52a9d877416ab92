"""Register the trained model in the MLflow registry and move the champion alias, safely.

Never promotes on a failed gate (raises GateFailed, so `dvc repro` fails loudly). Keeps the old
champion under `previous` for rollback. Idempotent: promoting the same run twice leaves one
version and the second call is a no-op. Race-safe: every alias move holds one file lock
(`<audit_log>.lock`) and, inside it, checks that the champion is still the one the challenger was
evaluated against (`decision.json` → `champion_version`); if another promotion moved it meanwhile,
the gate's comparison is stale and the promotion is refused (PromotionRefused, exit 4). Every move
is appended to the audit log, and the version carries its gate report, metrics and a model card.

Generic over model kinds: the train folder's `train_summary.json` says `kind` (classifier, the
default, or detector) and may name its `registered_model`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
from filelock import FileLock, Timeout
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from components.common.errors import ConfigError, DataError, GateFailed, Refused
from components.common.io import read_json, write_json
from components.common.onnx_export import ARTIFACT as ONNX_ARTIFACT
from components.common.onnx_export import export_classifier
from components.common.skip import skipped, write_skipped
from components.common.tracking import TrackingConfig, resolved_uri, version_by_alias
from components.promote_model.audit import alias_move, audit_path, record_move
from components.promote_model.card import model_card
from components.promote_model.config import PromoteConfig

SUMMARY = "train_summary.json"  # written by train_model and by the detector stage alike
KINDS = ("classifier", "detector")
CARD = "model_card.md"
SUBGROUPS = "subgroups.json"  # evaluate_model's; promote_model may not import that stage
ARTIFACT_DIR = "promotion"  # where decision.json and the card go in the version's run
MAX_TEXT = 5000  # registry column limit for tag values and version descriptions


class PromotionRefused(Refused):
    """The alias was not moved because doing so now would be unsafe (stale evaluation, or another
    promotion holds the lock). Re-evaluate against the current champion, then promote again."""


def registered_name(tracking: TrackingConfig, kind: str, summary: dict[str, Any] | None = None) -> str:
    """The registry name: the summary's own `registered_model`, else the `mlflow` default for the kind."""
    if kind not in KINDS:
        raise ConfigError(f"model kind must be one of {list(KINDS)}, found {kind!r}")
    if summary and summary.get("registered_model"):
        return str(summary["registered_model"])
    return tracking.registered_detector if kind == "detector" else tracking.registered_model


def version_label(version: str | None) -> str:
    return "none" if version is None else f"v{version}"


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(path, "not found; run the earlier stages first")
    doc = read_json(path)
    if not isinstance(doc, dict):
        raise DataError(path, f"expected a JSON object, found {type(doc).__name__}")
    return doc


def _subgroups(eval_dir: Path) -> dict[str, Any] | None:
    """evaluate_model's metrics per skin tone / body site for the card; None when the evaluation
    wrote none (a detector's, or one from before the file existed)."""
    path = eval_dir / SUBGROUPS
    return _read(path) if path.is_file() else None


def _summary(train_dir: Path) -> tuple[dict[str, Any], str]:
    path = train_dir / SUMMARY
    summary = _read(path)
    missing = [k for k in ("run_id", "model_uri") if not summary.get(k)]
    if missing:
        raise DataError(path, f"missing {missing}; was it written by a training stage?")
    kind = summary.get("kind", "classifier")
    if kind not in KINDS:
        raise DataError(path, f"kind must be one of {list(KINDS)}, found {kind!r}")
    return summary, kind


def gate_report(decision: dict[str, Any]) -> str:
    """`min_accuracy=pass;recall[eczema]=FAIL;…`: every rule's verdict in one registry tag."""
    text = ";".join(f"{r['name']}={'pass' if r['passed'] else 'FAIL'}" for r in decision.get("rules", []))
    return text[:MAX_TEXT]


def _check_gate(decision: dict[str, Any], summary: dict[str, Any], path: Path) -> None:
    if not decision.get("passed"):
        reasons = "; ".join(f"{r['name']}: {r['reason']}" for r in decision.get("rules", []) if not r["passed"])
        raise GateFailed(f"{path}: not promoting run {summary['run_id']}: {reasons or 'gate not passed'}")
    if decision.get("run_id") not in (None, summary["run_id"]):
        raise DataError(
            path,
            f"evaluates run {decision['run_id']}, but the model folder holds run "
            f"{summary['run_id']}; evaluate this model first",
        )


@contextmanager
def promotion_lock(cfg: PromoteConfig) -> Iterator[Path]:
    """Hold `<audit_log>.lock` for one alias move; yields the audit log path. Waits at most
    `lock_timeout_s`, then refuses rather than queueing forever behind a stuck process."""
    log = audit_path(cfg.audit_log)
    log.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(f"{log}.lock", timeout=cfg.lock_timeout_s)
    try:
        lock.acquire()
    except Timeout as exc:
        raise PromotionRefused(
            f"{log}.lock: another promotion or rollback held the registry lock for more than "
            f"promote_model.lock_timeout_s={cfg.lock_timeout_s:g}s; retry when it has "
            "finished"
        ) from exc
    try:
        yield log
    finally:
        lock.release()


def current_version(client: MlflowClient, name: str, alias: str) -> str | None:
    version = version_by_alias(client, name, alias)
    return None if version is None else str(version.version)


def _existing_version(client: MlflowClient, name: str, run_id: str) -> str | None:
    try:
        found = client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
    except MlflowException:
        return None
    return str(min(int(v.version) for v in found)) if found else None


def _write_text(path: Path, text: str) -> Path:
    """Atomic like components.common.io.write_json: a reader never sees half a card."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def _annotate(
    client: MlflowClient,
    name: str,
    version: str,
    summary: dict[str, Any],
    metrics: dict[str, Any],
    decision: dict[str, Any],
    card: Path,
    decision_path: Path,
) -> None:
    """Tags, artifacts and description on the version *before* the alias moves: the alias move is
    the commit point, so a champion is never left without its provenance."""
    run_tags = client.get_run(summary["run_id"]).data.tags
    tags = {
        "data_version": summary.get("data_version", "unknown"),
        "gate_passed": "true",
        "gate_report": gate_report(decision),
        "kind": summary.get("kind", "classifier"),
        **{
            k: f"{v:.4f}"
            for k, v in metrics.items()
            if k.startswith("test_") and isinstance(v, int | float) and not isinstance(v, bool)
        },
    }
    if run_tags.get("git_commit"):
        tags["git_commit"] = run_tags["git_commit"]
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value)[:MAX_TEXT])
    client.log_artifact(summary["run_id"], str(decision_path), ARTIFACT_DIR)
    client.log_artifact(summary["run_id"], str(card), ARTIFACT_DIR)
    text = card.read_text(encoding="utf-8")
    if len(text) > MAX_TEXT:
        text = text[: MAX_TEXT - 80] + f"\n\n… (truncated; full card: artifact {ARTIFACT_DIR}/{CARD})\n"
    client.update_model_version(name, version, description=text)


def _log_onnx(client: MlflowClient, summary: dict[str, Any]) -> None:
    """The classifier as ONNX (logits + embedding outputs, checked against torch to 1e-4) in its run,
    before the alias moves, so serve.backend: onnx finds it with the champion."""
    module = mlflow.pytorch.load_model(summary["model_uri"], map_location="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        prep = read_json(Path(client.download_artifacts(summary["run_id"], "preprocessing.json", tmp)))
        path = Path(tmp) / "model.onnx"
        export_classifier(module, int(prep["image_size"]), path)
        client.log_artifact(summary["run_id"], str(path), ONNX_ARTIFACT.rsplit("/", 1)[0])


def _result(
    cfg: PromoteConfig,
    client: MlflowClient,
    name: str,
    kind: str,
    version: str,
    summary: dict[str, Any],
    metrics: dict[str, Any],
    decision: dict[str, Any],
    moved: bool,
    log: Path,
) -> dict[str, Any]:
    return {
        "name": name,
        "kind": kind,
        "version": version,
        "alias": cfg.alias,
        "moved": moved,
        "previous_alias": cfg.previous_alias,
        "previous_version": current_version(client, name, cfg.previous_alias),
        "evaluated_against": decision.get("champion_version"),
        "run_id": summary["run_id"],
        "gate_report": gate_report(decision),
        "audit_log": str(log),
        "card_artifact": f"{ARTIFACT_DIR}/{CARD}",
        **{k: v for k, v in metrics.items() if k.startswith("test_")},
    }


def run(
    cfg: PromoteConfig,
    tracking: TrackingConfig,
    train_dir: Path,
    eval_dir: Path,
    out_dir: Path,
    patches_dir: Path | None = None,
) -> dict[str, Any]:
    """Promote the model in `train_dir` as evaluated in `eval_dir`; `patches_dir` (optional) adds the
    per-split class counts of its crop_report.json to the model card."""
    decision_path = eval_dir / "decision.json"
    if reason := skipped(decision_path):
        return write_skipped(out_dir / "promotion.json", reason)
    decision = _read(decision_path)
    summary, kind = _summary(train_dir)
    _check_gate(decision, summary, decision_path)
    metrics = _read(eval_dir / "metrics.json")
    crop_report = _read(patches_dir / "crop_report.json") if patches_dir is not None else None
    subgroups = _subgroups(eval_dir)
    mlflow.set_tracking_uri(resolved_uri(tracking))
    client = MlflowClient()
    name = registered_name(tracking, kind, summary)
    expected = decision.get("champion_version")
    expected = None if expected is None else str(expected)
    with promotion_lock(cfg) as log:
        old = current_version(client, name, cfg.alias)
        version = _existing_version(client, name, summary["run_id"])
        if version is not None and version == old:  # the same promotion again: nothing to do
            result = _result(cfg, client, name, kind, version, summary, metrics, decision, False, log)
            write_json(out_dir / "promotion.json", result)
            return result
        if old != expected:
            raise PromotionRefused(
                f"{name}: not promoting run {summary['run_id']}: champion moved from "
                f"{version_label(expected)} to {version_label(old)} since this model was "
                "evaluated; re-evaluate"
            )
        if version is None:
            version = str(mlflow.register_model(summary["model_uri"], name).version)
        card = _write_text(
            out_dir / CARD,
            model_card(summary, metrics, decision, crop_report, name=name, version=version, subgroups=subgroups),
        )
        _annotate(client, name, version, summary, metrics, decision, card, decision_path)
        if cfg.export_onnx and kind == "classifier":
            _log_onnx(client, summary)
        if old is not None:
            client.set_registered_model_alias(name, cfg.previous_alias, old)
        client.set_registered_model_alias(name, cfg.alias, version)
        against = "no champion (first model)" if expected is None else f"champion v{expected}"
        record_move(
            client,
            log,
            alias_move(
                "promote", name, cfg.alias, old, version, summary["run_id"], f"gate passed; evaluated against {against}"
            ),
        )
        result = _result(cfg, client, name, kind, version, summary, metrics, decision, True, log)
    write_json(out_dir / "promotion.json", result)
    return result
