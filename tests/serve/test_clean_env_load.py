"""The champion loads from `models:/<name>@champion` where this repository does not exist: a fresh
Python process, its working directory a temporary folder, and `components`, `lesionops`,
`pipelines` and `tests` unimportable (a meta-path finder refuses them before the editable install's
finder is asked), so only the pip requirements are there. Its outputs must equal those of the module
that was logged; the same for the HOG+SVM baseline's sklearn model, fed feature vectors. One process
loads them all: its start-up (torch, mlflow) is most of the cost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from components.common.baseline import BaselineConfig, make_pipeline
from components.common.classifier.config import TrainConfig
from components.common.classifier.models import build_model
from components.common.preprocessing import Normalization
from components.common.task import TaskConfig
from components.common.tracking import TrackingConfig, setup
from components.train_baseline.core import log_model as log_baseline_model
from components.train_detector.config import DetectorConfig
from components.train_detector.core import _log_model as log_detector_model
from components.train_detector.core import build_detector
from components.train_model.core import _log_model as log_classifier_model
from tests.serve.fixtures import CLASSES, new_tracking

REPO = Path(__file__).resolve().parents[2]
ARCHS = ("small_cnn", "resnet18", "vgg16")  # vgg16 was a class of ours; small_cnn is built by a function of ours
SIZE = 32

CHILD = '''
import importlib.abc
import sys

BLOCKED = {"components", "lesionops", "pipelines", "tests"}


class Blocked(importlib.abc.MetaPathFinder):
    """Refuses the repository's packages however they are installed (editable finder, .pth, copy)."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"{name}: the repository is not available here", name=name)
        return None


sys.meta_path.insert(0, Blocked())
for package in sorted(BLOCKED):
    try:
        __import__(package)
    except ModuleNotFoundError:
        continue
    raise SystemExit(f"{package} is importable: the environment is not clean")

import json
from pathlib import Path

import mlflow
import mlflow.sklearn
import numpy as np
import torch

torch.set_num_threads(1)
work = Path(sys.argv[1])
spec = json.loads((work / "spec.json").read_text())
mlflow.set_tracking_uri(spec["store"])
x = torch.from_numpy(np.load(work / "x.npy"))
with torch.no_grad():
    for name in spec["classifiers"]:
        model = mlflow.pytorch.load_model(f"models:/{name}@champion", map_location="cpu").eval()
        np.save(work / f"{name}.out.npy", model(x).numpy())
    model = mlflow.pytorch.load_model(f"models:/{spec['detector']}@champion", map_location="cpu").eval()
    found = model([torch.from_numpy(np.load(work / "image.npy"))])[0]
    np.savez(work / "detector.out.npz", **{k: v.numpy() for k, v in found.items()})
baseline = mlflow.sklearn.load_model(spec["baseline"])
np.save(work / "baseline.out.npy", baseline.predict(np.load(work / "features.npy")))
leaked = sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED)
if leaked:
    raise SystemExit(f"loading imported the repository: {leaked}")
print("loaded", len(spec["classifiers"]) + 2, "models from", Path.cwd())
'''


def _champion(name: str, model_uri: str) -> None:
    version = mlflow.register_model(model_uri, name).version
    MlflowClient().set_registered_model_alias(name, "champion", version)


def _classifier(task: TaskConfig, arch: str, x: torch.Tensor, work: Path) -> np.ndarray:
    """`arch` with random weights, logged as train_model logs it and made champion; its logits on x."""
    torch.manual_seed(0)
    cfg = TrainConfig(arch=arch, image_size=SIZE, dropout=0.2)
    model = build_model(arch, len(task.classes), cfg.dropout).eval()
    (work / arch).mkdir()
    with mlflow.start_run(run_name=f"train-{arch}"):
        uri = log_classifier_model(model, x.to(torch.uint8), task, cfg, work / arch, Normalization())
    _champion(f"clean_{arch}", uri)
    with torch.no_grad():
        return model(x).numpy()


def _detector(tracking: TrackingConfig, task: TaskConfig, image: torch.Tensor, work: Path) -> dict[str, np.ndarray]:
    """A random Faster R-CNN logged as train_detector logs it and made champion; its detections."""
    torch.manual_seed(0)
    cfg = DetectorConfig(min_size=96, max_size=128, score_threshold=0.0)
    model = build_detector(cfg, len(task.classes)).eval()
    (work / "detector").mkdir()
    with mlflow.start_run(run_name="train-detector"):
        uri = log_detector_model(model, cfg, task, work / "detector")
    _champion(tracking.registered_detector, uri)
    with torch.no_grad():
        return {k: v.numpy() for k, v in model([image])[0].items()}


def _baseline(classes: tuple[str, ...], work: Path) -> tuple[str, np.ndarray]:
    """A HOG+SVM pipeline fitted on random feature vectors, logged as train_baseline logs it; its
    URI and its predictions on `features.npy` (the model's input is the feature vector)."""
    rng = np.random.default_rng(0)
    x, y = rng.random((30, 40), dtype=np.float32), np.arange(30) % len(classes)
    np.save(work / "features.npy", x)
    model = make_pipeline(BaselineConfig(), 1.0).fit(x, y)
    with mlflow.start_run(run_name="baseline-hog-svm"):
        uri = log_baseline_model(model, x, BaselineConfig(), classes)
    return uri, model.predict(x)


@pytest.mark.slow
def test_champions_load_outside_the_repository_and_predict_the_same(tmp_path: Path) -> None:
    assert not tmp_path.resolve().is_relative_to(REPO)
    task = TaskConfig(name="tiny_skin", classes=CLASSES, models=("classifier", "detector"))
    tracking = new_tracking(tmp_path / "registry")
    setup(tracking)
    work = tmp_path / "work"
    work.mkdir()
    x = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    image = torch.rand(3, 96, 128, generator=torch.Generator().manual_seed(2))
    np.save(work / "x.npy", x.numpy())
    np.save(work / "image.npy", image.numpy())
    expected = {f"clean_{arch}": _classifier(task, arch, x, work) for arch in ARCHS}
    boxes = _detector(tracking, task, image, work)
    assert len(boxes["scores"]) > 0  # score threshold 0: a comparison of real detections, not of two empty lists
    baseline_uri, predicted = _baseline(task.classes, work)
    assert len(set(predicted)) > 1
    spec = {
        "store": tracking.tracking_uri,
        "classifiers": list(expected),
        "detector": tracking.registered_detector,
        "baseline": baseline_uri,
    }
    (work / "spec.json").write_text(json.dumps(spec))

    (tmp_path / "elsewhere").mkdir()
    script = tmp_path / "elsewhere" / "load_champions.py"
    script.write_text(CHILD)
    done = subprocess.run(  # -I: no PYTHONPATH, no user site, neither the script's folder nor cwd on sys.path
        [sys.executable, "-I", str(script), str(work)],
        cwd=tmp_path / "elsewhere",
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert f"loaded 5 models from {tmp_path / 'elsewhere'}" in done.stdout
    for name, logits in expected.items():
        np.testing.assert_allclose(np.load(work / f"{name}.out.npy"), logits, rtol=1e-5, atol=1e-6, err_msg=name)
    found = np.load(work / "detector.out.npz")
    assert set(found.files) == set(boxes)
    for key, value in boxes.items():
        np.testing.assert_allclose(found[key], value, rtol=1e-5, atol=1e-4, err_msg=key)
    np.testing.assert_array_equal(np.load(work / "baseline.out.npy"), predicted)
