"""Claim: train_model's data path keeps up with the model — the full training loop runs at ≥ 0.9×
the images/s of the same model fed pre-built tensors already on the device.

Writes N patches (64 px JPEG q92 through crop_patches' own `save`, under patches/train/<class>/,
plus the `patches.parquet` rows the stage reads) into a temp folder, then times, with the same
architecture, batch size, precision, memory format and number of optimizer steps:

1. full loop: the stage's loader (`open_split`; `memory` decodes every file once — timed
   separately — `dataloader` decodes inside the loop) → uint8 batch gathered, copied to the
   device, augmented there, normalised → forward/backward/step (`engine.Trainer.epoch`, the code
   the stage runs);
2. model only: one pre-built normalised float batch already on the device, fed `steps` times to
   the same step function (no loading, no augmentation).

Both start from the same seeded weights after `--warmup` untimed steps (cuDNN autotuning,
allocator); each timing ends with a device synchronisation; the two alternate for `--repeats`
rounds and their medians are compared (a shared machine's load drifts). Prints the device, both
images/s and their ratio (≥ 0.9: the loader is not the bottleneck), and the memory loader's
one-off decode, which a real run pays once per process, not per epoch.

    .venv/bin/python benchmarks/train_throughput.py [--device auto|cpu|cuda] [--arch resnet18]
        [--batch-size 64] [--steps 50] [--patches 3000] [--size 64] [--loader memory|dataloader]
        [--num-workers 4] [--gpu-memory-fraction 0.25] [--augment flips] [--amp auto|off] [--threads 0] [--warmup 5] [--repeats 3]
        [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn

from components.common.classifier.config import TrainConfig
from components.common.classifier.engine import Trainer, amp_dtype, make_optimizer
from components.common.classifier.loader import MemorySource, open_split
from components.common.classifier.models import build_model, trainable
from components.common.device import pick_device
from components.crop_patches.config import CropConfig
from components.crop_patches.pixels import save

CLASSES = ("lichen_planus", "parapsoriasis", "lupus_erythematosus", "eczema", "psoriasis")


def write_patches(root: Path, n: int, size: int, seed: int = 0) -> Path:
    """`n` skin-like patches with a class-coloured lesion, written the crop_patches way."""
    rng = np.random.default_rng(seed)
    cfg, rows = CropConfig(patch_size=size), []
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        label = CLASSES[i % len(CLASSES)]
        base = np.array([205, 160, 135]) * rng.uniform(0.7, 1.1)
        pixels = base + rng.normal(0, 8, (size, size, 3))
        (cy, cx), r = rng.uniform(0.3, 0.7, 2) * size, rng.uniform(0.15, 0.35) * size
        lesion = ((yy - cy) ** 2 + (xx - cx) ** 2) < r**2
        pixels[lesion] *= (0.6 + 0.1 * (i % len(CLASSES)), 0.5, 0.55)
        rel = f"train/{label}/p{i:06d}.jpg"
        save(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), root / "patches" / rel, cfg)
        rows.append(
            {
                "patch_id": f"p{i:06d}",
                "patch_path": rel,
                "label": label,
                "patient_id": f"P{i // 3}",
                "split": "train",
                "augment": "none",
            }
        )
    pd.DataFrame(rows).to_parquet(root / "patches.parquet", index=False)
    return root


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _trainer(cfg: TrainConfig, device: torch.device) -> Trainer:
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.arch, len(CLASSES), cfg.dropout).to(device)
    channels_last = cfg.channels_last and device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return Trainer(
        model,
        make_optimizer(cfg, trainable(model)),
        nn.CrossEntropyLoss(),
        device,
        cfg.augment,
        torch.Generator().manual_seed(cfg.seed),
        amp_dtype(cfg, device),
        channels_last,
    )


def _indices(n: int, count: int, seed: int) -> torch.Tensor:
    """`count` indices as successive seeded epochs' permutations (as the stage draws them)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.cat([torch.randperm(n, generator=gen) for _ in range(-(-count // n))])[:count]


