"""Model architectures by name, built without downloading anything (weights come from files only)."""

from __future__ import annotations

import torch
from torch import nn
from torchvision import models

from components.common.errors import ConfigError


def small_cnn(num_classes: int, dropout: float) -> nn.Module:
    """A 4-block CNN in the spirit of seed 004's custom network: fast on CPU, a sane baseline."""
    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                             nn.ReLU(inplace=True), nn.MaxPool2d(2))
    return nn.Sequential(block(3, 32), block(32, 64), block(64, 128), block(128, 192),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                         nn.Linear(192, num_classes))


def _replace_head(model: nn.Module, num_classes: int, dropout: float) -> nn.Module:
    if hasattr(model, "fc"):
        model.fc = nn.Sequential(nn.Dropout(dropout), nn.Linear(model.fc.in_features, num_classes))
    else:
        last = model.classifier[-1]
        model.classifier[-1] = nn.Sequential(nn.Dropout(dropout), nn.Linear(last.in_features, num_classes))
    return model


_TORCHVISION = {
    "resnet18": models.resnet18, "resnet34": models.resnet34, "resnet50": models.resnet50,
    "densenet121": models.densenet121, "efficientnet_b0": models.efficientnet_b0,
    "mobilenet_v3_small": models.mobilenet_v3_small,
}


def build_model(arch: str, num_classes: int, dropout: float = 0.0,
                pretrained_path: str | None = None) -> nn.Module:
    """Build `arch` with a fresh head; optionally load backbone weights from a local file."""
    if arch == "small_cnn":
        return small_cnn(num_classes, dropout)
    if arch not in _TORCHVISION:
        raise ConfigError(f"train_model.arch: unknown {arch!r}; choose from {['small_cnn', *_TORCHVISION]}")
    model = _TORCHVISION[arch](weights=None)
    if pretrained_path:
        state = torch.load(pretrained_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=False)
    return _replace_head(model, num_classes, dropout)
