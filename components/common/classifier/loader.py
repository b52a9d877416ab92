"""Batches on the training device, from one of two sources (`train_model.loader`).

`memory` (default): the split is decoded once (64 px patches are 12 KB: 100,000 of them are
1.2 GB) into one uint8 tensor. On CUDA it is copied to the GPU when it needs at most
`gpu_memory_fraction` of the free device memory, and a batch is then one `index_select` there:
no host gather, no copy, nothing for a small model's step to wait on (on an H200 the host-side
gather of a pinned split held resnet18 at 64 px to ~0.8× the images/s of the model alone, which
is launch-bound there). A split too large for that stays pinned in host memory: a batch is one
`index_select` into one of two pinned staging buffers plus one `non_blocking` H2D copy of uint8
(4× fewer bytes than float), the host gathering batch i+1 while batch i's copy is queued. Either
way the GPU converts, augments and normalises (benchmarks/train_throughput.py measures the loop
against the model fed prebuilt tensors). The price is the one-off decode at start-up (≈ 30 s per
100,000 64 px JPEGs on one core).

`dataloader`: a torch DataLoader whose `num_workers` processes decode the files of each batch,
for datasets that do not fit in RAM. The batch order is the same seeded (and, under DDP, sharded)
permutation as the memory path, so both sources see the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from components.common.classifier.config import TrainConfig
from components.common.classifier.data import decode_patch, load_split, split_table, units
from components.common.device import to_device
from components.common.preprocessing import Normalization, channel_stats

Batch = tuple[torch.Tensor, torch.Tensor]  # uint8 N×3×H×W and int64 N, both on the device


class Source(Protocol):
    labels: torch.Tensor  # every row's class index, on the host
    units: tuple[str, ...] | None  # every row's bootstrap unit (patient or split group); None: unknown

    def __len__(self) -> int: ...
    def batches(self, indices: torch.Tensor, batch_size: int) -> Iterator[Batch]: ...
    def sample(self, k: int) -> torch.Tensor: ...
    def normalization(self) -> Normalization: ...


class MemorySource:
    """The whole split as one uint8 tensor: on the GPU when it fits `gpu_fraction` of the free
    device memory, else pinned on CUDA; see the module doc."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        device: torch.device,
        gpu_fraction: float = 0.0,
        units: tuple[str, ...] | None = None,
    ) -> None:
        self.device, self.units = device, units
        self.resident = device.type == "cuda" and images.nbytes <= gpu_fraction * torch.cuda.mem_get_info(device)[0]
        self.pinned = device.type == "cuda" and not self.resident
        self.labels = labels
        if self.resident:
            self.images, self._labels = images.to(device), labels.to(device)
        else:
            self.images = images.pin_memory() if self.pinned else images
            self._labels = labels.pin_memory() if self.pinned else labels
        self._staging: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        self._copied: list[torch.cuda.Event | None] = [None, None]

    def __len__(self) -> int:
        return len(self.labels)

    def sample(self, k: int) -> torch.Tensor:
        return self.images[:k].to("cpu", copy=True)

    def normalization(self) -> Normalization:
        """Per-channel statistics of every patch of the split (seconds for 100,000 patches)."""
        return channel_stats(self.images)

    def _buffers(self, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if batch_size not in self._staging:
            shape = (batch_size, *self.images.shape[1:])
            self._staging[batch_size] = [
                (
                    torch.empty(shape, dtype=torch.uint8).pin_memory(),
                    torch.empty(batch_size, dtype=torch.int64).pin_memory(),
                )
                for _ in range(2)
            ]
        return self._staging[batch_size]

    def batches(self, indices: torch.Tensor, batch_size: int) -> Iterator[Batch]:
        if not self.pinned:  # on the CPU or already on the GPU: a gather where the split lives
            where = to_device(indices, self.images.device)
            for start in range(0, len(where), batch_size):
                idx = where[start : start + batch_size]
                yield self.images.index_select(0, idx), self._labels.index_select(0, idx)
            return
        buffers = self._buffers(batch_size)
        for i, start in enumerate(range(0, len(indices), batch_size)):
            idx = indices[start : start + batch_size]
            slot = i % 2
            if (copied := self._copied[slot]) is not None:
                copied.synchronize()  # that buffer's previous copy has left the host
            x_host, y_host = buffers[slot][0][: len(idx)], buffers[slot][1][: len(idx)]
            torch.index_select(self.images, 0, idx, out=x_host)
            torch.index_select(self._labels, 0, idx, out=y_host)
            x, y = x_host.to(self.device, non_blocking=True), y_host.to(self.device, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            self._copied[slot] = event
            yield x, y


class _Files(Dataset):
    def __init__(self, root: Path, paths: list[str], labels: torch.Tensor, size: int) -> None:
        self.root, self.paths, self.labels, self.size = root, paths, labels, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = decode_patch(self.root / self.paths[i], self.size)
        return torch.from_numpy(pixels).permute(2, 0, 1), self.labels[i]


class _Plan(Sampler[list[int]]):
    """A batch sampler whose batches are set before each pass: the epoch's seeded, sharded order."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class FileSource:
    """Files decoded per batch by DataLoader workers; see the module doc."""

    def __init__(
        self,
        patch_dir: Path,
        paths: list[str],
        labels: torch.Tensor,
        size: int,
        device: torch.device,
        num_workers: int,
        units: tuple[str, ...] | None = None,
    ) -> None:
        self.device, self.labels, self.units = device, labels, units
        self.files = _Files(patch_dir / "patches", paths, labels, size)
        self.plan = _Plan()
        # Its own generator: a DataLoader otherwise draws worker seeds from the global RNG, which
        # would shift the dropout masks and break "same batches, same weights" (and exact resume).
        self.loader = DataLoader(
            self.files,
            batch_sampler=self.plan,
            num_workers=num_workers,
            pin_memory=device.type == "cuda",
            persistent_workers=num_workers > 0,
            prefetch_factor=4 if num_workers else None,
            generator=torch.Generator(),
        )

    def __len__(self) -> int:
        return len(self.labels)

    def sample(self, k: int) -> torch.Tensor:
        return torch.stack([self.files[i][0] for i in range(min(k, len(self.files)))])

    def normalization(self, at_most: int = 5000) -> Normalization:
        """Per-channel statistics of up to `at_most` evenly spaced patches: files are read one by one
        here, and 5,000 pin the means to ~1e-3 without a full pass over a dataset larger than RAM."""
        picks = torch.linspace(0, len(self.files) - 1, min(at_most, len(self.files))).round().long().unique()
        return channel_stats(torch.stack([self.files[int(i)][0] for i in picks]))

    def batches(self, indices: torch.Tensor, batch_size: int) -> Iterator[Batch]:
        self.plan.batches = [indices[s : s + batch_size].tolist() for s in range(0, len(indices), batch_size)]
        for x, y in self.loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


def open_split(
    patch_dir: Path, split: str, classes: tuple[str, ...], cfg: TrainConfig, device: torch.device
) -> MemorySource | FileSource:
    """The source `cfg.loader` asks for, for one split of crop_patches' output."""
    if cfg.loader == "memory":
        data = load_split(patch_dir, split, classes, cfg.image_size)
        return MemorySource(data.images, data.labels, device, cfg.gpu_memory_fraction, data.units)
    frame, labels = split_table(patch_dir, split, classes)
    return FileSource(patch_dir, list(frame.patch_path), labels, cfg.image_size, device, cfg.num_workers, units(frame))