def _timed(fn: Any, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def _where(source: Any) -> str:
    """Where the memory loader keeps the split: the GPU, pinned host RAM or (CPU training) RAM."""
    if not isinstance(source, MemorySource):
        return "files"
    return "gpu" if source.resident else "pinned host" if source.pinned else "host"


def measure(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    cfg = TrainConfig(
        arch=args.arch,
        image_size=args.size,
        batch_size=args.batch_size,
        device=args.device,
        loader=args.loader,
        num_workers=args.num_workers,
        augment=args.augment,
        amp=args.amp,
        gpu_memory_fraction=args.gpu_memory_fraction,
    )
    device = pick_device(args.device)
    images = args.steps * args.batch_size
    start = time.perf_counter()
    source = open_split(root, "train", CLASSES, cfg, device)
    decode_s = time.perf_counter() - start

    full, bare = _trainer(cfg, device), _trainer(cfg, device)
    x = bare.prepare(
        torch.randint(0, 256, (args.batch_size, 3, args.size, args.size), dtype=torch.uint8, device=device), train=False
    )
    y = torch.arange(args.batch_size, device=device) % len(CLASSES)

    def full_loop(n: int, seed: int) -> None:
        full.epoch(source, _indices(len(source), n * args.batch_size, seed), args.batch_size)

    def model_only(n: int) -> None:
        bare.model.train()
        for _ in range(n):
            bare.step(x, y)

    full_loop(args.warmup, 0)
    model_only(args.warmup)
    # Alternate the two, several rounds, medians: a shared machine's load drifts during a run.
    rounds = [
        (_timed(lambda r=r: full_loop(args.steps, r + 1), device), _timed(lambda: model_only(args.steps), device))
        for r in range(args.repeats)
    ]
    full_s, bare_s = (float(np.median(times)) for times in zip(*rounds))
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    )
    return {
        "device": name,
        "arch": args.arch,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "repeats": args.repeats,
        "loader": args.loader,
        "split_on": _where(source),
        "augment": args.augment,
        "amp": str(full.dtype).removeprefix("torch.") if full.dtype else "off",
        "patches": len(source),
        "full_images_per_s": images / full_s,
        "model_images_per_s": images / bare_s,
        "ratio": bare_s / full_s,
        "decode_s": decode_s,
        "decode_images_per_s": len(source) / decode_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds of each; medians are compared")
    parser.add_argument("--patches", type=int, default=3000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--loader", choices=("memory", "dataloader"), default="memory")
    parser.add_argument("--num-workers", type=int, default=4)
    parser.add_argument(
        "--gpu-memory-fraction", type=float, default=TrainConfig.gpu_memory_fraction, help="0: split pinned in host RAM"
    )
    parser.add_argument("--augment", default="flips")
    parser.add_argument("--amp", choices=("auto", "off"), default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="lesionops-bench-") as tmp:
        start = time.perf_counter()
        write_patches(Path(tmp), args.patches, args.size)
        print(f"wrote {args.patches} {args.size}px patches in {time.perf_counter() - start:.1f} s")
        result = measure(args, Path(tmp))
    print(
        f"device: {result['device']}  arch: {result['arch']}  batch {result['batch_size']}"
        f" × {result['steps']} steps × {result['repeats']} rounds  loader: {result['loader']} ({result['split_on']})"
        f"  augment: {result['augment']}  amp: {result['amp']}"
    )
    print(f"full loop (loader + augment + step): {result['full_images_per_s']:10.1f} images/s")
    print(f"model only (tensors on the device):  {result['model_images_per_s']:10.1f} images/s")
    verdict = "the loader keeps up" if result["ratio"] >= 0.9 else "the loader is a bottleneck"
    print(f"ratio full / model only: {result['ratio']:.3f} ({verdict}; target ≥ 0.9)")
    if args.loader == "memory":
        print(
            f"one-off decode (memory loader, before the first epoch): {result['patches']} patches in "
            f"{result['decode_s']:.2f} s ({result['decode_images_per_s']:.0f} images/s)"
        )
    else:
        print(f"dataloader start-up (patch table only; decoding is inside the timed loop): {result['decode_s']:.2f} s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
