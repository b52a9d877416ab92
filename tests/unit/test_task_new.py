"""`lesionops task new`: labels as typed, spelling variants grouped, proposals, a file --task reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from components.common.params import load_params
from components.common.settings import build_settings
from components.common.task import load_task
from components.common.voc import VocAnnotation, VocBox, write_voc
from lesionops.cli import app
from lesionops.task_new import (
    LabelCount,
    group_labels,
    new_task,
    propose_patch_size,
    propose_patient_pattern,
)
from tests.conftest import REPO, real_dataset


def _labelimg_folder(root: Path, boxes_per_image: dict[str, list[tuple[str, int]]], size: int = 120) -> Path:
    """One small PNG + labelImg XML per entry: name → [(label as typed, box side)]."""
    root.mkdir(parents=True, exist_ok=True)
    for i, (stem, boxes) in enumerate(boxes_per_image.items()):
        Image.new("RGB", (size, size), (40 + i % 200, 90, 140)).save(root / f"{stem}.png")
        voc = tuple(VocBox(label, 5, 5, 5 + side, 5 + side) for label, side in boxes)
        write_voc(root / f"{stem}.xml", VocAnnotation("x", f"{stem}.png", None, size, size, 3, voc))
    return root


def test_spelling_variants_become_one_class_with_aliases_and_a_misspelling_is_noted() -> None:
    found = [
        LabelCount("WBC", 50, 30),
        LabelCount("wbc ", 7, 5),
        LabelCount("RBC", 80, 40),
        LabelCount("Platelet", 20, 12),
        LabelCount("Platlet", 2, 2),
        LabelCount("???", 1, 1),
    ]
    taxonomy = group_labels(found, rare_below=10)
    assert taxonomy.classes == ("RBC", "WBC", "Platelet")
    assert taxonomy.aliases == {"wbc": "WBC", "Platlet": "Platelet"}
    assert "misspelling of 'Platelet'" in taxonomy.notes["Platlet"] and taxonomy.unusable == ["???"]


def test_patch_size_follows_the_boxes_and_patient_ids_need_several_photos() -> None:
    assert propose_patch_size(np.array([20.0, 25, 30]), 0.1) == 64
    assert propose_patch_size(np.array([80.0, 90, 100]), 0.1) == 128
    assert propose_patch_size(np.array([]), 0.1) == 64
    series = [f"P{p:03d}_{k}.jpg" for p in range(12) for k in range(3)]
    pattern, why = propose_patient_pattern(series)
    assert pattern is not None and "12 ids over 36 images" in why
    assert propose_patient_pattern([f"image{i}.png" for i in range(40)])[0] is None
    assert propose_patient_pattern([f"IMG_{2000 + i}.JPG" for i in range(40)])[0] is None
    assert propose_patient_pattern([f"case{i}_a.png" for i in range(40)])[0] is None  # one photo per id


def test_a_messy_folder_becomes_a_task_file_every_typed_label_reads(tmp_path: Path) -> None:
    data = _labelimg_folder(
        tmp_path / "Blood Cells",
        {
            **{f"P{i:02d}_a": [("WBC", 30), ("RBC ", 20), ("rbc", 22)] for i in range(12)},
            **{f"P{i:02d}_b": [("Platelet", 12), ("red-blood_cell", 20)] for i in range(12)},
            **{f"P{i:02d}_c": [("RBC ", 20)] for i in range(12)},
            "P99_a": [],
        },
    )
    out = tmp_path / "tasks" / "blood.yaml"
    found, doc = new_task(str(data), out, load_params(REPO / "params.yaml"), name=None)
    assert (found.n_images, found.n_empty) == (37, 1)
    settings = build_settings(REPO / "params.yaml", str(out))
    task = load_task(settings)
    assert task.name == "blood_cells" and task.data == str(data.resolve())
    assert set(task.classes) == {"WBC", "RBC", "Platelet", "red-blood_cell"}
    for c in found.labels:
        assert task.normalize(c.typed) is not None, c.typed
    assert task.normalize("rbc") == "RBC" and doc["ingest_data"]["patient_pattern"] is not None
    assert settings["mlflow"]["registered_model"] == "blood_cells_classifier"
    text = out.read_text()
    assert "'RBC': 24 / 24" in text and "'rbc': 12 / 12" in text and "# Labels exactly as typed" in text


def test_one_label_proposes_a_detector_and_class_folders_a_whole_image_task(tmp_path: Path) -> None:
    data = _labelimg_folder(tmp_path / "rbc", {f"img{i}": [("RBC", 20), ("RBC", 25)] for i in range(6)})
    _, doc = new_task(str(data), tmp_path / "rbc.yaml", load_params(REPO / "params.yaml"))
    assert doc["task"]["models"] == ["detector"] and doc["task"]["classes"] == ["RBC"]
    folders = tmp_path / "xray"
    for label in ("NORMAL", "Pneumonia"):
        (folders / "train" / label).mkdir(parents=True)
        for i in range(3):
            Image.new("L", (32, 32), i * 40).save(folders / "train" / label / f"{label}{i}.jpeg")
    _, doc = new_task(str(folders), tmp_path / "xray.yaml", load_params(REPO / "params.yaml"))
    assert doc["task"]["sample"] == "whole_image" and doc["ingest_data"]["layout"] == "folder_per_class"
    assert sorted(doc["task"]["classes"]) == ["NORMAL", "Pneumonia"]


def test_cli_writes_once_and_refuses_to_overwrite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _labelimg_folder(tmp_path / "d", {f"x{i}": [("A", 20), ("b", 30)] for i in range(4)})
    monkeypatch.chdir(REPO)
    out = tmp_path / "d.yaml"
    runner = CliRunner()
    done = runner.invoke(app, ["task", "new", "--from", str(data), "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert "next: lesionops pipeline run --task" in done.output
    again = runner.invoke(app, ["task", "new", "--from", str(data), "--out", str(out)])
    assert again.exit_code == 2 and "--force" in " ".join(again.output.split())
    bad = runner.invoke(app, ["task", "new", "--from", str(data), "--out", str(tmp_path / "d.txt")])
    assert bad.exit_code == 2 and ".yaml" in bad.output
    empty = tmp_path / "empty"
    empty.mkdir()
    Image.new("RGB", (8, 8)).save(empty / "a.png")
    none = runner.invoke(app, ["task", "new", "--from", str(empty), "--out", str(tmp_path / "e.yaml")])
    assert none.exit_code == 2 and "no labels found" in " ".join(none.output.split())


@pytest.mark.parametrize(
    ("name", "classes"),
    [
        ("ldc_cells", ["Living Cell", "Dead Cell"]),
        ("playing_cards", ["ace", "king", "nine", "jack", "queen", "ten"]),
        ("microcontrollers", ["ESP8266", "Heltec_ESP32_Lora", "Arduino_Nano", "Raspberry_Pi_3"]),
    ],
)
def test_real_datasets_give_their_labels_as_typed(name: str, classes: list[str], tmp_path: Path) -> None:
    folder = real_dataset(name)
    found, doc = new_task(str(folder), tmp_path / f"{name}.yaml", load_params(REPO / "params.yaml"))
    assert doc["task"]["classes"] == classes and doc["task"]["aliases"] == {}
    assert doc["ingest_data"]["patient_pattern"] is None  # none of these names carries a patient id
    assert yaml.safe_load((tmp_path / f"{name}.yaml").read_text())["task"]["classes"] == classes
    assert (
        sum(c.boxes for c in found.labels) == {"ldc_cells": 3985, "playing_cards": 670, "microcontrollers": 177}[name]
    )
