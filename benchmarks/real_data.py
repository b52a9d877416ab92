"""Claim: the default recipe is at least as good as a plain ResNet-18 and beats the all-data baseline,
on every multi-class real labelImg set and on the demo data.

For each multi-class set under `shared/real-data` (found as tests do: LESIONOPS_REAL_DATA or a
`shared/real-data` beside the checkout; classes read from the labelImg XML, spelled as typed) and
for the synthetic demo set (800 photos, `lesionops synth`), and for each split salt given:

1. the whole training pipeline through kfp.local (`lesionops pipeline run`, default params.yaml,
   own MLflow store), timed end to end;
2. the CNN's and the HOG+SVM baseline's test macro-F1 with patient-bootstrap CIs, the gain, ECE
   before/after temperature scaling, best epoch (from the pipeline's own metrics.json);
3. a *plain reference* on the same split's train crops (the pipeline's patches.parquet): an
   independent script (below, not the project's loop) — torchvision ResNet-18 from scratch,
   per-channel normalisation, random flips + 90° turns, AdamW + OneCycle, class-weighted
   cross-entropy, 15 epochs, last weights — scored on the same test crops.

Options: `--gate` adds the gate both ways on the demo data (a weak champion, 2 epochs; then the
default recipe: promoted; then a 1-epoch challenger: refused). `--detector-epochs N` trains the
Faster R-CNN detector on ldc_cells for N epochs (CPU budget: N × ~4 min here) and reports mAP@0.5.

    .venv/bin/python benchmarks/real_data.py [--salts lesionops-v1 bench-salt-2] [--sets ldc_cells demo]
        [--gate] [--detector-epochs 2] [--work /tmp/lesionops-real] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from defusedxml import ElementTree

REPO = Path(__file__).resolve().parents[1]
LESIONOPS = [sys.executable, "-m", "lesionops"]
DEMO = "demo"


# ---------------------------------------------------------------- the plain reference (independent)


def _load(patch_dir: Path, split: str, classes: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    from PIL import Image

    table = pd.read_parquet(patch_dir / "patches.parquet")
    rows = table[(table.split == split) & (table.get("augment", "none") == "none")].sort_values("patch_path")
    images = np.stack(
        [np.asarray(Image.open(patch_dir / "patches" / p).convert("RGB").resize((64, 64))) for p in rows.patch_path]
    )
    keys = [c.lower() for c in classes]
    return (
        torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
        torch.tensor([keys.index(str(c).lower()) for c in rows.label]),
    )


def plain_reference(patch_dir: Path, classes: list[str], epochs: int = 15, seed: int = 0) -> float:
    """Test macro-F1 of a plain torchvision ResNet-18 trained on the split's train crops."""
    import torchvision
    from sklearn.metrics import f1_score

    torch.manual_seed(seed)
    x, y = _load(patch_dir, "train", classes)
    xt, yt = _load(patch_dir, "test", classes)
    mean = x.float().div(255).mean(dim=(0, 2, 3)).view(1, 3, 1, 1)
    std = x.float().div(255).std(dim=(0, 2, 3)).view(1, 3, 1, 1)
    model = torchvision.models.resnet18(num_classes=len(classes))
    counts = torch.bincount(y, minlength=len(classes)).float().clamp(min=1)
    loss_fn = torch.nn.CrossEntropyLoss(weight=counts.sum() / (len(classes) * counts))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = -(-len(x) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, epochs=epochs, steps_per_epoch=steps)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(x)).split(64):
            batch = x[idx].float().div(255)
            flip_h, flip_v = torch.rand(len(idx)) < 0.5, torch.rand(len(idx)) < 0.5
            batch[flip_h] = batch[flip_h].flip(3)
            batch[flip_v] = batch[flip_v].flip(2)
            batch = torch.rot90(batch, int(torch.randint(0, 4, (1,))), dims=(2, 3))
            loss = loss_fn(model((batch - mean) / std), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    with torch.no_grad():
        pred = torch.cat(
            [model((xt[i : i + 256].float().div(255) - mean) / std).argmax(1) for i in range(0, len(xt), 256)]
        )
    return float(f1_score(yt.numpy(), pred.numpy(), average="macro"))


# ---------------------------------------------------------------- the pipeline on one set


def voc_classes(folder: Path) -> list[str]:
    """Labels as typed in the labelImg XML, most common spelling per case/space-insensitive key,
    most frequent class first."""
    counts: Counter[str] = Counter()
    for xml in folder.rglob("*.xml"):
        counts.update(o.findtext("name", "").strip() for o in ElementTree.parse(xml).getroot().iter("object"))
    by_key: dict[str, Counter[str]] = {}
    for name, n in counts.items():
        if name:
            by_key.setdefault(name.lower().replace(" ", "").replace("_", ""), Counter())[name] += n
    return [c.most_common(1)[0][0] for c in sorted(by_key.values(), key=lambda c: -sum(c.values()))]


def real_sets(root: Path | None) -> dict[str, Path]:
    """Every multi-class labelImg set under the real-data root."""
    if root is None:
        return {}
    return {d.name: d for d in sorted(root.iterdir()) if d.is_dir() and len(voc_classes(d)) >= 2}


def real_data_root() -> Path | None:
    if env := os.environ.get("LESIONOPS_REAL_DATA"):
        return Path(env) if Path(env).is_dir() else None
    return next((p / "shared" / "real-data" for p in REPO.parents if (p / "shared" / "real-data").is_dir()), None)


def pipeline(name: str, source: Path, work: Path, salt: str, extra: list[str], tag: str = "") -> dict[str, Any]:
    """One `lesionops pipeline run` into its own store; returns its outputs and wall time."""
    run_dir = work / f"{name}-{salt}"
    run_dir.mkdir(parents=True, exist_ok=True)
    sets = [
        "--set",
        f"mlflow.tracking_uri=sqlite:///{run_dir / 'mlflow.db'}",
        "--set",
        f"mlflow.artifact_root={run_dir / 'artifacts'}",
        "--set",
        f"crop_patches.split.salt={salt}",
        "--set",
        f"promote_model.audit_log={run_dir / 'audit.jsonl'}",
        "--set",
        "train_model.threads=2",
    ]
    if name != DEMO:
        task = run_dir / "task.yaml"
        task.write_text(
            json.dumps(
                {
                    "task": {"name": name, "classes": voc_classes(source), "models": ["classifier"]},
                    "mlflow": {"registered_model": f"{name}_classifier", "registered_detector": f"{name}_detector"},
                }
            )
        )
        sets += ["--task", str(task)]
    root = run_dir / f"kfp{tag}"
    started = time.monotonic()
    proc = subprocess.run(
        [*LESIONOPS, "pipeline", "run", "--source", str(source), "--pipeline-root", str(root), *sets, *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    wall = time.monotonic() - started
    if proc.returncode:
        raise RuntimeError(f"{name}: pipeline failed\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    found = {p.name: p for p in root.rglob("*.json")}
    patches = next(p.parent for p in root.rglob("patches.parquet"))
    return {
        "wall_s": wall,
        "metrics": json.loads(found["metrics.json"].read_text()),
        "decision": json.loads(found["decision.json"].read_text()),
        "summary": json.loads(found["train_summary.json"].read_text()) if "train_summary.json" in found else {},
        "patches": patches,
        "promoted": "promotion.json" in found,
    }


def demo_classes() -> list[str]:
    import yaml

    return list(yaml.safe_load((REPO / "params.yaml").read_text())["task"]["classes"])


def one_set(name: str, source: Path, work: Path, salt: str) -> dict[str, Any]:
    out = pipeline(name, source, work, salt, [])
    m = out["metrics"]
    classes = voc_classes(source) if name != DEMO else demo_classes()
    started = time.monotonic()
    reference = plain_reference(out["patches"], classes)
    row = {
        "set": name,
        "salt": salt,
        "cnn_f1": m["test_macro_f1"],
        "cnn_ci": m["ci"]["macro_f1"],
        "baseline_f1": m["baseline_macro_f1"],
        "gain": m["gain_vs_baseline"],
        "ece": m["test_ece"],
        "ece_calibrated": m["test_ece_calibrated"],
        "ece_noise_floor": m.get("test_ece_noise_floor"),
        "n_test": m["n_test"],
        "n_test_patients": m["n_test_patients"],
        "best_epoch": out["summary"].get("best_epoch"),
        "kept_epoch": out["summary"].get("kept_epoch"),  # train_model.keep_weights
        "epochs_run": out["summary"].get("epochs_run"),
        "pipeline_s": round(out["wall_s"]),
        "reference_f1": reference,
        "reference_s": round(time.monotonic() - started),
        "resolution": m.get("test_resolution_macro_f1"),
    }
    print(json.dumps(row), flush=True)
    return row


def gate_both_ways(source: Path, work: Path, salt: str) -> dict[str, Any]:
    """Weak champion (2 epochs), then the default recipe (expected: promoted), then a 1-epoch
    challenger (expected: refused) — all in one registry, on the demo data."""
    steps = {}
    for tag, extra in (
        ("weak", ["--set", "train_model.epochs=2"]),
        ("default", []),
        ("worse", ["--set", "train_model.epochs=1"]),
    ):
        out = pipeline(DEMO, source, work / "gate", salt, extra, tag=f"-{tag}")
        rule = next(r for r in out["decision"]["rules"] if r["name"] == "non_inferior_to_champion")
        steps[tag] = {
            "macro_f1": out["metrics"]["test_macro_f1"],
            "promoted": out["promoted"],
            "rule": rule["reason"],
            "resolution": out["decision"].get("resolution"),
        }
        print(json.dumps({tag: steps[tag]}), flush=True)
    return steps


def detector(source: Path, work: Path, salt: str, epochs: int) -> dict[str, Any]:
    out_dir = work / "detector"
    task = {"task": {"name": "ldc_cells", "classes": voc_classes(source), "models": ["detector"]}}
    (work / "detector.yaml").write_text(json.dumps(task))
    started = time.monotonic()
    out = pipeline(
        "ldc_cells",
        source,
        out_dir,
        salt,
        [
            "--task",
            str(work / "detector.yaml"),
            "--set",
            f"train_detector.epochs={epochs}",
            "--set",
            "train_detector.min_size=224",
            "--set",
            "train_detector.max_size=256",
        ],
    )
    return {"epochs": epochs, "map50": out["metrics"].get("map50"), "wall_s": round(time.monotonic() - started)}


def _floor(row: dict[str, Any]) -> str:
    """The ECE a perfectly calibrated model would show on that test set (evaluate_model's
    test_ece_noise_floor); '–' for results written before it existed."""
    floor = row.get("ece_noise_floor")
    return "–" if floor is None else f"{floor:.3f}"


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| set | salt | CNN macro-F1 (95 % CI) | plain ResNet-18 | HOG+SVM (all data) | gain | ECE raw → T (floor) | "
        "test (patients) | pipeline |\n|---|---|---|---|---|---|---|---|---|"
    )
    lines = [
        f"| {r['set']} | {r['salt']} | {r['cnn_f1']:.3f} ({r['cnn_ci'][0]:.3f}–{r['cnn_ci'][1]:.3f}) | "
        f"{r['reference_f1']:.3f} | {r['baseline_f1']:.3f} | {100 * r['gain']:+.1f} | "
        f"{r['ece']:.3f} → {r['ece_calibrated']:.3f} ({_floor(r)}) | {r['n_test']} ({r['n_test_patients']}) | "
        f"{r['pipeline_s'] / 60:.1f} min |"
        for r in rows
    ]
    return "\n".join([head, *lines])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--salts", nargs="+", default=["lesionops-v1", "bench-salt-2"])
    parser.add_argument("--sets", nargs="*", help="default: every multi-class real set and demo")
    parser.add_argument("--gate", action="store_true", help="the gate both ways on the demo data")
    parser.add_argument("--detector-epochs", type=int, default=0, help="Faster R-CNN on ldc_cells (0: skip)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/lesionops-real"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(2)
    sets = {**real_sets(real_data_root()), DEMO: args.work / "demo_data"}
    if args.sets:
        sets = {k: v for k, v in sets.items() if k in args.sets}
    if DEMO in sets and not (sets[DEMO] / "metadata.csv").is_file():
        subprocess.run([*LESIONOPS, "synth", "--out", str(sets[DEMO])], cwd=REPO, check=True, capture_output=True)
    rows = [one_set(name, source, args.work, salt) for salt in args.salts for name, source in sets.items()]
    result: dict[str, Any] = {"rows": rows, "table": table(rows)}
    if args.gate:
        result["gate"] = gate_both_ways(args.work / "demo_data", args.work, args.salts[0])
    if args.detector_epochs and "ldc_cells" in sets:
        result["detector"] = detector(sets["ldc_cells"], args.work, args.salts[0], args.detector_epochs)
    print(result["table"])
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
