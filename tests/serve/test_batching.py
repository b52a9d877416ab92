"""Micro-batching: concurrent classify calls share a forward, and each gets exactly its own answer."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from components.common.classifier.models import build_model
from lesionops.serve.batching import MicroBatcher, on_model_thread
from lesionops.serve.config import ServeConfig
from lesionops.serve.inference import classify, run_classifier, to_batch
from lesionops.serve.models import Classifier
from tests.serve.fixtures import all_at_once

CLASSES = ("mel", "nev", "bkl")


def _model(arch: str = "resnet18") -> Classifier:
    torch.manual_seed(0)
    module = build_model(arch, len(CLASSES), 0.0).eval()
    return Classifier("m", "1", "run", module, CLASSES, 32, (0.6, 0.5, 0.45), (0.2, 0.25, 0.3), 1.3)


def _patches(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(3)
    return [Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)) for _ in range(n)]


@pytest.mark.parametrize("arch", ["small_cnn", "resnet18"])
def test_batched_answers_equal_one_forward_each(arch: str) -> None:
    model = _model(arch)
    patches = _patches(4)
    alone = [run_classifier(model, to_batch(p, model)) for p in patches]
    # the leader waits (≤ 5 s) until all 4 are queued, so the 4 calls are exactly one batch
    answers = all_at_once(4, lambda i: classify(model, patches[i], 3, max_batch=4, wait_s=5.0))
    assert (model.batcher.batches, model.batcher.batched) == (1, 4)
    for (logits, embedding), answer in zip(alone, answers, strict=True):
        probs = torch.softmax(logits.double() / model.temperature, dim=1)[0].numpy()
        got = {d["label"]: d["confidence"] for d in answer.top}
        assert got == pytest.approx({CLASSES[i]: float(probs[i]) for i in range(3)}, abs=1e-5)
        np.testing.assert_allclose(answer.embedding, embedding[0].numpy(), atol=1e-5)


def test_batches_never_exceed_max_batch_and_everyone_is_answered() -> None:
    model = _model("small_cnn")
    patches = _patches(10)
    answers = all_at_once(10, lambda i: classify(model, patches[i], 1, max_batch=3, wait_s=0.05))
    assert len(answers) == 10 and model.batcher.batched == 10
    assert model.batcher.batches >= 4  # 10 inputs, at most 3 per forward


def test_a_lone_request_runs_at_once_without_a_wait() -> None:
    model = _model("small_cnn")
    answer = classify(model, _patches(1)[0], 2, max_batch=8, wait_s=0.0)
    assert len(answer.top) == 2 and (model.batcher.batches, model.batcher.batched) == (1, 1)


def test_a_failing_forward_reaches_every_request_in_its_batch_and_nothing_hangs() -> None:
    batcher = MicroBatcher()
    calls = []

    def forward(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("out of memory")
        return batch.flatten(1)[:, :2], batch.flatten(1)

    def submit(i: int) -> str:
        try:
            batcher.run(torch.full((1, 3, 2, 2), float(i)), forward, max_batch=3, wait_s=5.0)
        except RuntimeError as exc:
            return str(exc)
        return "ok"

    assert all_at_once(3, submit) == ["out of memory"] * 3 and calls == [3]
    logits, embedding = batcher.run(torch.full((1, 3, 2, 2), 7.0), forward, max_batch=3)  # not stuck
    assert logits.tolist() == [[7.0, 7.0]] and embedding.shape == (1, 12)


def test_every_forward_runs_on_the_one_model_thread() -> None:
    """Request threads hand their forwards to one thread: libgomp keeps an OpenMP team per calling
    thread, and several teams on few cores make every forward wait (batching.py)."""
    model = _model("small_cnn")
    threads: list[int] = []
    model.module.register_forward_hook(lambda *_: threads.append(threading.get_ident()))
    patches = _patches(6)
    all_at_once(6, lambda i: classify(model, patches[i], 1, max_batch=2, wait_s=0.01))
    run_classifier(model, to_batch(patches[0], model))  # and from this (main) thread
    assert len(threads) >= 4 and len(set(threads)) == 1
    assert threads[0] != threading.get_ident()


def test_the_model_thread_runs_nested_calls_in_place_and_passes_errors_on() -> None:
    here = on_model_thread(threading.get_ident)
    assert on_model_thread(lambda: on_model_thread(threading.get_ident)) == here  # no deadlock

    def fail() -> None:
        raise ValueError("bad batch")

    with pytest.raises(ValueError, match="bad batch"):
        on_model_thread(fail)
    assert on_model_thread(threading.get_ident) == here  # still serving


def test_model_threads_leave_a_core_to_the_requests() -> None:
    cores = len(os.sched_getaffinity(0))
    assert ServeConfig().model_threads == max(1, cores - 1)
    assert ServeConfig(torch_threads=3).model_threads == 3
