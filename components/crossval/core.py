"""Grouped repeated k-fold report (seed 002: patient-grouped, class-stratified 10 × 3-fold).

One test split says how good *this* model is; k-fold says how much the score moves when the
patients move, which is what a small clinical data set needs before anyone trusts a 2-point gain.
For every (repeat, fold) of crop_patches' `folds.parquet`, each model in `models` is trained on
the other folds' patients and scored on the held-out ones:

- `baseline`: train_baseline's HOG + colour-histogram features (extracted once for the whole
  pool) and its scaler + linear-SVM pipeline, with train_baseline's configured C (`search_c`
  picks it per fold from `c_grid` on the validation slice instead).
- `cnn`: train_model's own network, loop and early stopping on in-memory batches, normalised with
  the fold's own training patches' statistics (as train_model does with its train split).

Only un-augmented patches are pooled. crop_patches' oversampled copies are flips/turns of one
patch: a copy in train and its original in the held-out fold would be the same lesion on both
sides. They are dropped and both models get balanced class weights instead (`rebalance`).
The validation slice (early stopping, C search) is carved from the training patients only,
grouped by patient; both models fit on the same remaining patients, so their per-fold paired
difference compares like with like, and the baseline never sees more data than the CNN.

Wiring: `params.yaml` → `crossval` (`CrossvalConfig`), plus the `train_model` and `train_baseline`
sections whose networks it trains; `run` writes `kfold_report.json`, `.md` and `.png` and logs one
MLflow parent run "kfold" with one nested run per (model, repeat, fold). With `crossval.enabled`
false the stage only records that it was skipped, so `dvc repro` and the pipeline keep one graph.
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch
from rich.progress import Progress

from components.common.baseline import BaselineConfig, extract_features, select_c
from components.common.baseline import fit as fit_baseline
from components.common.classifier.config import TrainConfig
from components.common.classifier.data import decode_patch
from components.common.classifier.distributed import Dist
from components.common.classifier.engine import predict
from components.common.classifier.loader import MemorySource
from components.common.classifier.loop import fit as fit_cnn
from components.common.classifier.models import build_model, freeze
from components.common.classifier.pretrained import load_weights
from components.common.device import pick_device
from components.common.errors import DataError
from components.common.folds import check_folds
from components.common.io import write_json
from components.common.metrics import classification_metrics
from components.common.skip import not_trained, write_skipped
from components.common.task import TaskConfig
from components.common.tracking import EpochLogger, TrackingConfig, git_commit, metric_key, setup
from components.crossval import report as kfold_report
from components.crossval.config import CrossvalConfig

FOLDS, PATCHES, CROPS = "folds.parquet", "patches.parquet", "crops.parquet"
REPORT_JSON, REPORT_MD, REPORT_PNG = "kfold_report.json", "kfold_report.md", "kfold_report.png"
CNN_EXTRAS = ("best_epoch", "best_val_macro_f1", "kept_epoch", "epochs_run")


@dataclass(frozen=True)
class Pool:
    """Every un-augmented patch, whatever its split (seed 002 pools all data for k-fold)."""

    frame: pd.DataFrame  # patch_id, patch_path, label, patient_id; sorted by patch_id
    labels: np.ndarray  # class index per row
    patients: np.ndarray  # patient id (str) per row
    dropped_augmented: int  # oversampled copies left out (see the module doc)
    undersampled: int  # crops that balancing dropped: crop_patches pruned their files, so they cannot join


@dataclass(frozen=True)
class Fold:
    """Row indices into the pool; `fit` + `val` are the training patients, `test` the held-out ones."""

    repeat: int
    fold: int
    fit: np.ndarray
    val: np.ndarray
    test: np.ndarray
    skipped: str | None


def read_pool(patch_dir: Path, classes: tuple[str, ...]) -> tuple[Pool, pd.DataFrame]:
    """The base patches and the fold table; missing or stale files are DataErrors naming them."""
    folds_path, table_path = patch_dir / FOLDS, patch_dir / PATCHES
    if not folds_path.is_file():
        raise DataError(folds_path, "not found; set crop_patches.kfold.enabled: true and re-run crop_patches")
    if not table_path.is_file():
        raise DataError(table_path, "patch table not found; run crop_patches first")
    folds = pd.read_parquet(folds_path)
    if missing := {"patient_id", "repeat", "fold"} - set(folds.columns):
        raise DataError(folds_path, f"missing column(s) {sorted(missing)}; re-run crop_patches")
    folds = folds.astype({"patient_id": str})
    check_folds(folds, str(folds_path))
    table = pd.read_parquet(table_path)
    base = table[table.augment == "none"] if "augment" in table.columns else table
    if unknown := sorted(set(base.label) - set(classes)):
        raise DataError(table_path, f"labels {unknown} are not in task.classes {list(classes)}")
    base = base.sort_values("patch_id", kind="stable").reset_index(drop=True)
    index = {c: i for i, c in enumerate(classes)}
    crops = patch_dir / CROPS
    undersampled = int(
        (~pd.read_parquet(crops, columns=["patch_id"]).patch_id.isin(base.patch_id)).sum() if crops.is_file() else 0
    )
    pool = Pool(
        base,
        base.label.map(index).to_numpy(np.int64),
        base.patient_id.astype(str).to_numpy(),
        len(table) - len(base),
        undersampled,
    )
    for repeat, part in folds.groupby("repeat"):
        if unassigned := sorted(set(pool.patients) - set(part.patient_id)):
            raise DataError(
                folds_path,
                f"{len(unassigned)} patient(s) of {table_path.name} have no fold in repeat "
                f"{repeat} (e.g. {unassigned[:3]}); the fold table is stale: re-run crop_patches",
            )
    return pool, folds


def skip_reason(classes: tuple[str, ...], y_train: np.ndarray, y_fit: np.ndarray | None, n_test: int) -> str | None:
    """Why a fold cannot be scored (None: it can). A model trained without a class never predicts
    it, so its recall would be 0 by construction, not by skill: such a fold is reported, not run."""
    missing = [c for i, c in enumerate(classes) if not (y_train == i).any()]
    if missing:
        return f"the training part has no patches of class(es) {missing}"
    if n_test == 0:
        return "the held-out fold has no patches"
    if y_fit is None:
        return "too few training patients to carve a validation slice (lower crossval.val_fraction)"
    missing = [c for i, c in enumerate(classes) if not (y_fit == i).any()]
    if missing:
        return f"the validation slice took every training patient of class(es) {missing}"
    return None


def carve_val(
    y: np.ndarray, groups: np.ndarray, cfg: CrossvalConfig, seed: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """(fit, val) positions within the training rows: one stratified, patient-grouped slice of
    about `val_fraction`; None when there are fewer patients than slices."""
    from sklearn.model_selection import StratifiedGroupKFold  # 3 s to import: only when asked

    splits = max(2, round(1 / cfg.val_fraction))
    if len(np.unique(groups)) < splits:
        return None
    with warnings.catch_warnings():  # "least populated class has only n members": skip_reason judges that
        warnings.simplefilter("ignore", UserWarning)
        splitter = StratifiedGroupKFold(n_splits=splits, shuffle=True, random_state=seed)
        return next(splitter.split(np.zeros(len(y)), y, groups))


def plan_folds(pool: Pool, folds: pd.DataFrame, cfg: CrossvalConfig, classes: tuple[str, ...]) -> list[Fold]:
    """Every (repeat, fold) in order, capped at `max_folds`, with its rows and skip reason."""
    pairs = folds[["repeat", "fold"]].drop_duplicates().sort_values(["repeat", "fold"]).itertuples(index=False)
    plan = []
    for repeat, fold in list(pairs)[: cfg.max_folds or None]:
        part = folds[folds.repeat == repeat]
        held_out = set(part.patient_id[part.fold == fold])
        is_test = np.isin(pool.patients, list(held_out))
        train, test = np.flatnonzero(~is_test), np.flatnonzero(is_test)
        carved = carve_val(pool.labels[train], pool.patients[train], cfg, cfg.seed + 1000 * int(repeat) + int(fold))
        fit, val = (train[carved[0]], train[carved[1]]) if carved else (train, train[:0])
        reason = skip_reason(classes, pool.labels[train], pool.labels[fit] if carved else None, len(test))
        plan.append(Fold(int(repeat), int(fold), fit, val, test, reason))
    return plan


def decode_pool(pool: Pool, patch_dir: Path, size: int) -> torch.Tensor:
    """All pool patches as one N×3×size×size uint8 tensor (decoded once, shared by every fold)."""
    images = torch.empty(len(pool.frame), 3, size, size, dtype=torch.uint8)
    for i, rel in enumerate(pool.frame.patch_path):
        images[i] = torch.from_numpy(decode_patch(patch_dir / "patches" / rel, size)).permute(2, 0, 1)
    return images


def scores(y: np.ndarray, pred: np.ndarray, classes: tuple[str, ...]) -> dict[str, Any]:
    m = classification_metrics(y, pred, classes)
    return {
        "accuracy": m["accuracy"],
        "macro_f1": m["macro_f1"],
        "macro_recall": m["macro_recall"],
        "per_class_recall": {c: pc["recall"] for c, pc in m["per_class"].items()},
        "support": {c: pc["support"] for c, pc in m["per_class"].items()},
        "confusion_matrix": m["confusion_matrix"],
        "n_test": m["n"],
    }


def run_baseline(
    x: np.ndarray, y: np.ndarray, fold: Fold, cfg: BaselineConfig, search_c: bool, classes: tuple[str, ...]
) -> tuple[np.ndarray, dict[str, Any]]:
    """Fit on the fold's fit rows (C fixed, or searched on its val slice); predict the held-out rows."""
    if search_c:
        model, chosen, search = select_c(cfg, (x[fold.fit], y[fold.fit]), (x[fold.val], y[fold.val]), classes)
        converged = next(s["converged"] for s in search if s["C"] == chosen)
        extra: dict[str, Any] = {"C": chosen, "c_search": search}
    else:
        model, converged = fit_baseline(cfg, cfg.C, x[fold.fit], y[fold.fit])
        extra = {"C": cfg.C}
    return model.predict(x[fold.test]), {**extra, "converged": converged}


