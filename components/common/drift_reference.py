"""Reference statistics, built when a model is evaluated and carried with it to serving.

`build_reference` (called by evaluate_model for the challenger) writes `<out>/reference/`:

* `model.parquet`: one row per held-out patch (val + test, never train: a model's embeddings of
  images it was fitted on are tighter than of anything new, which would read as drift): split,
  patient_id, label, predicted_class, calibrated confidence softmax(logits / T) with T the temperature fitted
  on val, correct, embedding (input of the last Linear layer, components/common/embedding.py), and
  the patch's mean luma and saturation (serving's per-request scope checks, scope.py);
* `images.parquet`: the image statistics (image_stats.FEATURES) and skin tone (ITA°, skin_tone.py)
  of the unique raw TRAIN images, with their patient_id (the window tests are calibrated on
  whole-patient windows, stats.py);
* `reference.json`: how it was built (classes, temperature, max_side, which pixels, features).

Which pixels for images.parquet: evaluate_model only gets the crop_patches output. For box tasks
that output carries the raw accepted images (`detection/images/<rel_path>`, hard-linked when
`crop_patches.detection.copy_images` is on), so the statistics are of the same whole photos that
serving computes them on ("pixels": "raw"). Otherwise (whole-image tasks, detection export off) the
only pixels are the train patches; their brightness and colour are of the lesion crop (or the
letterboxed image) and their sharpness is of a 64-pixel patch, so they are honestly labelled
"pixels": "patch", width/height are taken from the raw image sizes in patches.parquet, and sharpness
is left out of the features the monitor compares (`features` in reference.json), and so is the
skin tone (a lesion crop is not the skin around it: the monitor skips its skin-tone test).

The evaluation logs the folder as MLflow artifacts `reference/` on the training run, so
`models:/<name>@champion` always comes with the reference it is to be monitored against.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.special import softmax

from components.common.errors import DataError
from components.common.image_stats import FEATURES, features_frame
from components.common.io import read_json, write_json, write_parquet
from components.common.scope import BRIGHTNESS, SATURATION, patch_stats
from components.common.skin_tone import ITA_COLUMN

MODEL_TABLE, IMAGES_TABLE, META = "model.parquet", "images.parquet", "reference.json"
ARTIFACT_PATH = "reference"
if TYPE_CHECKING:  # torch is imported only when a reference is built, not when one is read
    import torch

    from components.common.preprocessing import Normalization

PATCH_FEATURES = tuple(f for f in FEATURES if f != "sharpness")  # scale-dependent: not comparable on patches


@dataclass(frozen=True)
class Reference:
    """What a window is compared with. `model` is None when only image statistics exist."""

    images: pd.DataFrame  # FEATURES per reference image
    model: pd.DataFrame | None  # predicted_class, confidence, embedding per held-out patch
    meta: dict[str, Any]
    where: str  # a folder, or models:/<name>@<alias> (version, run)

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(self.meta.get("features", FEATURES))

    def embeddings(self) -> np.ndarray | None:
        if self.model is None or "embedding" not in self.model or self.model.empty:
            return None
        return np.stack([np.asarray(e, dtype=np.float32) for e in self.model["embedding"]])


def model_rows(
    model: torch.nn.Module,
    sets: Sequence[tuple[str, Any]],
    classes: tuple[str, ...],
    temperature: float,
    device: torch.device,
    norm: Normalization,
    batch: int = 256,
) -> pd.DataFrame:
    """Predictions, calibrated confidences and embeddings of (split, PatchSet) pairs, batch by batch,
    normalised with the model's own statistics (as serving does with each request)."""
    from components.common.embedding import logits_and_embedding
    from components.common.preprocessing import normalize

    rows: list[pd.DataFrame] = []
    model = model.to(device).eval()
    for split, patches in sets:
        for i in range(0, len(patches.labels), batch):
            logits, emb = logits_and_embedding(model, normalize(patches.images[i : i + batch].to(device), norm))
            probs = softmax(logits.double().cpu().numpy() / temperature, axis=1)
            pred, labels = probs.argmax(1), patches.labels[i : i + batch].numpy()
            brightness, saturation = patch_stats(patches.images[i : i + batch].permute(0, 2, 3, 1).numpy())
            rows.append(
                pd.DataFrame(
                    {
                        "split": split,
                        "patient_id": list(patches.patients[i : i + batch]),
                        "label": [classes[j] for j in labels],
                        "predicted_class": [classes[j] for j in pred],
                        "confidence": probs.max(1),
                        "correct": pred == labels,
                        "embedding": list(emb.numpy().astype(np.float32)),
                        BRIGHTNESS: brightness,  # the acquisition checks of serve_scope (scope.py)
                        SATURATION: saturation,
                    }
                )
            )
    if not rows:
        raise DataError("val+test", "no held-out patches to build the drift reference from")
    return pd.concat(rows, ignore_index=True)


