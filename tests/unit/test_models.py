"""Architectures, heads, freezing, pretrained loading, schedulers and augmentation presets of train_model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from components.common.classifier.augment import PRESETS, augment
from components.common.classifier.config import TrainConfig
from components.common.classifier.engine import (
    Trainer,
    class_weights,
    epoch_order,
    make_optimizer,
    make_scheduler,
    step_scheduler,
)
from components.common.classifier.loader import MemorySource
from components.common.classifier.models import ARCHS, build_model, freeze, trainable
from components.common.classifier.pretrained import load_pretrained, load_weights
from components.common.errors import ConfigError, DataError


@pytest.mark.parametrize("arch", ARCHS)
def test_every_arch_builds_a_new_head_and_classifies_small_patches(arch: str) -> None:
    torch.manual_seed(0)
    model = build_model(arch, 3, dropout=0.25).eval()
    heads = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert heads[-1].out_features == 3
    assert any(isinstance(m, nn.Dropout) and m.p == 0.25 for m in model.modules())
    size = 32 if arch != "small_cnn" else 48
    with torch.no_grad():
        out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, 3) and torch.isfinite(out).all()


# (arch, N, parameter-name prefixes of the first N blocks): the table in models.py.
FROZEN = [
    ("small_cnn", 2, ("0.", "1.")),
    ("resnet18", 1, ("conv1.", "bn1.")),
    ("resnet50", 3, ("conv1.", "bn1.", "layer1.", "layer2.")),
    ("vgg16", 4, tuple(f"features.{i}." for i in (0, 2, 5, 7, 10, 12, 14, 17, 19, 21))),
    ("densenet121", 3, ("features.conv0.", "features.norm0.", "features.denseblock1.", "features.transition1.")),
    ("convnext_tiny", 2, ("features.0.", "features.1.")),
    ("efficientnet_b0", 3, ("features.0.", "features.1.", "features.2.")),
    ("mobilenet_v3_small", 4, ("features.0.", "features.1.", "features.2.", "features.3.")),
]


@pytest.mark.parametrize(("arch", "n", "prefixes"), FROZEN)
def test_freeze_layers_fixes_exactly_the_first_blocks(arch: str, n: int, prefixes: tuple[str, ...]) -> None:
    model = build_model(arch, 2)
    blocks = freeze(model, arch, n)
    assert len(blocks) == n
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {name for name, _ in model.named_parameters() if name.startswith(prefixes)}
    opt = make_optimizer(TrainConfig(optimizer="sgd"), trainable(model))
    in_opt = {id(p) for group in opt.param_groups for p in group["params"]}
    assert in_opt == {id(p) for p in model.parameters() if p.requires_grad} and in_opt


def test_frozen_blocks_keep_weights_and_batchnorm_statistics_while_the_rest_learns() -> None:
    torch.manual_seed(0)
    model = build_model("resnet18", 2)
    blocks = freeze(model, "resnet18", 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = TrainConfig(optimizer="sgd", lr=0.1, augment="none")
    trainer = Trainer(
        model,
        make_optimizer(cfg, trainable(model)),
        nn.CrossEntropyLoss(),
        torch.device("cpu"),
        "none",
        torch.Generator(),
        frozen=blocks,
    )
    source = MemorySource(
        torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8), torch.arange(8) % 2, torch.device("cpu")
    )
    trainer.epoch(source, torch.arange(8), 4)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert not any(k.startswith(("conv1.", "bn1.", "layer1.")) for k in changed)
    assert {"layer2.0.conv1.weight", "layer2.0.bn1.running_mean", "fc.1.weight"} <= changed


@pytest.mark.parametrize(("arch", "n"), [("resnet18", 6), ("vgg16", 6), ("small_cnn", 5)])
def test_freezing_more_blocks_than_the_backbone_has_is_a_config_error(arch: str, n: int) -> None:
    with pytest.raises(ConfigError, match="train_model.freeze_layers"):
        build_model(arch, 2, freeze_layers=n)


def test_pretrained_state_dict_loads_leniently_and_counts_what_did_not_fit(tmp_path: Path) -> None:
    from torchvision.models import resnet18

    imagenet = resnet18(weights=None)  # the layout of a torchvision ImageNet file: fc is 1000 × 512
    torch.save(imagenet.state_dict(), tmp_path / "imagenet.pt")
    model = build_model("resnet18", 2)
    report = load_pretrained(model, str(tmp_path / "imagenet.pt"))
    assert (report.missing, report.unexpected, report.mismatched) == (2, 2, 0)  # fc.1.* vs fc.*
    assert report.loaded == len(imagenet.state_dict()) - 2
    assert torch.equal(model.layer4[1].conv2.weight, imagenet.layer4[1].conv2.weight)
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "ddp.pt")
    assert load_pretrained(build_model("resnet18", 2), str(tmp_path / "ddp.pt")).missing == 0
    with pytest.raises(DataError, match="pretrained weights not found"):
        load_pretrained(model, str(tmp_path / "absent.pt"))


def test_vgg16_takes_the_convolutions_of_a_torchvision_vgg16_file(tmp_path: Path) -> None:
    donor = build_model("vgg16", 2)
    layout = {k: v for k, v in donor.state_dict().items() if k.startswith("features.")}
    layout |= {"classifier.0.weight": torch.zeros(4096, 8), "classifier.6.bias": torch.zeros(1000)}  # fc6, fc8
    torch.save(layout, tmp_path / "vgg16.pt")
    model = build_model("vgg16", 2)
    report = load_pretrained(model, str(tmp_path / "vgg16.pt"))
    assert (report.loaded, report.missing, report.unexpected) == (26, 2, 2)  # 13 convs; our head; fc6/fc8
    assert torch.equal(model.features[28].weight, donor.features[28].weight)


def test_imagenet_weights_come_from_the_torch_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file already in the hub cache is what `pretrained: imagenet` loads (no network needed)."""
    from torchvision.models import ResNet18_Weights, resnet18

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = tmp_path / "hub" / "checkpoints" / Path(ResNet18_Weights.DEFAULT.url).name
    cached.parent.mkdir(parents=True)
    donor = resnet18(num_classes=1000)
    torch.save(donor.state_dict(), cached)
    model = build_model("resnet18", 3)
    report = load_weights(model, "resnet18", "imagenet", None)
    assert report.source == "torchvision ResNet18_Weights.IMAGENET1K_V1"
    assert (report.loaded, report.unexpected, report.mismatched) == (len(donor.state_dict()) - 2, 2, 0)  # fc: ours
    assert torch.equal(model.layer4[1].conv2.weight, donor.layer4[1].conv2.weight)


