"""Model architectures by name, built without downloading anything (weights come from files only).

Each family gets a fresh head with dropout, and a list of backbone "blocks" so `freeze_layers: N`
means the same thing to a user whatever the architecture (seed 004 froze VGG16's first conv
blocks and trained only a new head):

| family | block 0 | then | blocks |
|---|---|---|---|
| resnet18/34/50 | conv1 + bn1 | layer1 … layer4 | 5 |
| vgg16 | conv block 1 (2 convs + max-pool) | conv blocks 2 … 5 | 5 |
| densenet121 | stem (conv0 … pool0) | denseblock1, transition1, …, denseblock4, norm5 | 9 |
| convnext_tiny / efficientnet_b0 / mobilenet_v3_small | features[0] | other `features` children | 8 / 9 / 13 |
| small_cnn | conv block 1 | conv blocks 2 … 4 | 4 |
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torchvision import models

from components.common.errors import ConfigError


def small_cnn(num_classes: int, dropout: float) -> nn.Module:
    """A 4-block CNN in the spirit of seed 004's custom network: fast on CPU, a sane baseline."""

    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True), nn.MaxPool2d(2)
        )

    return nn.Sequential(
        block(3, 32),
        block(32, 64),
        block(64, 128),
        block(128, 192),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(192, num_classes),
    )


def _head(in_features: int, num_classes: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, num_classes))


def vgg16(num_classes: int, dropout: float) -> nn.Sequential:
    """torchvision's VGG16 convolutions (same `features.*` keys, so an ImageNet file loads) with a
    pooled 512-d head: fc6/fc7 (120 M weights) expect 224 px inputs, and on 32–128 px patches the
    7×7 pool would only upsample a 1×1–4×4 map. This is seed 004's Keras `include_top=False` +
    new dense head recipe, and it builds in milliseconds instead of seconds.

    A named `nn.Sequential`, not a class of ours: the registry pickles the module, and a pickle of
    torch/torchvision classes alone loads wherever the pip requirements are installed."""
    features = models.vgg.make_layers(models.vgg.cfgs["D"])
    head = _head(512, num_classes, dropout)  # before the re-initialisation: a seed gives the weights it always gave
    for m in features.modules():  # torchvision's VGG initialisation
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)  # type: ignore[arg-type]  # every Conv2d here has a bias
    layers = {"features": features, "avgpool": nn.AdaptiveAvgPool2d(1), "flatten": nn.Flatten(), "classifier": head}
    return nn.Sequential(OrderedDict(layers))


class VGG16(nn.Module):
    """Legacy: vgg16 models registered before `vgg16()` replaced this class pickled a reference to
    it, so it stays (same attributes, same forward) for those registry versions to keep loading.
    `build_model` never builds it."""

    features: nn.Sequential
    avgpool: nn.AdaptiveAvgPool2d
    classifier: nn.Sequential

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


_TORCHVISION: dict[str, Callable[..., nn.Module]] = {
    "resnet18": models.resnet18,
    "resnet34": models.resnet34,
    "resnet50": models.resnet50,
    "densenet121": models.densenet121,
    "efficientnet_b0": models.efficientnet_b0,
    "mobilenet_v3_small": models.mobilenet_v3_small,
    "convnext_tiny": models.convnext_tiny,
}
ARCHS = ("small_cnn", *_TORCHVISION, "vgg16")


def _replace_head(model: nn.Module, arch: str, num_classes: int, dropout: float) -> nn.Module:
    """Swap the ImageNet classifier for `num_classes` outputs (dropout + linear); each family keeps
    it elsewhere. The generic case replaces only the last Linear, as the stage always did."""
    net: Any = model  # torchvision's families name their heads differently; nn.Module types them as Tensor | Module
    if arch.startswith("resnet"):
        net.fc = _head(net.fc.in_features, num_classes, dropout)
    elif arch == "densenet121":
        net.classifier = _head(net.classifier.in_features, num_classes, dropout)
    else:  # convnext (LayerNorm2d, Flatten, Linear), efficientnet and mobilenet: the last Linear
        net.classifier[-1] = _head(net.classifier[-1].in_features, num_classes, dropout)
    return model


def build_model(
    arch: str, num_classes: int, dropout: float = 0.0, pretrained_path: str | None = None, freeze_layers: int = 0
) -> nn.Module:
    """Build `arch` with a fresh head; optionally load weights (local file or s3://) and freeze.

    Training loads weights through `pretrained.load_pretrained` itself to log what matched; this
    argument stays for callers that only want the model.
    """
    if arch == "small_cnn":
        model = small_cnn(num_classes, dropout)
    elif arch == "vgg16":
        model = vgg16(num_classes, dropout)
    elif arch in _TORCHVISION:
        model = _replace_head(_TORCHVISION[arch](weights=None), arch, num_classes, dropout)
    else:
        raise ConfigError(f"train_model.arch: unknown {arch!r}; choose from {list(ARCHS)}")
    if pretrained_path:
        from components.common.classifier.pretrained import load_pretrained

        load_pretrained(model, pretrained_path)
    freeze(model, arch, freeze_layers)
    return model


def backbone_blocks(model: nn.Module, arch: str) -> list[nn.Module]:
    """The backbone split into the blocks that `freeze_layers` counts (table in the module doc)."""
    net: Any = model  # attribute names differ per family (see _replace_head)
    if arch == "small_cnn":
        return [net[i] for i in range(4)]
    if arch.startswith("resnet"):
        return [nn.ModuleList([net.conv1, net.bn1]), net.layer1, net.layer2, net.layer3, net.layer4]
    features = list(net.features.children())
    if arch == "vgg16":
        blocks: list[nn.Module] = []
        current: list[nn.Module] = []
        for layer in features:
            current.append(layer)
            if isinstance(layer, nn.MaxPool2d):
                blocks.append(nn.ModuleList(current))
                current = []
        return blocks
    if arch == "densenet121":
        return [nn.ModuleList(features[:4]), *features[4:]]
    return features


def freeze(model: nn.Module, arch: str, n: int) -> list[nn.Module]:
    """Fix the first `n` backbone blocks: no gradient, and (via `hold_frozen`) BatchNorm statistics
    left as loaded — a frozen block whose running means drift is not frozen."""
    if n == 0:
        return []
    blocks = backbone_blocks(model, arch)
    if n > len(blocks):
        raise ConfigError(f"train_model.freeze_layers: {arch} has {len(blocks)} blocks, found {n}")
    for block in blocks[:n]:
        for param in block.parameters():
            param.requires_grad_(False)
    return blocks[:n]


def hold_frozen(blocks: list[nn.Module]) -> None:
    """Call after `model.train()`: frozen blocks stay in eval mode (BatchNorm uses stored stats)."""
    for block in blocks:
        block.eval()


def trainable(model: nn.Module) -> list[torch.nn.Parameter]:
    """Parameters the optimizer should own: the frozen ones stay out of its state and checkpoint."""
    return [p for p in model.parameters() if p.requires_grad]
