"""What a logged model's pickle refers to: the registry pickles the nn.Module (serving hooks its last
Linear layer), so every class the pickle names must come from the pip requirements (torch,
torchvision), never from this repository, or the model loads only inside a checkout.
tests/serve/test_clean_env_load.py loads registered champions where the repository cannot be imported."""

from __future__ import annotations

import io
import pickletools
import zipfile

import mlflow.pytorch
import pytest
import torch
from torch import nn

from components.common.classifier.models import ARCHS, VGG16, build_model
from components.train_detector.config import ARCHS as DETECTOR_ARCHS
from components.train_detector.config import DetectorConfig
from components.train_detector.core import build_detector


def pickled(model: nn.Module) -> bytes:
    """The module saved as `mlflow.pytorch.log_model(serialization_format="pickle")` saves it."""
    buf = io.BytesIO()
    torch.save(model, buf, pickle_module=mlflow.pytorch.pickle_module)
    return buf.getvalue()


def pickled_modules(model: nn.Module) -> set[str]:
    """The top-level packages of every global (class, function) the pickle refers to."""
    archive = zipfile.ZipFile(io.BytesIO(pickled(model)))
    data = archive.read(next(n for n in archive.namelist() if n.endswith("/data.pkl")))
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(data)]
    assert not any(name == "STACK_GLOBAL" for name, _ in ops)  # torch.save's protocol 2: GLOBAL names them all
    return {str(arg).split(" ")[0].split(".")[0] for name, arg in ops if name == "GLOBAL"}


@pytest.mark.parametrize("arch", ARCHS)
def test_every_classifier_pickles_only_torch_and_torchvision(arch: str) -> None:
    modules = pickled_modules(build_model(arch, 3, dropout=0.2))
    assert "torch" in modules and modules <= {"torch", "torchvision", "collections", "builtins", "__builtin__"}


# build_detector has two branches (a mobilenet or a resnet FPN backbone): one arch of each
@pytest.mark.parametrize("arch", ["fasterrcnn_mobilenet_v3_large_fpn", "fasterrcnn_resnet50_fpn"])
@pytest.mark.parametrize("pretrained", [None, "weights.pt"])  # frozen batch-norm when weights are loaded
def test_every_detector_pickles_only_torch_and_torchvision(arch: str, pretrained: str | None) -> None:
    assert arch in DETECTOR_ARCHS
    modules = pickled_modules(build_detector(DetectorConfig(arch=arch, pretrained_path=pretrained), 2))
    assert "torchvision" in modules and modules <= {"torch", "torchvision", "collections", "builtins", "__builtin__"}


def test_vgg16_registered_with_the_legacy_class_still_loads_and_predicts_the_same() -> None:
    """vgg16 versions logged before `vgg16()` pickled `models.VGG16`: such a pickle still loads (in
    the repository) and computes what today's build does with the same weights."""
    torch.manual_seed(0)
    model = build_model("vgg16", 3).eval()
    legacy = VGG16()
    legacy.features, legacy.avgpool, legacy.classifier = model.features, model.avgpool, model.classifier
    blob = pickled(legacy.eval())
    assert b"components.common.classifier.models" in blob
    loaded = torch.load(io.BytesIO(blob), weights_only=False)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert set(loaded.state_dict()) == set(model.state_dict())