def initial_state(cfg: TrainConfig, n_classes: int) -> dict[str, torch.Tensor]:
    """The network every fold starts from (seeded; pretrained weights read once, not per fold)."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.arch, n_classes, cfg.dropout)
    if cfg.pretrained != "none" or cfg.pretrained_path:
        load_weights(model, cfg.arch, cfg.pretrained, cfg.pretrained_path)
    return copy.deepcopy(model.state_dict())


def run_cnn(
    images: torch.Tensor,
    y: np.ndarray,
    patients: np.ndarray,
    fold: Fold,
    cfg: TrainConfig,
    task: TaskConfig,
    start: dict[str, torch.Tensor],
    device: torch.device,
    on_epoch: Any,
) -> tuple[np.ndarray, dict[str, Any]]:
    """train_model's loop on the fit rows, early stopping on the val rows; best weights predict the test rows."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.arch, len(task.classes), cfg.dropout)
    model.load_state_dict(start)
    frozen = freeze(model, cfg.arch, cfg.freeze_layers)
    model = model.to(device)
    if cfg.channels_last and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    labels = torch.from_numpy(y)
    train = MemorySource(images[fold.fit], labels[fold.fit], device, cfg.gpu_memory_fraction)
    units = tuple(str(p) for p in patients[fold.val])  # the val rows' bootstrap units (keep_weights)
    val = MemorySource(images[fold.val], labels[fold.val], device, cfg.gpu_memory_fraction, units)
    with tempfile.TemporaryDirectory(prefix="lesionops-kfold-") as scratch:  # fit's last.pt: not kept
        state = fit_cnn(model, train, val, cfg, task, device, Dist(), Path(scratch), frozen, on_epoch=on_epoch)
    assert state.best_state is not None  # the first epoch always beats the initial score of -1
    model.load_state_dict(state.best_state)
    probs = predict(model.eval(), images[fold.test], device, state.norm)
    return probs.argmax(1), {
        "best_epoch": state.best_epoch,
        "best_val_macro_f1": state.best_score,
        "kept_epoch": state.kept_epoch,
        "epochs_run": len(state.history),
    }


