"""Micro-batching: concurrent /classify requests share one forward pass.

A forward of 8 patches costs far less than 8 forwards of one on a CPU (one pass over the weights,
larger matrix products), and the model can run only one forward at a time anyway (its embedding hook
is shared, see inference.run_classifier). Requests queue their input tensor; the leader of
components.common.grouping runs up to `max_batch` of them as one batch and every request gets its
own rows. With `wait_s = 0` a lone request never waits; batches form from requests queued while a
forward runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from components.common.grouping import Grouper

Forward = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # batch → (logits, embedding)


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
