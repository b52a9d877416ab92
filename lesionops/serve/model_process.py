"""Classifier forwards in a child process (`serve.model_process`), so the model never waits for the GIL.

An eager torch forward gives the GIL back around every layer and must take it again to start the
next one. In the server the request threads hold it most of the time (HTTP, decoding, cropping, the
store), so under load each of resnet18's ~60 layers waited its turn: with 4 clients the API made
0.73-0.75 of the bare call's throughput. In a child the forward has an interpreter of its own; the
server's model thread sends the normalised batch (2×3×64×64 floats are 98 kB) and waits on the
pipe, holding nothing: 1.07-1.09 (benchmarks/serve.py, 2 cores, README).

The child holds copies of the served classifiers, keyed per loaded version: the module is sent
once (torch.save bytes, cloudpickled as MLflow logs it) when the version is loaded, and again
after the child was replaced. It computes `logits_and_embedding`, the function evaluate_model and
the in-process path use, so answers are the in-process ones to float precision (tested). A dead child (killed, out of
memory) is replaced and the batch sent again once: a forward has no side effects.
"""

from __future__ import annotations

import io
import sys
import threading
from collections import OrderedDict
from typing import Any

import cloudpickle
import numpy as np
import torch
from torch import nn

from components.common.embedding import logits_and_embedding
from lesionops.serve.child import Child, ChildError, Children, run_child

MAX_MODELS = 4  # versions the child keeps (the champion, the one it replaced, a rollback); older ones are dropped


class ModelProcessError(ChildError):
    """The model process died, or refused a model or a batch (its reason says which)."""


class ModelProcess:
    """The child and the keys of the models it holds (most recently used last)."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._lock = threading.Lock()
        self._child = self._start()
        self._loaded: OrderedDict[str, None] = OrderedDict()

    def _start(self) -> Child:
        return Child(__name__, [str(self.threads)], "model process", ModelProcessError)

    @property
    def pid(self) -> int:
        return self._child.pid

    def alive(self) -> bool:
        return self._child.alive()

    def load(self, key: str, module: nn.Module) -> None:
        """Make `module` known to the child as `key` (ModelProcessError when it cannot load it)."""
        with self._lock:
            self._load(key, module)

    def forward(self, key: str, module: nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, embedding) of `batch` by the child's copy of `module`; a dead child is replaced
        (and `module` sent to the new one) and the batch sent once more."""
        with self._lock:
            try:
                return self._forward(key, module, batch)
            except ModelProcessError:
                if self._child.alive():
                    raise  # a refusal, not a death
            self._child.close()  # reaped
            self._child, self._loaded = self._start(), OrderedDict()
            return self._forward(key, module, batch)

    def _forward(self, key: str, module: nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if key not in self._loaded:
            self._load(key, module)
        self._loaded.move_to_end(key)
        logits, embedding = _answer_or_raise(self._child.call(("forward", key, batch.numpy())))
        return torch.from_numpy(logits.copy()), torch.from_numpy(embedding.copy())  # unpickled arrays are read-only

    def _load(self, key: str, module: nn.Module) -> None:
        buffer = io.BytesIO()
        # cloudpickle, as MLflow pickles the module it logs: a model with a lambda or a class defined
        # in a script still travels (plain pickle refuses those); the child needs nothing special
        torch.save(module, buffer, pickle_module=cloudpickle)
        _answer_or_raise(self._child.call(("load", key, buffer.getvalue())))
        self._loaded[key] = None
        while len(self._loaded) > MAX_MODELS:
            oldest, _ = self._loaded.popitem(last=False)
            _answer_or_raise(self._child.call(("drop", oldest, None)))

    def close(self) -> None:
        self._child.close()


def _answer_or_raise(answer: tuple[str, Any]) -> Any:
    status, value = answer
    if status != "ok":
        raise ModelProcessError(f"the model process refused: {value}")
    return value


_processes: Children[int, ModelProcess] = Children(ModelProcess)  # torch threads → this server's model process


def model_process(threads: int) -> ModelProcess:
    """The model process of this server process (child.Children: shared, replaced when dead)."""
    return _processes.get(threads)


# ---- the child ---------------------------------------------------------------------------------

_models: dict[str, nn.Module] = {}


def _answer(request: tuple[str, str, Any]) -> tuple[str, Any]:
    """("ok", value) or ("error", why): a bad model or batch is refused, the child lives on."""
    op, key, payload = request
    try:
        if op == "load":
            _models[key] = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False).eval()
            return "ok", None
        if op == "drop":
            _models.pop(key, None)
            return "ok", None
        if op != "forward":
            return "error", f"unknown request {op!r}"
        model = _models.get(key)
        if model is None:
            return "error", f"no model {key!r} loaded"
        with torch.inference_mode():
            logits, embedding = logits_and_embedding(model, torch.tensor(np.asarray(payload)))
        return "ok", (logits.numpy(), embedding.numpy())
    except (RuntimeError, TypeError, ValueError, AttributeError, ModuleNotFoundError, EOFError) as exc:
        return "error", f"{type(exc).__name__}: {exc}"


if __name__ == "__main__":
    torch.set_num_threads(max(1, int(sys.argv[1])))
    run_child(_answer)