def test_imagenet_weights_offline_say_where_to_put_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No network (a proxy nobody listens on stands for an air-gapped machine): a ConfigError naming
    the cache path and pretrained_path, never a silent training from scratch."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    with pytest.raises(ConfigError, match="could not be downloaded") as err:
        load_weights(build_model("resnet18", 2), "resnet18", "imagenet", None)
    message = str(err.value)
    assert str(tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in message
    assert "pretrained_path" in message


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"arch": "small_cnn", "pretrained": "imagenet"}, "pretrained"),
        ({"pretrained": "imagenet", "pretrained_path": "w.pt"}, "pretrained"),
    ],
)
def test_pretrained_sources_that_cannot_work_are_refused(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=f"train_model.{field}"):
        TrainConfig(**overrides)


def test_balanced_sampler_draws_every_class_about_equally_and_drops_the_class_weights() -> None:
    cfg = TrainConfig(sampler="balanced", class_weights="balanced")
    labels = torch.tensor([0] * 900 + [1] * 100)
    order = epoch_order(cfg, labels, torch.Generator().manual_seed(0))
    assert len(order) == 1000 and abs(int((labels[order] == 1).sum()) - 500) < 60
    assert class_weights(cfg, labels, 2) is None  # the sampler already balances: no double counting
    plain = epoch_order(TrainConfig(), labels, torch.Generator().manual_seed(0))
    assert sorted(plain.tolist()) == list(range(1000))  # shuffle: every patch exactly once


