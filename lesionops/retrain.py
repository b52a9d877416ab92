"""Close the loop: reviewed feedback → the training data → a training run → a new champion.

The expert review page writes every accepted report as a labelImg Pascal VOC pair (`images/` +
`Annotations/<stem>.xml`, the VOC devkit layout ingest_data pairs) into the feedback dataset (`serve.feedback_dir`, its own `.dvc` file). When
the retrain policy says so, `merge_feedback` links those pairs into a subfolder of the training
data and adds a metadata.csv row per image (patient `feedback:<image sha>` so a reported image can
never sit on both sides of a split, label source `expert_review`); then both folders are
re-versioned with DVC and the same training pipeline runs (kfp.local here, a Kubeflow run when
`retrain.target: kubeflow`). The new data passes ingest and validation like any upload, so a bad
review is quarantined with a reason, not trained on. Each retrain records, per feedback image, the
data version it went into (a `merge` event in the serving store), which `lesionops audit` follows
from a report to the models trained on it. Each window also applies `serve.retention_days`.
"""

from __future__ import annotations

import csv
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.common.errors import ConfigError, DataError
from components.common.hashing import sha256_file
from components.common.images import PHOTO_EXTENSIONS
from pipelines.schedule import RetrainConfig


@dataclass(frozen=True)
class MergeResult:
    added: int  # pairs new in the training data this time
    present: int  # pairs already there from an earlier merge (same bytes)
    folder: Path


def _link(src: Path, dst: Path) -> bool:
    """Place `src` at `dst` (hard link, copy across filesystems); False when the same bytes are
    already there. A different file under the same name is an error: never overwrite data."""
    if dst.exists():
        if sha256_file(dst) == sha256_file(src):
            return False
        raise DataError(dst, f"already exists with different content than {src}; refusing to overwrite")
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return True


def feedback_pairs(feedback_dir: Path) -> list[tuple[Path, Path]]:
    """(image, VOC xml) pairs of the feedback dataset, paired by ingest_data's own rule (XML beside
    the image or in a sibling `Annotations/`); an image without its XML is an error."""
    from components.ingest_data.discover import voc_candidates

    if not feedback_dir.is_dir():
        return []
    pairs = []
    for image in sorted(p for p in feedback_dir.rglob("*") if p.suffix.lower() in PHOTO_EXTENSIONS):
        xml = next((c for c in voc_candidates(image) if c.is_file()), None)
        if xml is None:
            raise DataError(
                image, f"accepted feedback image has no annotation {image.stem}.xml beside it or in ../Annotations/"
            )
        pairs.append((image, xml))
    return pairs


