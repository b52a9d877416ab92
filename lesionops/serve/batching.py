"""Micro-batching: concurrent /classify requests share one forward pass.

A forward of 8 patches costs far less than 8 forwards of one on a CPU (one pass over the weights,
larger matrix products), and the model can run only one forward at a time anyway (its embedding hook
is shared, see inference.run_classifier). So requests queue their input tensor; whichever request
finds the model idle becomes the leader, takes up to `max_batch` queued inputs (first come, first
served), runs them as one batch and hands every request its own rows. Requests that arrive while a
forward runs form the next batch by themselves: with `wait_s = 0` a lone request never waits, and
under load batches grow with the queue. `wait_s > 0` lets a leader wait that long for company before
it runs, trading a bounded latency for larger batches.

No thread of our own: the request threads FastAPI already runs take turns as leader, so nothing is
left to shut down and an exception in one batch reaches exactly the requests that were in it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

Forward = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # batch → (logits, embedding)


@dataclass
class _Item:
    x: torch.Tensor  # 1×C×H×W
    done: bool = False
    logits: torch.Tensor | None = None
    embedding: torch.Tensor | None = None
    error: BaseException | None = None


@dataclass
class MicroBatcher:
    """One per model. `batches` counts forwards run and `batched` the inputs they carried (metrics, tests)."""

    _cond: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _queue: list[_Item] = field(default_factory=list, repr=False)
    _busy: bool = False
    batches: int = 0
    batched: int = 0

    def run(
        self, x: torch.Tensor, forward: Forward, max_batch: int, wait_s: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, embedding) of the single input `x` (1×…), computed in a batch with whatever else
        is queued. Raises what the forward raised for the batch `x` was in."""
        item = _Item(x)
        with self._cond:
            self._queue.append(item)
            self._cond.notify_all()
        while True:
            batch = self._lead_or_wait(item, max_batch, wait_s)
            if batch is None:  # another leader ran it
                break
            self._forward(batch, forward)
            if item.done:
                break
        if item.error is not None:
            raise item.error
        assert item.logits is not None and item.embedding is not None
        return item.logits, item.embedding

    def _lead_or_wait(self, item: _Item, max_batch: int, wait_s: float) -> list[_Item] | None:
        """The batch this thread must run as leader, or None once `item` was answered by another."""
        with self._cond:
            while self._busy and not item.done:
                self._cond.wait()
            if item.done:
                return None
            self._busy = True
            deadline = time.monotonic() + wait_s
            while len(self._queue) < max_batch and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            batch = self._queue[:max_batch]
            del self._queue[:max_batch]
            return batch

    def _forward(self, batch: list[_Item], forward: Forward) -> None:
        try:
            logits, embedding = forward(torch.cat([i.x for i in batch]))
            for row, i in enumerate(batch):
                i.logits, i.embedding = logits[row : row + 1], embedding[row : row + 1]
        except BaseException as exc:  # every request in the batch gets the error, none hangs
            for i in batch:
                i.error = exc
        with self._cond:
            for i in batch:
                i.done = True
            self.batches += 1
            self.batched += len(batch)
            self._busy = False
            self._cond.notify_all()
