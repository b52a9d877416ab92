"""Batch augmentation presets, run on the training device on uint8 batches, seeded.

Random parameters (a few numbers per batch or per image) are drawn on the host from the run's
seeded `torch.Generator`, so a preset gives the same pixels for the same seed on CPU or GPU and a
resumed run continues the same sequence; the pixel work then happens where the batch already is
(one H2D copy of uint8 per batch, no per-image Python, no worker processes).

- `none`: nothing.
- `flips`: a random horizontal/vertical flip and 90° turn per image — lesions have no canonical
  orientation.

Which orientations are label-preserving is a property of the modality, not of the preset, so it is
a separate setting (`train_model.augment_orientation`): `any` (flips and 90° turns: skin photos),
`hflip` (left-right mirror only: a chest film or CT slice upside down or turned is not a film any
more), `none` (no geometric change; photometric jitter still applies).
- `light`: flips + per-image brightness and contrast ×U(0.9, 1.1).
- `strong`: flips + per-image random resized crop (area 60–100 %, aspect 3/4–4/3) + brightness,
  contrast and saturation ×U(0.75, 1.25).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from components.common.device import to_device
from components.common.errors import ConfigError

PRESETS = ("none", "flips", "light", "strong")
ORIENTATIONS = ("any", "hflip", "none")
_LUMA = (0.299, 0.587, 0.114)


def flips(batch: torch.Tensor, gen: torch.Generator, orientation: str = "any") -> torch.Tensor:
    """Random flips and 90° turns (`any`) or a left-right mirror only (`hflip`), drawn per image:
    one draw per batch showed every image of a step in the same orientation, so a step's gradient
    saw 1 of the 8 orientations instead of all of them (a few masked copies of 64 px uint8)."""
    if orientation == "none" or batch.shape[0] == 0:
        return batch
    n = batch.shape[0]
    # drawn on the host in a fixed order (same pixels on CPU and GPU for a seed), moved in one copy
    mirror = torch.rand(n, generator=gen) < 0.5
    if orientation == "hflip":
        return torch.where(to_device(mirror.view(n, 1, 1, 1), batch.device), batch.flip(3), batch)
    upside = torch.rand(n, generator=gen) < 0.5
    turns = torch.randint(0, 4, (n,), generator=gen)
    draws = to_device(torch.stack([mirror.long(), upside.long(), turns]).view(3, n, 1, 1, 1), batch.device)
    out = torch.where(draws[0] == 1, batch.flip(3), batch)
    out = torch.where(draws[1] == 1, out.flip(2), out)
    if batch.shape[2] == batch.shape[3]:  # patches are square; a turn of a non-square batch would not fit
        for k in (1, 2, 3):
            out = torch.where(draws[2] == k, torch.rot90(out, k, dims=(2, 3)), out)
    return out


def _factors(n: int, spread: float, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    return to_device((1.0 + (torch.rand(n, generator=gen) * 2 - 1) * spread).view(n, 1, 1, 1), device)


def _grey(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)


def _jitter(x: torch.Tensor, gen: torch.Generator, spread: float, saturation: bool) -> torch.Tensor:
    """Brightness, contrast (around each image's mean grey) and optionally saturation, on 0–255 floats."""
    n = x.shape[0]
    b, c = _factors(n, spread, gen, x.device), _factors(n, spread, gen, x.device)
    x = (x * b).clamp(0, 255)
    mean = _grey(x).mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * c + mean).clamp(0, 255)
    if saturation:
        s = _factors(n, spread, gen, x.device)
        grey = _grey(x)
        x = ((x - grey) * s + grey).clamp(0, 255)
    return x


def _resized_crop(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Per-image random crop resized back to the input size: one affine grid_sample for the batch."""
    n = x.shape[0]
    area = 0.6 + 0.4 * torch.rand(n, generator=gen)
    ratio = torch.exp(math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * torch.rand(n, generator=gen))
    sw, sh = (area * ratio).sqrt().clamp(max=1.0), (area / ratio).sqrt().clamp(max=1.0)
    cx = (torch.rand(n, generator=gen) * 2 - 1) * (1 - sw)
    cy = (torch.rand(n, generator=gen) * 2 - 1) * (1 - sh)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sw, cx, sh, cy
    grid = F.affine_grid(to_device(theta, x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def augment(batch: torch.Tensor, preset: str, gen: torch.Generator, orientation: str = "any") -> torch.Tensor:
    """uint8 N×3×H×W → augmented uint8 N×3×H×W on the same device (presets: the module doc)."""
    if preset == "none":
        return batch
    if preset not in PRESETS:
        raise ConfigError(f"train_model.augment: expected one of {list(PRESETS)}, found {preset!r}")
    if orientation not in ORIENTATIONS:
        raise ConfigError(
            f"train_model.augment_orientation: expected one of {list(ORIENTATIONS)}, found {orientation!r}"
        )
    batch = flips(batch, gen, orientation)
    if preset == "flips" or batch.shape[0] == 0:
        return batch
    x = batch.float()
    if preset == "strong":
        x = _resized_crop(x, gen)
    x = _jitter(x, gen, 0.1 if preset == "light" else 0.25, saturation=preset == "strong")
    return x.round_().clamp_(0, 255).to(torch.uint8)