def _append_metadata(data_dir: Path, rows: list[dict[str, str]]) -> None:
    path = data_dir / "metadata.csv"
    fields = ["filename", "patient_id", "body_site", "label_source"]
    known: set[str] = set()
    if path.is_file():
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            fields = list(reader.fieldnames or fields)
            known = {r["filename"] for r in reader}
    new = [r for r in rows if r["filename"] not in known]
    if not new:
        return
    write_header = not path.is_file()
    with path.open("a", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore", restval="")
        if write_header:
            writer.writeheader()
        writer.writerows(new)


def merge_feedback(feedback_dir: Path, cfg: RetrainConfig) -> MergeResult:
    """Link every accepted (image, xml) pair into `<data>/<merge_folder>/` and list the images in
    the data's metadata.csv. Idempotent: a second merge of the same feedback adds nothing."""
    data_dir = Path(cfg.data)
    if not data_dir.is_dir():
        raise DataError(data_dir, "training data folder does not exist (retrain.data)")
    target = data_dir / cfg.merge_folder
    added = present = 0
    rows = []
    for image, xml in feedback_pairs(feedback_dir):
        rel = image.relative_to(feedback_dir)
        new_image = _link(image, target / rel)
        _link(xml, target / xml.relative_to(feedback_dir))  # same layout, so ingest pairs them the same way
        added, present = added + new_image, present + (not new_image)
        rows.append(
            {
                "filename": (target / rel).relative_to(data_dir).as_posix(),
                "patient_id": f"feedback:{sha256_file(image)[:16]}",
                "body_site": "",
                "label_source": "expert_review",
            }
        )
    _append_metadata(data_dir, rows)
    return MergeResult(added, present, target)


def launch_training(doc: dict[str, Any], cfg: RetrainConfig, data_version: str) -> dict[str, Any]:
    """Run the training pipeline on the merged data: kfp.local here, or submit it to Kubeflow."""
    source = Path(cfg.data)
    if cfg.target == "local":
        from pipelines.local import run_training

        root = Path(cfg.pipeline_root)
        root.mkdir(parents=True, exist_ok=True)
        run_training(source, doc, root, data_version, root / "retrain.log")
        return {"target": "local", "log": str(root / "retrain.log")}
    # Pods cannot read this machine's folder: bring `kubeflow.source_uri` to exactly its bytes
    # first, so the DVC md5 is also the fingerprint (cache key) of what the run reads.
    from components.common.params import section
    from pipelines.datasource import mirror_to_s3
    from pipelines.kubeflow import KubeflowConfig
    from pipelines.submit import run_request, submit_training

    kube = section(doc, "kubeflow", KubeflowConfig)
    if not kube.source_uri:
        raise ConfigError(
            f"retrain.target is 'kubeflow' but kubeflow.source_uri is not set: the cluster cannot "
            f"read {source}; set it to the s3:// prefix that mirrors it"
        )
    run_request(doc, kube.source_uri, data_version, experiment=cfg.experiment)  # refuse before uploading
    copied = mirror_to_s3(source, kube.source_uri)
    run = submit_training(
        doc,
        kube.source_uri,
        host=cfg.kubeflow_host,
        experiment=cfg.experiment,
        run_name=f"retrain-{data_version[:12]}",
        data_version=data_version,
    )
    return {
        "target": "kubeflow",
        "run_id": run["run_id"],
        "host": cfg.kubeflow_host,
        "source_uri": kube.source_uri,
        "uploaded": copied["uploaded"],
    }


def retrain_now(
    doc: dict[str, Any], cfg: RetrainConfig, feedback_dir: Path, store_url: str | None = None
) -> dict[str, Any]:
    """Merge accepted feedback into the data, re-version both with DVC, record which data version
    each feedback image went into (in the store at `store_url`), launch the training pipeline."""
    from components.common.store import Store
    from lesionops.audit_trail import record_merge
    from lesionops.datavc import track

    merged = merge_feedback(feedback_dir, cfg)
    pairs = feedback_pairs(feedback_dir)
    versions = {"feedback": track(feedback_dir) if pairs else "empty", "data": track(Path(cfg.data))}
    if store_url is not None:
        store = Store(store_url)
        try:
            record_merge(store, feedback_dir, [image for image, _ in pairs], versions["data"], versions["feedback"])
        finally:
            store.close()
    launched = launch_training(doc, cfg, versions["data"])
    return {
        "merged": merged.added,
        "already_merged": merged.present,
        "data_version": versions["data"],
        "feedback_version": versions["feedback"],
        **launched,
    }


def retention(serve: Any, now: Any = None) -> dict[str, Any]:
    """Delete the stored photos of unreported predictions older than `serve.retention_days`."""
    from components.common.retention import apply_retention
    from components.common.store import Store

    store = Store(serve.store_url)
    try:
        return apply_retention(store, Path(serve.image_dir), serve.retention_days, now).summary()
    finally:
        store.close()


def monitor_cycle(doc: dict[str, Any], *, reference: Path | None = None, now: Any = None) -> dict[str, Any]:
    """One scheduled window: drift tests + policy on the serving store; on "retrain", do it.

    Writes `<monitor_dir>/<window time>/` (drift.json, reports, decision.json, retention.json when
    `serve.retention_days` is set, and retrain.json when a run was launched) and appends the window
    to `<monitor_dir>/history.json`."""
    import json
    from datetime import UTC, datetime

    from components.common.params import section
    from components.common.tracking import TrackingConfig
    from components.monitor_drift.config import MonitorConfig
    from components.monitor_drift.core import run_store
    from lesionops.serve.config import ServeConfig

    cfg, serve = section(doc, "retrain", RetrainConfig), section(doc, "serve", ServeConfig)
    when = now or datetime.now(UTC)
    root = Path(cfg.monitor_dir)
    out = root / when.strftime("%Y%m%dT%H%M%S%fZ")
    result = run_store(
        section(doc, "monitor_drift", MonitorConfig),
        serve.store_url,
        out,
        reference_dir=reference,
        tracking=section(doc, "mlflow", TrackingConfig),
        alias=serve.champion_alias,
        history_file=root / "history.json",
        now=when,
    )
    result["out"] = str(out)
    if serve.retention_days is not None:
        result["retention"] = retention(serve, when)
        (out / "retention.json").write_text(json.dumps(result["retention"], indent=2), encoding="utf-8")
    if result["decision"]["retrain"]:
        result["retrain"] = retrain_now(doc, cfg, Path(serve.feedback_dir), serve.store_url)
        (out / "retrain.json").write_text(json.dumps(result["retrain"], indent=2), encoding="utf-8")
    return result
