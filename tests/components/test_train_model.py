"""train_model end to end on tiny patch folders written the crop_patches way: resume, data sources,
pretrained weights from S3 (a real S3 server on loopback), DDP with Gloo under torchrun, MLflow."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from components.common.classifier.checkpoint import CHECKPOINT, LAST, load_resume
from components.common.classifier.config import TrainConfig
from components.common.classifier.distributed import Dist
from components.common.classifier.loader import open_split
from components.common.classifier.loop import FitState, fit
from components.common.classifier.models import build_model, freeze
from components.common.classifier.pretrained import load_pretrained
from components.common.errors import DataError
from components.common.task import TaskConfig
from components.train_model.__main__ import main
from tests.components.test_ingest_sources import s3_server  # noqa: F401  (the moto server fixture)
from tests.conftest import REPO, TINY_CLASSES, tiny_params

TASK = TaskConfig(name="tiny", classes=TINY_CLASSES)


def write_patches(root: Path, per_split: dict[str, int], size: int = 32, seed: int = 0) -> Path:
    """JPEG patches under patches/<split>/<class>/ plus the patches.parquet rows crop_patches writes;
    class 0 has a red square, class 1 a green one, on noise (learnable in an epoch or two)."""
    rng = np.random.default_rng(seed)
    rows = []
    for split, n in per_split.items():
        for i in range(n):
            label = TINY_CLASSES[i % 2]
            pixels = rng.integers(80, 160, (size, size, 3)).astype(np.uint8)
            pixels[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4, i % 2] = 235
            rel = f"{split}/{label}/{split}_{i:04d}.jpg"
            (root / "patches" / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(root / "patches" / rel, format="JPEG", quality=92)
            pid = f"{split}{i:04d}"
            rows.append(
                {
                    "patch_id": pid,
                    "patch_path": rel,
                    "rel_path": f"{pid}.jpg",
                    "box_index": 0,
                    "sha256": hashlib.sha256((root / "patches" / rel).read_bytes()).hexdigest(),
                    "label": label,
                    "patient_id": f"P-{split}-{i // 2}",
                    "split": split,
                    "augment": "none",
                    "base_patch_id": pid,
                    "window": "0,0,1,1",
                }
            )
    pd.DataFrame(rows).to_parquet(root / "patches.parquet", index=False)
    return root


@pytest.fixture(scope="module")
def patches(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_patches(tmp_path_factory.mktemp("patches"), {"train": 40, "val": 16, "test": 8})


class Crash(Exception):
    """Stands for a killed job: raised after an epoch's last.pt is on disk."""


def _fit(cfg: TrainConfig, patches: Path, out: Path, crash_after: int | None = None) -> FitState:
    """The real epoch loop without MLflow (as rank 0 of one process)."""
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    device = torch.device("cpu")
    train, val = (open_split(patches, s, TASK.classes, cfg, device) for s in ("train", "val"))
    model = build_model(cfg.arch, 2, cfg.dropout)
    frozen = freeze(model, cfg.arch, cfg.freeze_layers)
    resume = load_resume(cfg.resume, cfg, TASK.classes) if cfg.resume else None

    def hook(epoch: int, row: dict[str, float]) -> None:
        if epoch == crash_after:
            raise Crash

    return fit(model, train, val, cfg, TASK, device, Dist(), out, frozen, resume, on_epoch=hook)


