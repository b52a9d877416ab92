"""serve.model_process: classifier forwards in a child process answer what the in-process forward
answers, survive the child's death, and refuse what cannot be run without dying."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from components.common.classifier.models import build_model
from components.common.embedding import logits_and_embedding
from lesionops.serve import model_process as mp
from lesionops.serve.inference import classify, to_batch
from lesionops.serve.model_process import ModelProcess, ModelProcessError, model_process
from lesionops.serve.models import Classifier
from tests.serve.fixtures import TOKEN, all_at_once, build_serving, image_bytes, serve_in_thread

CLASSES = ("mel", "nev", "bkl")


def _module(arch: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(arch, len(CLASSES), 0.0).eval()


def _batch(n: int, size: int = 32) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(n).normal(size=(n, 3, size, size)).astype(np.float32))


@pytest.fixture(scope="module")
def worker() -> ModelProcess:
    return model_process(1)  # the one a server with one forward thread would use


@pytest.mark.parametrize("arch", ["small_cnn", "resnet18"])
def test_the_child_answers_what_the_in_process_forward_answers(worker: ModelProcess, arch: str) -> None:
    module, batch = _module(arch), _batch(3)
    worker.load(f"t-{arch}", module)
    logits, embedding = worker.forward(f"t-{arch}", module, batch)
    expected = logits_and_embedding(module, batch)
    assert worker.pid != os.getpid()
    torch.testing.assert_close(logits, expected[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(embedding, expected[1], rtol=0, atol=1e-5)


def test_classify_through_the_child_equals_classify_in_process(worker: ModelProcess) -> None:
    module = _module("resnet18", seed=1)
    here = Classifier("m", "1", "run", module, CLASSES, 32, (0.6, 0.5, 0.45), (0.2, 0.25, 0.3), 1.3)
    there = dataclasses.replace(here, worker=worker)
    rng = np.random.default_rng(3)
    patches = [Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)) for _ in range(4)]
    batched = all_at_once(4, lambda i: classify(there, patches[i], 3, max_batch=4, wait_s=5.0))  # one batch of 4
    for patch, answer in zip(patches, batched, strict=True):
        alone = classify(here, patch, 3)
        assert [t["label"] for t in answer.top] == [t["label"] for t in alone.top]
        np.testing.assert_allclose(
            [t["confidence"] for t in answer.top], [t["confidence"] for t in alone.top], atol=1e-5
        )
        np.testing.assert_allclose(answer.embedding, alone.embedding, atol=1e-5)
    assert to_batch(patches[0], there).shape == (1, 3, 32, 32)


def test_a_killed_child_is_replaced_and_the_batch_still_answered() -> None:
    worker = ModelProcess(1)
    try:
        module = _module("small_cnn")
        worker.load("k", module)
        first = worker.pid
        os.kill(first, signal.SIGKILL)
        logits, _ = worker.forward("k", module, _batch(2))  # the new child gets the module again
        assert worker.pid != first and worker.alive()
        torch.testing.assert_close(logits, logits_and_embedding(module, _batch(2))[0], rtol=0, atol=1e-5)
    finally:
        worker.close()


def test_a_module_plain_pickle_refuses_still_reaches_the_child(worker: ModelProcess) -> None:
    module = _module("small_cnn")
    module.scale = lambda x: x * 2  # plain pickle cannot send a lambda; MLflow's cloudpickle logs such modules
    worker.load("lambda", module)
    logits, _ = worker.forward("lambda", module, _batch(2))
    torch.testing.assert_close(logits, logits_and_embedding(module, _batch(2))[0], rtol=0, atol=1e-5)


def test_a_batch_the_model_cannot_take_is_refused_and_the_child_lives_on(worker: ModelProcess) -> None:
    module = _module("small_cnn")
    worker.load("shape", module)
    pid = worker.pid
    with pytest.raises(ModelProcessError, match="refused: RuntimeError"):
        worker.forward("shape", module, torch.zeros(1, 5, 32, 32))  # 5 channels: conv1 refuses
    assert worker.pid == pid and worker.alive()
    assert worker.forward("shape", module, _batch(1))[0].shape == (1, len(CLASSES))


def test_only_the_latest_versions_stay_in_the_child(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mp, "MAX_MODELS", 2)
    worker = ModelProcess(1)
    try:
        modules = {key: _module("small_cnn", seed=i) for i, key in enumerate("abc")}
        for key, module in modules.items():
            worker.load(key, module)
        assert list(worker._loaded) == ["b", "c"]  # "a" was dropped in the child
        logits, _ = worker.forward("a", modules["a"], _batch(1))  # sent again when it is needed again
        torch.testing.assert_close(logits, logits_and_embedding(modules["a"], _batch(1))[0], rtol=0, atol=1e-5)
        assert list(worker._loaded) == ["c", "a"]
    finally:
        worker.close()


def test_a_model_process_that_cannot_start_is_refused_with_its_exit_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", shutil.which("false"))  # a child that exits at once
    with pytest.raises(ModelProcessError, match=r"model process \d+ ended \(exit code 1\)"):
        ModelProcess(1)


def test_the_app_classifies_in_the_model_process_and_in_process_alike(tmp_path: Path) -> None:
    photos = [image_bytes(seed=s) for s in (21, 22)]
    answers = {}
    for inline in (False, True):
        serving = build_serving(tmp_path / str(inline), detector=False, model_process=not inline)
        app = serving.app()
        with (
            serve_in_thread(app) as url,
            httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {TOKEN}"}) as c,
        ):
            found = [c.post("/classify", files={"file": ("p.jpg", data, "image/jpeg")}) for data in photos]
            model = app.state.serve.champions.classifier
        assert all(r.status_code == 200 for r in found), [r.text for r in found]
        assert (model.worker is None) is inline
        if not inline:
            assert model.worker.alive() and model.worker.pid != os.getpid()
        answers[inline] = [r.json()["top"] for r in found]
    for child, here in zip(answers[False], answers[True], strict=True):  # the same seeded weights in both registries
        assert [t["label"] for t in child] == [t["label"] for t in here]
        np.testing.assert_allclose([t["confidence"] for t in child], [t["confidence"] for t in here], atol=1e-5)