def _lrs(cfg: TrainConfig, scores: list[float]) -> list[float]:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = make_scheduler(cfg, opt)
    out = []
    for score in scores:
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        step_scheduler(sched, score)
    return out


@pytest.mark.parametrize(
    ("overrides", "scores", "expected"),
    [
        ({"scheduler": "none"}, [0.5] * 4, [1.0, 1.0, 1.0, 1.0]),
        ({"scheduler": "cosine", "epochs": 4}, [0.5] * 4, [1.0, 0.8535533905932737, 0.5, 0.14644660940672627]),
        ({"scheduler": "step", "step_size": 2, "gamma": 0.5}, [0.5] * 5, [1.0, 1.0, 0.5, 0.5, 0.25]),
        (
            {"scheduler": "plateau", "plateau_patience": 1, "gamma": 0.1},
            [0.5, 0.6, 0.6, 0.6, 0.7],
            [1.0, 1.0, 1.0, 1.0, 0.1],
        ),
        (
            {"scheduler": "plateau", "plateau_patience": 0, "gamma": 0.5, "min_delta": 0.05},
            [0.5, 0.52, 0.6],
            [1.0, 1.0, 0.5],
        ),
    ],
)
def test_scheduler_choices(overrides: dict[str, Any], scores: list[float], expected: list[float]) -> None:
    assert _lrs(TrainConfig(lr=1.0, **overrides), scores) == pytest.approx(expected)


def test_onecycle_warms_up_then_anneals_within_exactly_the_planned_steps() -> None:
    """Per batch: lr/25 → lr at warmup_fraction of the steps → lr/(25·10⁴) at the very last one."""
    cfg = TrainConfig(lr=1.0, scheduler="onecycle", epochs=4, warmup_fraction=0.25)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = make_scheduler(cfg, opt, steps_per_epoch=5)
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(1 / 25) and max(lrs) == pytest.approx(1.0) and lrs.index(max(lrs)) == 4
    assert lrs[-1] < 1e-3 and all(a >= b for a, b in zip(lrs[4:], lrs[5:], strict=False))
    last = opt.param_groups[0]["lr"]
    step_scheduler(sched, 0.5)  # the end-of-epoch step leaves a per-batch schedule alone
    assert opt.param_groups[0]["lr"] == last


@pytest.mark.parametrize(("n_steps", "epochs"), [(2, 150), (7, 43), (35, 15), (300, 15)])
def test_min_steps_lengthens_runs_on_small_sets_only(n_steps: int, epochs: int) -> None:
    cfg = TrainConfig(epochs=15, min_steps=300)
    assert cfg.planned(n_steps).epochs == epochs and TrainConfig(epochs=15).planned(2).epochs == 15


@pytest.mark.parametrize(
    ("overrides", "before_stopping"),
    [
        ({"scheduler": "onecycle", "min_epochs": None, "epochs": 12}, 12),  # the schedule always finishes
        ({"scheduler": "cosine", "min_epochs": None, "epochs": 12}, 12),
        ({"scheduler": "plateau", "min_epochs": None, "epochs": 12}, 0),  # open-ended: patience decides
        ({"scheduler": "onecycle", "min_epochs": 5, "epochs": 12}, 5),
        ({}, 0),  # the dataclass default: as before
    ],
)
def test_early_stopping_waits_for_a_fixed_length_schedule(overrides: dict[str, Any], before_stopping: int) -> None:
    assert TrainConfig(**overrides).epochs_before_stopping == before_stopping


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("scheduler", "cyclic"),
        ("augment", "heavy"),
        ("sampler", "smote"),
        ("warmup_fraction", 1.0),
        ("pretrained", "imagenet21k"),
        ("min_epochs", -1),
        ("loader", "dali"),
        ("amp", "fp8"),
        ("arch", "vit_b_16"),
        ("optimizer", "lion"),
        ("freeze_layers", -1),
        ("log_every", 0),
        ("gamma", 0.0),
    ],
)
def test_config_refuses_unknown_choices_naming_the_key(field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=f"train_model.{field}"):
        TrainConfig(**{field: value})


