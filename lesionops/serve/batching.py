"""Micro-batching, and the one thread every model computation of a server process runs on.

A forward of 8 patches costs far less than 8 forwards of one on a CPU (one pass over the weights,
larger matrix products), and the model can run only one forward at a time anyway (its embedding hook
is shared, see inference.run_classifier). Requests queue their input tensor; the leader of
components.common.grouping runs up to `max_batch` of them as one batch and every request gets its
own rows. With `wait_s = 0` a lone request never waits; batches form from requests queued while a
forward runs.

Why one model thread (`on_model_thread`): torch's CPU kernels run on OpenMP, and libgomp keeps a
thread team per *calling* thread. Requests run in FastAPI's thread pool, so every pool thread that
once led a forward (and the thread that loaded the model) keeps a team; once the teams together hold
more threads than there are cores, libgomp stops spin-waiting between parallel regions and every
forward pays sleep/wake-up latency: resnet18 at 64 px took 12.6 ms instead of 5.8 ms on 2 cores
(the same as OMP_WAIT_POLICY=PASSIVE). Handing each forward to one long-lived thread keeps a single
team in the process; the hand-over costs tens of microseconds. With `serve.model_process` the
classifier's forward itself runs in a child process (model_process.py) and this thread only waits
for it; detector and ONNX forwards run here.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

import torch

from components.common.grouping import Grouper

Forward = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # batch → (logits, embedding)
P = ParamSpec("P")
R = TypeVar("R")
_local = threading.local()


def _mark_model_thread() -> None:
    _local.is_model_thread = True


@functools.cache
def _model_executor() -> ThreadPoolExecutor:
    """Created on first use (nothing starts at import); lives as long as the process."""
    return ThreadPoolExecutor(1, thread_name_prefix="lesionops-model", initializer=_mark_model_thread)


def on_model_thread(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """`fn(*args, **kwargs)` run on the process's model thread (directly when already on it);
    raises what `fn` raised."""
    if getattr(_local, "is_model_thread", False):
        return fn(*args, **kwargs)
    return _model_executor().submit(fn, *args, **kwargs).result()


@dataclass
class MicroBatcher:
    """One per model; `batches` / `batched` count the forwards run and the inputs they carried."""

    group: Grouper[torch.Tensor] = field(default_factory=Grouper)

    @property
    def batches(self) -> int:
        return self.group.groups

    @property
    def batched(self) -> int:
        return self.group.grouped

    def run(
        self, x: torch.Tensor, forward: Forward, max_batch: int, wait_s: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, embedding) of the single input `x` (1×…), computed in a batch with whatever else
        is queued. Raises what the forward raised for the batch `x` was in."""

        def run_batch(inputs: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
            logits, embedding = forward(torch.cat(inputs))
            return [(logits[i : i + 1], embedding[i : i + 1]) for i in range(len(inputs))]

        result: tuple[torch.Tensor, torch.Tensor] = self.group.run(x, run_batch, max_batch, wait_s)
        return result