def _same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    "overrides",
    [
        {"scheduler": "cosine", "augment": "strong", "optimizer": "adamw", "class_weights": "balanced"},
        {"scheduler": "plateau", "augment": "light", "optimizer": "sgd", "freeze_layers": 1},
        {
            "scheduler": "onecycle",
            "augment": "light",
            "sampler": "balanced",
            "keep_weights": "latest_tied",
        },  # per batch
    ],
)
def test_resume_after_a_crash_ends_with_the_uninterrupted_weights(
    patches: Path, tmp_path: Path, overrides: dict[str, Any]
) -> None:
    cfg = TrainConfig(
        arch="small_cnn", image_size=32, epochs=4, batch_size=16, dropout=0.3, patience=10, threads=1, **overrides
    )
    straight = _fit(cfg, patches, tmp_path / "straight")
    with pytest.raises(Crash):
        _fit(cfg, patches, tmp_path / "crashed", crash_after=1)
    assert torch.load(tmp_path / "crashed" / LAST, weights_only=True)["next_epoch"] == 2
    resumed = _fit(dataclasses.replace(cfg, resume=str(tmp_path / "crashed" / LAST)), patches, tmp_path / "resumed")
    final = [torch.load(tmp_path / d / LAST, weights_only=True) for d in ("straight", "resumed")]
    assert final[0]["epoch"] == final[1]["epoch"] == 3
    assert _same_weights(final[0]["state_dict"], final[1]["state_dict"])
    assert _same_weights(final[0]["optimizer"]["state"][0], final[1]["optimizer"]["state"][0])
    assert _same_weights(straight.best_state, resumed.best_state) and straight.best_epoch == resumed.best_epoch
    assert straight.kept_epoch == resumed.kept_epoch
    drop = ("epoch_seconds", "train_images_per_s")  # wall-clock, the only fields allowed to differ
    assert [{k: v for k, v in r.items() if k not in drop} for r in straight.history] == [
        {k: v for k, v in r.items() if k not in drop} for r in resumed.history
    ]


def test_inputs_are_normalised_with_the_train_patches_statistics(patches: Path, tmp_path: Path) -> None:
    """Per-channel mean/std of the train split's pixels (not ImageNet's), for both data sources; and
    a OneCycle run is not cut short by patience (its best epoch's weights are still the ones kept)."""
    cfg = TrainConfig(
        arch="small_cnn",
        image_size=32,
        epochs=3,
        batch_size=16,
        threads=1,
        scheduler="onecycle",
        patience=0,
        min_epochs=None,
    )
    state = _fit(cfg, patches, tmp_path / "memory")
    pixels = open_split(patches, "train", TASK.classes, cfg, torch.device("cpu")).images.double() / 255
    np.testing.assert_allclose(state.norm.mean, pixels.mean(dim=(0, 2, 3)).numpy(), atol=1e-6)
    np.testing.assert_allclose(state.norm.std, pixels.std(dim=(0, 2, 3), correction=0).numpy(), atol=1e-6)
    assert len(state.history) == 3 and state.best_state is not None
    files = open_split(
        patches,
        "train",
        TASK.classes,
        dataclasses.replace(cfg, loader="dataloader", num_workers=0),
        torch.device("cpu"),
    )
    assert files.normalization() == state.norm  # 40 patches: all of them read


def test_dataloader_workers_feed_the_same_batches_as_memory(patches: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(arch="small_cnn", image_size=32, epochs=1, batch_size=16, threads=1, augment="strong")
    memory = _fit(cfg, patches, tmp_path / "memory")
    files = _fit(dataclasses.replace(cfg, loader="dataloader", num_workers=2), patches, tmp_path / "files")
    assert _same_weights(memory.best_state, files.best_state)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"arch": "resnet18"}, "train_model.arch"),
        ({"image_size": 48}, "train_model.image_size"),
    ],
)
def test_resume_refuses_a_checkpoint_of_another_model(
    patches: Path, tmp_path: Path, change: dict[str, Any], error: str
) -> None:
    cfg = TrainConfig(arch="small_cnn", image_size=32, epochs=1, batch_size=16, threads=1)
    _fit(cfg, patches, tmp_path)
    with pytest.raises(Exception, match=error):
        load_resume(str(tmp_path / LAST), dataclasses.replace(cfg, **change), TASK.classes)
    with pytest.raises(DataError, match="resume checkpoint not found"):
        load_resume(str(tmp_path / "nope.pt"), cfg, TASK.classes)


