"""Data-parallel training under `torchrun` (DistributedDataParallel), a no-op otherwise.

`torchrun --nproc_per_node N -m components.train_model …` sets WORLD_SIZE/RANK/LOCAL_RANK; with
WORLD_SIZE > 1 each process joins a process group (NCCL on CUDA, Gloo on CPU), takes every N-th
image of the shared seeded permutation, and DDP averages gradients. Rank 0 alone validates, logs
to MLflow and writes files; it broadcasts the early-stopping verdict (and the score the plateau
scheduler needs) so every rank leaves the epoch loop together.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from components.common.device import pick_device


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init(device_name: str) -> tuple[Dist, torch.device]:
    """Join the process group when launched by torchrun; pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = pick_device(device_name)
    if world <= 1:
        return Dist(), device
    ctx = Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return ctx, device


def shutdown(ctx: Dist) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, ctx: Dist, device: torch.device) -> nn.Module:
    """DDP wrapper (it broadcasts rank 0's weights at construction, so only rank 0 loads weights)."""
    if not ctx.enabled:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def shard(order: torch.Tensor, ctx: Dist) -> torch.Tensor:
    """This rank's share of an epoch's permutation; every rank gets the same count (the last
    `len % world` images of the permutation sit this epoch out) so no rank waits in all-reduce."""
    if not ctx.enabled:
        return order
    usable = len(order) - len(order) % ctx.world
    return order[ctx.rank : usable : ctx.world]


def sum_all(values: list[float], ctx: Dist, device: torch.device) -> list[float]:
    """Sum a few numbers over ranks (the epoch's train loss and image count)."""
    if not ctx.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def from_main(values: list[float], ctx: Dist, device: torch.device) -> list[float]:
    """Rank 0's numbers on every rank (validation score, stop flag)."""
    if not ctx.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return t.tolist()


def gather(obj: Any, ctx: Dist) -> list[Any]:
    """Every rank's `obj` (their RNG states, for an exact resume), in rank order."""
    if not ctx.enabled:
        return [obj]
    out: list[Any] = [None] * ctx.world
    dist.all_gather_object(out, obj)
    return out
