"""CUDA paths of train_model: bf16 autocast, channels-last, pinned uint8 batches, augmentation on the
device, same entry point (skipped without CUDA)."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
import torch

from components.common.classifier.augment import PRESETS, augment
from components.common.classifier.distributed import Dist
from components.common.classifier.engine import amp_dtype
from components.common.classifier.loader import MemorySource, open_split
from components.common.classifier.loop import fit
from components.common.classifier.models import build_model
from components.common.params import section
from components.common.task import TaskConfig, load_task
from components.common.tracking import TrackingConfig
from components.crop_patches.config import CropConfig
from components.crop_patches.core import run as crop
from components.ingest_data.config import IngestConfig
from components.ingest_data.core import run as ingest
from components.train_model.config import TrainConfig
from components.train_model.core import run as train
from components.validate_annotations.config import ValidateConfig
from components.validate_annotations.core import run as validate
from tests.components.test_train_model import write_patches
from tests.conftest import TINY_CLASSES, tiny_params

CUDA = torch.device("cuda")


@pytest.fixture(scope="module")
def patches(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_patches(tmp_path_factory.mktemp("patches"), {"train": 64, "val": 16})


@pytest.mark.gpu
def test_training_runs_on_cuda_with_bf16(tiny_dataset: Path, tmp_path: Path) -> None:
    doc = tiny_params(tmp_path, train_model={"device": "cuda", "arch": "resnet18", "epochs": 2})
    task = load_task(doc)
    ingest(section(doc, "ingest_data", IngestConfig), tiny_dataset, tmp_path / "i")
    validate(section(doc, "validate_annotations", ValidateConfig), task, tmp_path / "i", tmp_path / "v")
    crop(section(doc, "crop_patches", CropConfig), task, tmp_path / "v", tiny_dataset, tmp_path / "c")
    tracking = section(doc, "mlflow", TrackingConfig)
    summary = train(section(doc, "train_model", TrainConfig), task, tracking, tmp_path / "c", tmp_path / "t")
    assert summary["epochs_run"] == 2 and 0.0 <= summary["best_val_macro_f1"] <= 1.0
    params = mlflow.MlflowClient(tracking.tracking_uri).get_run(summary["run_id"]).data.params
    assert params["device"].startswith("cuda") and params["amp_dtype"] == "bfloat16"
    # The checkpoint (saved from a channels-last CUDA model) loads into a plain CPU model.
    ckpt = torch.load(tmp_path / "t" / "checkpoint.pt", map_location="cpu", weights_only=False)
    build_model("resnet18", len(task.classes), 0.2).load_state_dict(ckpt["state_dict"])


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("loader", "amp", "gpu_fraction"),
    [("memory", "auto", 0.25), ("memory", "auto", 0.0), ("dataloader", "auto", 0.25), ("memory", "off", 0.25)],
)
def test_cuda_fit_with_channels_last_and_uint8_batches(
    patches: Path, tmp_path: Path, loader: str, amp: str, gpu_fraction: float
) -> None:
    cfg = TrainConfig(
        arch="resnet18",
        image_size=32,
        epochs=2,
        batch_size=16,
        device="cuda",
        loader=loader,
        num_workers=2,
        augment="strong",
        amp=amp,
        patience=5,
        gpu_memory_fraction=gpu_fraction,
    )
    task = TaskConfig(name="tiny", classes=TINY_CLASSES)
    train_src, val_src = (open_split(patches, s, task.classes, cfg, CUDA) for s in ("train", "val"))
    if isinstance(train_src, MemorySource):  # a small split lives on the GPU unless the fraction is 0
        assert train_src.images.dtype == torch.uint8
        assert train_src.images.is_cuda if gpu_fraction else train_src.images.is_pinned()
    x, y = next(train_src.batches(torch.arange(16), 16))
    assert x.is_cuda and x.dtype == torch.uint8 and y.is_cuda
    model = build_model(cfg.arch, 2, cfg.dropout).to(CUDA).to(memory_format=torch.channels_last)
    state = fit(model, train_src, val_src, cfg, task, CUDA, Dist(), tmp_path, [])
    assert model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert amp_dtype(cfg, CUDA) == (None if amp == "off" else torch.bfloat16)
    assert len(state.history) == 2 and all(torch.isfinite(torch.tensor(r["train_loss"])) for r in state.history)
    assert (tmp_path / "last.pt").is_file()


@pytest.mark.gpu
@pytest.mark.parametrize("preset", PRESETS)
def test_augmentation_on_the_gpu_draws_what_the_cpu_draws(preset: str) -> None:
    batch = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    on_cpu = augment(batch, preset, torch.Generator().manual_seed(5))
    on_gpu = augment(batch.to(CUDA), preset, torch.Generator().manual_seed(5))
    assert on_gpu.is_cuda and on_gpu.dtype == torch.uint8
    assert (on_gpu.cpu().int() - on_cpu.int()).abs().max() <= 1  # float rounding only