def _fold_record(pool: Pool, fold: Fold) -> dict[str, Any]:
    """The fold's patients as actually used (from the rows, not the fold table) and its sizes."""
    patients = {part: sorted(set(pool.patients[getattr(fold, part)])) for part in ("fit", "val", "test")}
    if set(patients["test"]) & (set(patients["fit"]) | set(patients["val"])):
        raise DataError(FOLDS, f"repeat {fold.repeat} fold {fold.fold}: a patient is on both sides")
    return {
        "repeat": fold.repeat,
        "fold": fold.fold,
        "skipped": fold.skipped,
        "patients": patients,
        "n_patches": {part: int(len(getattr(fold, part))) for part in ("fit", "val", "test")},
        "results": {},
    }


class _Models:
    """What the folds share: decoded pixels, baseline features, the starting network, configs."""

    def __init__(
        self,
        cfg: CrossvalConfig,
        task: TaskConfig,
        pool: Pool,
        patch_dir: Path,
        train_cfg: TrainConfig,
        baseline_cfg: BaselineConfig,
    ) -> None:
        self.cfg, self.task, self.pool = cfg, task, pool
        weights = "balanced" if cfg.rebalance else None
        self.train_cfg = dataclasses.replace(
            train_cfg,
            epochs=cfg.epochs or train_cfg.epochs,
            resume=None,
            class_weights=weights or train_cfg.class_weights,
        )
        self.baseline_cfg = dataclasses.replace(baseline_cfg, class_weight=weights or baseline_cfg.class_weight)
        self.device = pick_device(train_cfg.device)
        if train_cfg.threads:
            torch.set_num_threads(train_cfg.threads)
        self.images = decode_pool(pool, patch_dir, train_cfg.image_size) if "cnn" in cfg.models else None
        self.features = None
        if "baseline" in cfg.models:
            same = self.images is not None and baseline_cfg.image_size == train_cfg.image_size
            pixels = (
                self.images
                if same and self.images is not None
                else decode_pool(pool, patch_dir, baseline_cfg.image_size)
            )
            self.features = extract_features(pixels.permute(0, 2, 3, 1).contiguous().numpy(), self.baseline_cfg)
        self.start = initial_state(self.train_cfg, len(task.classes)) if "cnn" in cfg.models else None

    def predict(self, model: str, fold: Fold, run_id: str) -> tuple[np.ndarray, dict[str, Any]]:
        if model == "baseline":
            assert self.features is not None
            return run_baseline(
                self.features, self.pool.labels, fold, self.baseline_cfg, self.cfg.search_c, self.task.classes
            )

        assert self.images is not None and self.start is not None
        logger = EpochLogger(run_id, self.train_cfg.log_every)
        pred, extra = run_cnn(
            self.images,
            self.pool.labels,
            self.pool.patients,
            fold,
            self.train_cfg,
            self.task,
            self.start,
            self.device,
            logger,
        )
        logger.flush()
        return pred, extra


