"""serve.backend: onnx — the graph promote_model logs (or one exported at load) answers as torch does,
to 1e-4, embeddings included; a graph that does not match its torch model is refused."""

from __future__ import annotations

import logging
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from PIL import Image

from components.common.classifier.models import build_model
from components.common.io import write_json
from components.common.onnx_export import ARTIFACT, ONNX_TOLERANCE, export_classifier, max_difference, session
from components.promote_model.config import PromoteConfig
from components.promote_model.core import run as promote
from lesionops.serve.inference import classify
from lesionops.serve.models import Champions
from tests.components.test_promotion import _evaluate
from tests.serve.fixtures import CLASSES, ServeSetup, build_serving, log_classifier

pytestmark = pytest.mark.xdist_group("onnx")  # one export per module fixture, on one worker


@pytest.mark.parametrize("arch", ["small_cnn", "resnet18"])
def test_export_matches_torch_for_any_batch_size(arch: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model(arch, 4, 0.0).eval()
    path = tmp_path / "m.onnx"
    export_classifier(model, 32, path)
    sess = session(path)
    for n in (1, 7):  # the batch dimension is dynamic: micro-batches of any size
        assert max_difference(model, sess, 32, n=n) <= ONNX_TOLERANCE


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> ServeSetup:
    return build_serving(tmp_path_factory.mktemp("onnx"), detector=False, users=False)


def _patch() -> Image.Image:
    return Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8))


def _answers(serving: ServeSetup, backend: str) -> tuple[dict[str, float], np.ndarray, Champions]:
    champions = Champions(serving.tracking, "champion", serving.task.classes, ("classifier",), backend=backend)
    champions.refresh()
    model = champions.classifier
    assert model is not None, champions.problems
    answer = classify(model, _patch(), len(CLASSES))
    return {d["label"]: d["confidence"] for d in answer.top}, answer.embedding, champions


def test_onnx_backend_answers_as_torch_exporting_at_load_when_promotion_did_not(
    serving: ServeSetup, caplog: pytest.LogCaptureFixture
) -> None:
    torch_top, torch_embedding, _ = _answers(serving, "torch")
    with caplog.at_level(logging.WARNING):
        onnx_top, onnx_embedding, champions = _answers(serving, "onnx")
    assert champions.classifier is not None and champions.classifier.onnx is not None
    assert f"no {ARTIFACT} artifact: exporting it now" in caplog.text
    assert onnx_top == pytest.approx(torch_top, abs=1e-4)
    np.testing.assert_allclose(onnx_embedding, torch_embedding, atol=1e-4)


def test_promotion_logs_the_graph_and_serving_uses_it(serving: ServeSetup, tmp_path: Path, caplog) -> None:
    """promote_model.export_onnx: the checked graph is in the champion's run before the alias moves."""
    tracking = serving.tracking
    version = log_classifier(tracking, serving.task, tmp_path, seed=4, alias="candidate")
    client = MlflowClient(tracking.tracking_uri)
    run_id = client.get_model_version(tracking.registered_model, version).run_id
    train = tmp_path / "train"
    uri = client.get_model_version(tracking.registered_model, version).source
    write_json(train / "train_summary.json", {"run_id": run_id, "model_uri": uri, "kind": "classifier"})
    champion = client.get_model_version_by_alias(tracking.registered_model, "champion").version
    cfg = PromoteConfig(audit_log=str(tmp_path / "audit.jsonl"), export_onnx=True)
    result = promote(cfg, tracking, train, _evaluate(tmp_path, "x", train, champion), tmp_path / "out")
    assert result["version"] == version and result["moved"]
    assert ARTIFACT in {a.path for a in client.list_artifacts(run_id, "onnx")}
    with caplog.at_level(logging.WARNING):
        onnx_top, _, champions = _answers(serving, "onnx")
    assert champions.classifier is not None and champions.classifier.version == version
    assert "exporting it now" not in caplog.text
    torch_top, _, _ = _answers(serving, "torch")
    assert onnx_top == pytest.approx(torch_top, abs=1e-4)


def test_a_graph_that_is_not_its_model_is_refused(serving: ServeSetup, tmp_path: Path) -> None:
    tracking = serving.tracking
    version = log_classifier(tracking, serving.task, tmp_path, seed=5)  # champion now
    client = MlflowClient(tracking.tracking_uri)
    run_id = client.get_model_version(tracking.registered_model, version).run_id
    torch.manual_seed(9)
    other = build_model("small_cnn", len(CLASSES), 0.0).eval()  # same shapes, other weights
    path = tmp_path / "onnx" / "model.onnx"
    export_classifier(other, 32, path)
    mlflow.set_tracking_uri(tracking.tracking_uri)
    client.log_artifact(run_id, str(path), "onnx")
    champions = Champions(tracking, "champion", serving.task.classes, ("classifier",), backend="onnx")
    champions.refresh()
    assert champions.classifier is None
    assert "differs from the torch model" in champions.problems["classifier"]