def _params_file(tmp_path: Path, **train: Any) -> Path:
    doc = tiny_params(tmp_path, train_model=train)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_cli_trains_logs_and_resumes_into_a_new_run(patches: Path, tmp_path: Path) -> None:
    weights = tmp_path / "backbone.pt"
    torch.save(build_model("small_cnn", 5).state_dict(), weights)  # another class count: the head mismatches
    params = _params_file(
        tmp_path,
        epochs=2,
        scheduler="step",
        step_size=1,
        gamma=0.5,
        log_every=2,
        pretrained_path=str(weights),
        freeze_layers=1,
    )
    base = ["--params", str(params), "--patches", str(patches)]
    main([*base, "--out", str(tmp_path / "first")])
    ckpt = torch.load(tmp_path / "first" / CHECKPOINT, weights_only=False)
    assert {"state_dict", "config", "classes", "epoch"} <= set(ckpt) and ckpt["classes"] == list(TINY_CLASSES)
    prep = yaml.safe_load((tmp_path / "first" / "preprocessing.json").read_text())
    assert ckpt["normalization"] == {"mean": prep["mean"], "std": prep["std"]} and prep["mean"] != [0.485, 0.456, 0.406]
    summary = yaml.safe_load((tmp_path / "first" / "train_summary.json").read_text())
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    first = client.get_run(summary["run_id"])
    assert first.data.params["pretrained_mismatched_keys"] == "2"  # the 5-class head
    assert first.data.params["pretrained_missing_keys"] == "2" and first.data.params["freeze_layers"] == "1"
    assert [m.value for m in client.get_metric_history(first.info.run_id, "lr")] == [0.002, 0.001]

    params.write_text(
        yaml.safe_dump(
            tiny_params(
                tmp_path,
                train_model={"epochs": 3, "scheduler": "step", "step_size": 1, "gamma": 0.5, "freeze_layers": 1},
            )
        )
    )
    main([*base, "--out", str(tmp_path / "second"), "--resume", str(tmp_path / "first" / LAST)])
    resumed = yaml.safe_load((tmp_path / "second" / "train_summary.json").read_text())
    again = client.get_run(resumed["run_id"])
    assert resumed["epochs_run"] == 3 and again.data.tags["resumed_from_run"] == first.info.run_id
    assert [m.step for m in client.get_metric_history(again.info.run_id, "val_macro_f1")] == [0, 1, 2]
    assert [m.value for m in client.get_metric_history(again.info.run_id, "lr")] == [0.002, 0.001, 0.0005]


def test_pretrained_weights_from_s3(
    s3_server: str,  # noqa: F811  (the imported fixture)
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server)  # the standard variable boto3 reads itself
    source = build_model("resnet18", 2)
    torch.save(source.state_dict(), tmp_path / "w.pt")
    client = boto3.client("s3")
    client.create_bucket(Bucket="weights")
    client.upload_file(str(tmp_path / "w.pt"), "weights", "imagenet/resnet18.pt")
    model = build_model("resnet18", 2)
    report = load_pretrained(model, "s3://weights/imagenet/resnet18.pt")
    assert (report.loaded, report.missing, report.unexpected) == (len(source.state_dict()), 0, 0)
    assert _same_weights(model.state_dict(), source.state_dict())
    with pytest.raises(DataError, match=r"^s3://weights/imagenet/missing\.pt: .*no such object"):
        load_pretrained(model, "s3://weights/imagenet/missing.pt")


def test_torchrun_two_cpu_processes_train_one_model(patches: Path, tmp_path: Path) -> None:
    torch.save(build_model("small_cnn", 2).state_dict(), tmp_path / "w.pt")  # rank 0 loads it, DDP copies it
    params = _params_file(tmp_path, epochs=1, device="cpu", pretrained_path=str(tmp_path / "w.pt"), freeze_layers=1)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "components.train_model",
        "--params",
        str(params),
        "--patches",
        str(patches),
        "--out",
        str(tmp_path / "out"),
    ]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("train_model: run ") == 1  # rank 1 trains silently
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "checkpoint.pt",
        "curves.csv",
        "curves.png",
        "last.pt",
        "preprocessing.json",
        "train_summary.json",
    ]
    summary = yaml.safe_load((tmp_path / "out" / "train_summary.json").read_text())
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    [run] = client.search_runs([summary["experiment_id"]])
    assert run.data.params["world_size"] == "2" and run.data.params["n_train"] == "40"
    assert run.data.params["pretrained_loaded_keys"] == str(len(build_model("small_cnn", 2).state_dict()))
    assert len(torch.load(tmp_path / "out" / LAST, weights_only=True)["rng"]) == 2  # both ranks' streams
