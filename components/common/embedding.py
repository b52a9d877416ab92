"""Logits and penultimate-layer embeddings from one forward pass of any LesionOps classifier.

Drift monitoring compares what the model "sees" in clinic images with what it saw on held-out
training data. Every classifier family we build ends in an `nn.Linear` head (see
components/common/classifier/models.py), so the input of the *last* Linear is the embedding, whatever the
architecture: one forward hook, no per-family code, and the reference (built at evaluation time) and
the serving side (built per request) use this same function so their embeddings are comparable.
"""

from __future__ import annotations

import torch
from torch import nn


def last_linear(model: nn.Module) -> nn.Linear:
    """The classifier head's final Linear layer (the last one registered in the module tree)."""
    found = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not found:
        raise TypeError(
            f"{type(model).__name__} has no nn.Linear layer: cannot take an embedding "
            "(registry classifiers must be logged as nn.Module, not torch.export programs)"
        )
    return found[-1]


@torch.no_grad()
def logits_and_embedding(model: nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, embedding) for an already-normalised float batch; embedding is float32, on the CPU."""
    captured: list[torch.Tensor] = []
    handle = last_linear(model).register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0].detach()))
    try:
        logits = model(batch)
    finally:
        handle.remove()
    return logits, captured[-1].flatten(1).float().cpu()
