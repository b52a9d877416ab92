"""Backbone weights: torchvision's ImageNet weights (`pretrained: imagenet`), or a local file or
`s3://bucket/key` (`pretrained_path`).

`imagenet` goes through torchvision's weights enums, so the file is downloaded once into the torch
hub cache (`$TORCH_HOME/hub/checkpoints/`, ~/.cache/torch by default) and read from there after.
Offline (this machine, an air-gapped cluster), the download fails and the error says which file to
put where, or to point `pretrained_path` at a copy: nothing silently trains from scratch.

Loading is lenient on purpose (`strict=False`): an ImageNet file has a 1000-class head and a
previous LesionOps checkpoint may have another class list, so keys that do not fit are skipped.
What was skipped is counted and reported, so "loaded nothing" is visible in the log and in MLflow
rather than silently training from scratch.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from components.common import storage
from components.common.errors import ConfigError, DataError


@dataclass(frozen=True)
class LoadReport:
    source: str
    loaded: int  # tensors copied into the model
    missing: int  # model keys the file did not provide (e.g. the new head)
    unexpected: int  # file keys the model has no place for (e.g. the ImageNet head)
    mismatched: int  # same name, different shape: skipped (counted in `missing` as well)

    def as_params(self) -> dict[str, int | str]:
        return {
            "pretrained_loaded_keys": self.loaded,
            "pretrained_missing_keys": self.missing,
            "pretrained_unexpected_keys": self.unexpected,
            "pretrained_mismatched_keys": self.mismatched,
        }


def _check_s3(uri: str) -> None:
    key = storage.parse(uri).key
    if not key or key.endswith("/"):
        raise ConfigError(f"train_model.pretrained_path: expected s3://bucket/key of one file, found {uri!r}")


@contextlib.contextmanager
def local_copy(uri: str) -> Iterator[Path]:
    """A readable local path for `uri`; S3 objects go to a temporary file removed afterwards
    (weights are read once per run, so they are not kept in the storage cache).

    Credentials, region and endpoint come from the standard AWS chain (environment, ~/.aws,
    instance role; `AWS_ENDPOINT_URL_S3` for MinIO-like stores), as for any storage-layer read.
    """
    if not storage.is_remote(uri):
        path = storage.parse(uri).path
        if not path.is_file():
            raise DataError(path, "pretrained weights not found (train_model.pretrained_path)")
        yield path
        return
    _check_s3(uri)
    with tempfile.TemporaryDirectory(prefix="lesionops-weights-") as tmp:
        yield storage.download(uri, Path(tmp) / Path(storage.parse(uri).key).name, "pretrained weights")


def _state_dict(path: Path, source: str) -> dict[str, torch.Tensor]:
    """A plain state_dict, a LesionOps checkpoint ({"state_dict": …}) or a DDP one ("module." keys)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors for a bad file
        raise DataError(source, f"not a torch state_dict file: {exc}") from exc
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise DataError(source, "expected a mapping of parameter names to tensors (a state_dict)")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_pretrained(model: nn.Module, uri: str) -> LoadReport:
    """Copy every tensor of `uri` whose name and shape fit `model`; count what did not."""
    with local_copy(uri) as path:
        state = _state_dict(path, uri)
    return load_state(model, state, uri)


# torchvision's DenseNet files predate its module names ("norm.1" for "norm1"); its own loader
# renames them with this pattern before loading, and so must we.
_DENSENET_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


def imagenet_state_dict(arch: str) -> tuple[dict[str, torch.Tensor], str]:
    """torchvision's default ImageNet weights for `arch` (the hub cache, else a download) and their
    name; a ConfigError saying where to put the file when they cannot be fetched."""
    from torchvision.models import get_model_weights

    try:
        weights = get_model_weights(arch).DEFAULT
    except ValueError as exc:  # small_cnn (the config refuses it too) or an unknown name
        raise ConfigError(f"train_model.pretrained: torchvision has no ImageNet weights for {arch!r}") from exc
    import torch.hub

    target = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
    try:
        state = weights.get_state_dict(progress=False, check_hash=False)
    except OSError as exc:  # URLError (offline, DNS, proxy) and HTTP errors are OSErrors
        raise ConfigError(
            f"train_model.pretrained: imagenet weights for {arch} ({weights}) could not be downloaded from "
            f"{weights.url} ({exc}). Offline, copy that file to {target} (the torch hub cache; TORCH_HOME moves "
            "it), or set train_model.pretrained: none and train_model.pretrained_path: <the file or an "
            "s3:// URI>"
        ) from exc
    if arch == "densenet121":
        state = {(_DENSENET_KEY.sub(r"\1\2", k)): v for k, v in state.items()}
    return state, f"torchvision {weights}"


def load_weights(model: nn.Module, arch: str, pretrained: str, path: str | None) -> LoadReport:
    """The configured source of weights into `model`: ImageNet through torchvision, or a file."""
    if pretrained == "imagenet":
        state, source = imagenet_state_dict(arch)
        return load_state(model, state, source)
    if not path:
        raise ConfigError("train_model.pretrained_path: no weights configured")
    return load_pretrained(model, path)


def load_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> LoadReport:
    """Copy every tensor of `state` whose name and shape fit `model`; count what did not."""
    own = model.state_dict()
    fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    mismatched = sum(1 for k, v in state.items() if k in own and own[k].shape != v.shape)
    result = model.load_state_dict(fits, strict=False)
    return LoadReport(
        source=source,
        loaded=len(fits),
        missing=len(result.missing_keys),
        unexpected=len(set(state) - set(own)),
        mismatched=mismatched,
    )