def image_rows(patch_dir: Path, max_side: int) -> tuple[pd.DataFrame, str]:
    """Statistics of the train images: raw photos when the crop output carries them, else patches."""
    table_path = patch_dir / "patches.parquet"
    table = pd.read_parquet(table_path)
    train = table[table.split == "train"]
    if "augment" in train:
        train = train[train.augment == "none"]  # balancing copies are flips of the same pixels
    if train.empty:
        raise DataError(table_path, "no train-split rows: nothing to use as the drift reference")
    patient = dict(zip(train.rel_path.astype(str), train.patient_id.astype(str), strict=True))
    rels = sorted(patient)
    raw_root = patch_dir / "detection" / "images"
    if all((raw_root / rel).is_file() for rel in rels):
        found, pixels = features_frame([raw_root / rel for rel in rels], max_side), "raw"
        paths = [Path(p).relative_to(raw_root).as_posix() for p in found.frame.path]
        frame = found.frame.assign(path=paths, patient_id=[patient[p] for p in paths])
    else:
        files = {
            str(patch_dir / "patches" / p): (w, h, str(pid))
            for p, w, h, pid in zip(
                train.patch_path, train.image_width, train.image_height, train.patient_id, strict=True
            )
        }
        found, pixels = features_frame([Path(p) for p in files], max_side), "patch"
        sizes = np.array([files[p][:2] for p in found.frame.path], dtype=float).reshape(-1, 2)
        frame = found.frame.drop(columns=[ITA_COLUMN]).assign(
            width=sizes[:, 0],
            height=sizes[:, 1],
            path=[Path(p).relative_to(patch_dir).as_posix() for p in found.frame.path],
            patient_id=[files[p][2] for p in found.frame.path],
        )
    if frame.empty:
        first = found.unreadable[0] if found.unreadable else ("-", "-")
        raise DataError(first[0], f"none of the reference images could be read ({first[1]})")
    return frame, pixels


def build_reference(
    model: torch.nn.Module,
    sets: Sequence[tuple[str, Any]],
    classes: tuple[str, ...],
    temperature: float,
    patch_dir: Path,
    out_dir: Path,
    norm: Normalization,
    *,
    device: torch.device | None = None,
    max_side: int = 256,
) -> dict[str, Any]:
    """Write model.parquet, images.parquet and reference.json into `out_dir`; returns the metadata.

    `sets` = [("val", PatchSet), ("test", PatchSet)] at the model's input size; `max_side` must be
    the one serving and the monitor compute features with (monitor_drift.max_side).
    """
    import torch

    rows = model_rows(model, sets, classes, temperature, device or torch.device("cpu"), norm)
    images, pixels = image_rows(patch_dir, max_side)
    meta = {
        "classes": list(classes),
        "temperature": float(temperature),
        "max_side": max_side,
        "pixels": pixels,
        "features": list(FEATURES if pixels == "raw" else PATCH_FEATURES),
        "skin_tone": ITA_COLUMN in images,
        "n_model_rows": len(rows),
        "n_images": len(images),
        "embedding_dim": int(len(rows.embedding[0])),
        "model_splits": sorted(set(rows.split)),
        "accuracy": float(rows.correct.mean()),
    }
    write_parquet(out_dir / MODEL_TABLE, rows)
    write_parquet(out_dir / IMAGES_TABLE, images)
    write_json(out_dir / META, meta)
    return meta


def load_reference(folder: Path, where: str | None = None) -> Reference:
    """Read a reference folder (images.parquet required; model.parquet and reference.json optional)."""
    images_path, model_path = folder / IMAGES_TABLE, folder / MODEL_TABLE
    if not images_path.is_file():
        raise DataError(images_path, "not found; a reference folder is evaluate_model's <out>/reference")
    images = pd.read_parquet(images_path)
    meta = read_json(folder / META) if (folder / META).is_file() else {}
    missing = sorted(set(meta.get("features", FEATURES)) - set(images.columns))
    if missing:
        raise DataError(images_path, f"missing feature column(s) {missing}")
    model = None
    if model_path.is_file():
        model = pd.read_parquet(model_path)
        lacking = sorted({"predicted_class", "confidence", "embedding"} - set(model.columns))
        if lacking:
            raise DataError(model_path, f"missing column(s) {lacking}; found {list(model.columns)}")
    return Reference(images, model, meta, where or str(folder))


def champion_reference(tracking: Any, alias: str = "champion", dst: Path | None = None) -> tuple[Reference | None, str]:
    """The reference logged with `models:/<registered_model>@<alias>`: (reference, where) or
    (None, why) when there is no champion yet or it was logged without one."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from components.common.champion import champion_version

    name = f"models:/{tracking.registered_model}@{alias}"
    version = champion_version(tracking, tracking.registered_model, alias)
    if version is None:
        return None, f"no champion yet ({name} does not exist)"
    where = f"{name} (version {version.version}, run {version.run_id})"
    target = dst or Path(tempfile.mkdtemp(prefix="lesionops-reference-"))
    try:
        local = mlflow.artifacts.download_artifacts(
            run_id=version.run_id, artifact_path=ARTIFACT_PATH, dst_path=str(target)
        )
    except (MlflowException, OSError) as exc:
        return None, f"{where} has no '{ARTIFACT_PATH}/' artifacts ({exc}); re-run evaluate_model for it"
    ref = load_reference(Path(local), where)
    return Reference(ref.images, ref.model, {**ref.meta, "model_version": str(version.version)}, where), where