def _child(models: _Models, model: str, fold: Fold, record: dict[str, Any]) -> None:
    """One nested MLflow run for (model, repeat, fold), carrying its metrics (or why it was skipped)."""
    with mlflow.start_run(run_name=f"{model}-r{fold.repeat}-f{fold.fold}", nested=True) as child:
        mlflow.set_tags({"model": model, "repeat": fold.repeat, "fold": fold.fold, "skipped": fold.skipped or "no"})
        if fold.skipped:
            return
        pred, extra = models.predict(model, fold, child.info.run_id)
        result = {
            **scores(models.pool.labels[fold.test], pred, models.task.classes),
            **extra,
            "run_id": child.info.run_id,
        }
        record["results"][model] = result
        mlflow.log_metrics(
            {
                "accuracy": result["accuracy"],
                "macro_f1": result["macro_f1"],
                "macro_recall": result["macro_recall"],
                **{metric_key(f"recall_{c}"): v for c, v in result["per_class_recall"].items()},
                **{k: float(v) for k, v in extra.items() if k in CNN_EXTRAS},
            }
        )
        mlflow.log_params({k: v for k, v in extra.items() if k in ("C", "converged")})


def _parent_params(cfg: CrossvalConfig, models: _Models, report: dict[str, Any]) -> dict[str, Any]:
    return {
        **{f"kfold_{k}": (",".join(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()},
        "arch": models.train_cfg.arch,
        "epochs": models.train_cfg.epochs,
        "cnn_image_size": models.train_cfg.image_size,
        "baseline_image_size": models.baseline_cfg.image_size,
        "baseline_C": "searched per fold" if cfg.search_c else models.baseline_cfg.C,
        "n_patches": report["pool"]["n_patches"],
        "n_patients": report["pool"]["n_patients"],
        "n_folds_run": report["n_folds_run"],
        "n_folds_total": report["n_folds_total"],
    }


def run(
    cfg: CrossvalConfig,
    task: TaskConfig,
    tracking: TrackingConfig,
    patch_dir: Path,
    out_dir: Path,
    train_cfg: TrainConfig,
    baseline_cfg: BaselineConfig,
    data_version: str = "unknown",
) -> dict[str, Any]:
    """Train and score every model on every (repeat, fold) of `patch_dir/folds.parquet`; write the
    report (JSON, Markdown, PNG) into `out_dir` and log it to MLflow; returns the JSON document."""
    reason = not_trained(task, "classifier") or (
        None if cfg.enabled else "crossval.enabled is false (set it, with crop_patches.kfold.enabled, for the report)"
    )
    if reason:
        return write_skipped(out_dir / REPORT_JSON, reason)
    pool, folds = read_pool(patch_dir, task.classes)
    plan = plan_folds(pool, folds, cfg, task.classes)
    models = _Models(cfg, task, pool, patch_dir, train_cfg, baseline_cfg)
    report: dict[str, Any] = {
        "classes": list(task.classes),
        "models": list(cfg.models),
        "config": dataclasses.asdict(cfg),
        "repeats": int(folds.repeat.nunique()),
        "folds_per_repeat": int(folds.fold.nunique()),
        "n_folds_total": int(len(folds[["repeat", "fold"]].drop_duplicates())),
        "n_folds_run": len(plan),
        "pool": {
            "n_patches": len(pool.frame),
            "n_patients": int(len(set(pool.patients))),
            "dropped_augmented_copies": pool.dropped_augmented,
            "undersampled_crops_missing": pool.undersampled,
            "per_class": {c: int((pool.labels == i).sum()) for i, c in enumerate(task.classes)},
        },
        "cnn": {
            "arch": models.train_cfg.arch,
            "epochs": models.train_cfg.epochs,
            "image_size": models.train_cfg.image_size,
            "class_weights": models.train_cfg.class_weights,
        },
        "baseline": {
            "C": "searched per fold" if cfg.search_c else models.baseline_cfg.C,
            "image_size": models.baseline_cfg.image_size,
            "class_weight": models.baseline_cfg.class_weight,
        },
        "data_version": data_version,
        "folds": [],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    setup(tracking, f"{tracking.experiment}-{task.name}")
    with mlflow.start_run(run_name="kfold") as parent, Progress() as progress:
        mlflow.set_tags(
            {"stage": "crossval", "kind": "kfold", "data_version": data_version, "git_commit": git_commit()}
        )
        bar = progress.add_task("k-fold", total=len(plan) * len(cfg.models))
        for fold in plan:
            record = _fold_record(pool, fold)
            for model in cfg.models:
                progress.update(bar, description=f"k-fold {model} r{fold.repeat} f{fold.fold}")
                _child(models, model, fold, record)
                progress.advance(bar)
            report["folds"].append(record)
        report.update(kfold_report.summarize(report), parent_run_id=parent.info.run_id)
        mlflow.log_params(_parent_params(cfg, models, report))
        mlflow.log_metrics(kfold_report.headline(report))
        write_json(out_dir / REPORT_JSON, report)
        kfold_report.write_markdown(report, out_dir / REPORT_MD)
        kfold_report.plot(report, out_dir / REPORT_PNG)
        for name in (REPORT_JSON, REPORT_MD, REPORT_PNG):
            mlflow.log_artifact(str(out_dir / name), artifact_path="kfold")
    return report