def test_default_config_is_the_stage_as_it_was() -> None:
    cfg = TrainConfig()
    assert (cfg.augment, cfg.scheduler, cfg.freeze_layers, cfg.loader, cfg.amp, cfg.resume) == (
        "flips",
        "cosine",
        0,
        "memory",
        "auto",
        None,
    )


@pytest.mark.parametrize("preset", PRESETS)
def test_augment_presets_keep_shape_and_dtype_and_are_seeded(preset: str) -> None:
    batch = torch.randint(0, 256, (6, 3, 24, 24), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    runs = [augment(batch, preset, torch.Generator().manual_seed(seed)) for seed in (7, 7, 8, 9, 10)]
    assert all(r.shape == batch.shape and r.dtype == torch.uint8 for r in runs)
    assert torch.equal(runs[0], runs[1])
    if preset == "none":
        assert torch.equal(runs[0], batch)
    else:  # over several seeds at least one differs from another (flips alone may draw "identity")
        assert any(not torch.equal(runs[0], r) for r in runs[2:])


@pytest.mark.parametrize("preset", ["light", "strong"])
def test_photometric_presets_change_each_image_differently(preset: str) -> None:
    batch = torch.full((4, 3, 16, 16), 120, dtype=torch.uint8)
    batch[:, :, 4:12, 4:12] = 200
    out = augment(batch, preset, torch.Generator().manual_seed(3)).float()
    means = out.mean(dim=(1, 2, 3))
    assert len(set(means.tolist())) == 4  # per-image factors, not one per batch
    assert (means - batch.float().mean()).abs().max() < (15 if preset == "light" else 60)


def test_hflip_orientation_only_ever_mirrors_left_right() -> None:
    """Chest films / CT slices: over many draws each image is itself or its mirror, never turned
    or upside down; and both outcomes occur, image by image."""
    batch = torch.arange(2 * 3 * 8 * 8, dtype=torch.int64).remainder(256).to(torch.uint8).view(2, 3, 8, 8)
    gen = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(40):
        out = augment(batch, "flips", gen, orientation="hflip")
        for i in range(2):
            assert torch.equal(out[i], batch[i]) or torch.equal(out[i], batch[i].flip(2))
            seen.add((i, torch.equal(out[i], batch[i])))
    assert seen == {(0, True), (0, False), (1, True), (1, False)}


def test_any_orientation_draws_each_image_its_own_of_the_eight() -> None:
    batch = torch.arange(8 * 8, dtype=torch.int64).to(torch.uint8).view(1, 1, 8, 8).expand(64, 3, 8, 8).contiguous()
    out = augment(batch, "flips", torch.Generator().manual_seed(0))
    variants = {tuple(img[0].flatten().tolist()) for img in out}
    assert len(variants) == 8  # the dihedral group of the square, within one batch


def test_orientation_none_keeps_geometry_and_bad_orientation_is_named() -> None:
    batch = torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    assert torch.equal(augment(batch, "flips", torch.Generator().manual_seed(5), orientation="none"), batch)
    with pytest.raises(ConfigError, match="augment_orientation"):
        augment(batch, "flips", torch.Generator(), orientation="sideways")
    with pytest.raises(ConfigError, match="augment_orientation"):
        TrainConfig(augment_orientation="sideways")
