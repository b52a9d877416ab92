"""ONNX export of a classifier with its embedding as a second output, checked against torch.

Serving needs two things from every forward: the logits and the penultimate-layer embedding the
drift monitor compares (components/common/embedding.py). The exported graph therefore has the
outputs `logits` and `embedding`, one dynamic batch dimension, and is accepted only if ONNX
Runtime reproduces torch's outputs on a random batch to `ONNX_TOLERANCE`.

onnx, onnxscript and onnxruntime are imported inside the functions: the exporter alone costs
seconds of import time that training and evaluation never need.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from components.common.embedding import last_linear, logits_and_embedding
from components.common.errors import DataError

ONNX_TOLERANCE = 1e-4  # max |ONNX - torch| over logits and embedding
ARTIFACT = "onnx/model.onnx"  # where promotion logs it in the model's MLflow run
INPUT, OUTPUTS = "input", ("logits", "embedding")


class _WithEmbedding(nn.Module):
    """The classifier returning (logits, embedding): the input of its last Linear, as serving takes it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        captured: list[torch.Tensor] = []
        handle = last_linear(self.model).register_forward_hook(lambda _m, inputs, _o: captured.append(inputs[0]))
        try:
            logits = self.model(x)
        finally:
            handle.remove()
        return logits, captured[-1].flatten(1)


def export_classifier(model: nn.Module, image_size: int, path: Path) -> Any:
    """Write `path` (a self-contained .onnx file) and return its checked session (`checked_session`)."""
    model = model.cpu().eval()
    sample = torch.randn(2, 3, image_size, image_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        _WithEmbedding(model).eval(),
        (sample,),
        str(path),
        dynamo=True,
        input_names=[INPUT],
        output_names=list(OUTPUTS),
        dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},),
        external_data=False,
        verbose=False,
    )
    return checked_session(model, path, image_size)


def checked_session(model: nn.Module, path: Path, image_size: int) -> Any:
    """An ONNX Runtime session of `path`, refused with a DataError naming the file unless it
    reproduces `model`'s logits and embedding to `ONNX_TOLERANCE`."""
    sess = session(path)
    worst = max_difference(model, sess, image_size)
    if not worst <= ONNX_TOLERANCE:
        raise DataError(str(path), f"ONNX Runtime differs from torch by {worst:.2e} (> {ONNX_TOLERANCE:g})")
    return sess


def session(path: Path, threads: int = 0) -> Any:
    """An ONNX Runtime CPU session (`threads` intra-op threads, 0 = its default)."""
    import onnxruntime as ort  # heavy optional dependency: only the ONNX backend loads it

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_session(sess: Any, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, embedding) of a normalised float batch, as torch tensors on the CPU."""
    logits, embedding = sess.run(list(OUTPUTS), {INPUT: batch.detach().cpu().float().numpy()})
    return torch.from_numpy(logits), torch.from_numpy(embedding)


def max_difference(model: nn.Module, sess: Any, image_size: int, n: int = 3) -> float:
    """Largest absolute difference between ONNX Runtime and torch over logits and embedding."""
    batch = torch.randn(n, 3, image_size, image_size, generator=torch.Generator().manual_seed(0))
    ref = logits_and_embedding(model.eval(), batch)
    got = run_session(sess, batch)
    return float(max(np.abs(a.numpy() - b.numpy()).max() for a, b in zip(ref, got, strict=True)))
