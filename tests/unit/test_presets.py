"""Task presets: every seed system loads over params.yaml, merges predictably and refuses mistakes."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.common.errors import ConfigError
from components.common.params import load_params, section
from components.common.settings import (
    apply_overrides,
    build_settings,
    deep_merge,
    list_presets,
    load_preset,
)
from components.common.task import load_task
from lesionops.presets import GENERATORS, SynthSettings, synth_settings
from tests.conftest import REPO

PRESETS = ("acupoint", "chest_xray", "ct_pneumonia", "es_skin", "monkeypox")
WHOLE_IMAGE = ("chest_xray", "ct_pneumonia", "monkeypox")


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    return load_params(REPO / "params.yaml")


def _section_configs(stage: str) -> list[type]:
    """The dataclass(es) documented as `<stage>`'s params section (a stage's config.py holds them)."""
    found = []
    for name in ("config", "core"):
        if importlib.util.find_spec(f"components.{stage}.{name}") is None:
            continue
        module = importlib.import_module(f"components.{stage}.{name}")
        found += [
            obj
            for obj in vars(module).values()
            if dataclasses.is_dataclass(obj)
            and isinstance(obj, type)
            and obj.__module__ == module.__name__
            and f"`{stage}` section" in (obj.__doc__ or "")
        ]
    return found


def _write(folder: Path, name: str, doc: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    return folder


def test_every_seed_system_is_a_preset() -> None:
    assert tuple(list_presets()) == PRESETS


@pytest.mark.parametrize("name", PRESETS)
def test_preset_builds_every_stage_config(name: str, base: dict[str, Any]) -> None:
    from components.crop_patches.config import CropConfig
    from components.evaluate_model.core import EvaluateConfig
    from components.ingest_data.config import IngestConfig
    from components.train_model.config import TrainConfig
    from components.validate_annotations.config import ValidateConfig

    doc = load_preset(name, base)
    for key, cls in [
        ("ingest_data", IngestConfig),
        ("validate_annotations", ValidateConfig),
        ("crop_patches", CropConfig),
        ("train_model", TrainConfig),
        ("evaluate_model", EvaluateConfig),
    ]:
        section(doc, key, cls)
    for stage in ("train_baseline", "train_detector", "evaluate_detector"):
        for cls in _section_configs(stage):
            section(doc, stage, cls)
    task = load_task(doc)
    assert task.name == name
    assert synth_settings(doc).generator in GENERATORS
    assert doc["mlflow"]["registered_model"].startswith(name)
    assert doc["mlflow"]["registered_detector"].startswith(name)


def test_registry_names_and_dataset_folders_never_collide(base: dict[str, Any]) -> None:
    docs = [load_preset(n, base) for n in PRESETS]
    names = [d["mlflow"][k] for d in docs for k in ("registered_model", "registered_detector")]
    assert len(set(names)) == len(names)
    outs = [synth_settings(d).out for d in docs]
    assert len(set(outs)) == len(outs)
    # data/ is the DVC-tracked skin set that ingest reads recursively: no other task may live in it
    assert [o for o in outs if o == "data" or o.startswith("data/")] == ["data"]


def test_es_skin_is_params_yaml_plus_the_detector(base: dict[str, Any]) -> None:
    doc = load_preset("es_skin", base)
    assert doc["task"]["models"] == ["classifier", "detector"]
    assert synth_settings(doc) == SynthSettings(**{**base["synth"], "generator": "skin", "out": "data"})
    strip = {"task": {"models": None}, "synth": {"generator": None, "out": None}}
    assert deep_merge(doc, strip) == deep_merge(base, strip)


@pytest.mark.parametrize("name", WHOLE_IMAGE)
def test_whole_image_presets_read_class_folders_without_a_detector(name: str, base: dict[str, Any]) -> None:
    doc = load_preset(name, base)
    task = load_task(doc)
    assert (task.sample, task.models) == ("whole_image", ("classifier",))
    assert doc["ingest_data"]["layout"] == "folder_per_class"
    assert doc["crop_patches"]["detection"]["enabled"] is False
    assert set(doc["task"]["aliases"].values()) <= set(task.classes)  # replaced, not merged with skin's


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "ct_pneumonia",
            {"arch": "resnet34", "optimizer": "adagrad", "dropout": 0.3, "patience": 4, "batch_size": 64, "lr": 0.01},
        ),  # seed 003's table
        ("monkeypox", {"arch": "small_cnn"}),  # seed 004's custom CNN branch
    ],
)
def test_seed_hyper_parameters(name: str, expected: dict[str, Any], base: dict[str, Any]) -> None:
    train = load_preset(name, base)["train_model"]
    assert {k: train[k] for k in expected} == expected


def test_acupoint_is_a_detector_task_of_small_points(base: dict[str, Any]) -> None:
    doc = load_preset("acupoint", base)
    task = load_task(doc)
    assert (task.sample, task.models) == ("patches", ("detector",))
    assert task.normalize("PC8") == "laogong" and task.normalize("Shen Men") == "shenmen"
    assert doc["train_detector"]["min_size"] >= doc["synth"]["image_width"]  # points are not shrunk away


def test_merge_semantics_and_base_untouched(tmp_path: Path, base: dict[str, Any]) -> None:
    before = yaml.safe_dump(base)
    folder = _write(
        tmp_path,
        "demo",
        {
            "task": {"name": "demo", "classes": ["a", "b"], "aliases": {"aa": "a"}},
            "crop_patches": {"balance": {"target_per_class": None}, "split": {"salt": "x"}},
        },
    )
    doc = load_preset("demo", base, folder)
    assert doc["task"]["aliases"] == {"aa": "a"}  # replaced whole
    assert doc["task"]["classes"] == ["a", "b"]  # lists replaced
    assert doc["crop_patches"]["balance"]["target_per_class"] is None  # null overrides
    assert doc["crop_patches"]["balance"]["augmentations"] == base["crop_patches"]["balance"]["augmentations"]
    assert doc["crop_patches"]["split"] == {**base["crop_patches"]["split"], "salt": "x"}  # merged
    assert yaml.safe_dump(base) == before


@pytest.mark.parametrize(
    ("preset", "message"),
    [
        ({"task": {"name": "other"}}, "must be its file name"),
        ({"trian_model": {"epochs": 1}}, r"unknown section\(s\) \['trian_model'\]"),
        ({"task": {"name": "bad"}, "synth": {"generator": "mri"}}, "synth.generator"),
        ({"task": {"name": "bad"}, "synth": {"n_imgs": 3}}, "synth: unknown key"),
        ({"task": {"name": "bad", "sample": "whole_image", "models": ["detector"]}}, "task.models"),
    ],
)
def test_bad_presets_are_refused_naming_the_key(
    preset: dict[str, Any], message: str, tmp_path: Path, base: dict[str, Any]
) -> None:
    folder = _write(tmp_path, "bad", preset)
    with pytest.raises(ConfigError, match=message):
        synth_settings(load_preset("bad", base, folder))  # as `lesionops` commands check a task


def test_unknown_preset_lists_the_available_ones(base: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="available: acupoint, chest_xray, ct_pneumonia, es_skin, monkeypox"):
        load_preset("mri_brain", base)
    with pytest.raises(ConfigError, match="no preset"):
        load_preset("../params", base)  # names are file stems in tasks/, never paths


def test_overrides_set_nested_yaml_values(base: dict[str, Any]) -> None:
    doc = apply_overrides(
        base,
        [
            "train_model.epochs=2",
            "crop_patches.balance.target_per_class=null",
            "task.classes=[a, b]",
            "mlflow.experiment=x=y",
        ],
    )
    assert doc["train_model"]["epochs"] == 2 and doc["crop_patches"]["balance"]["target_per_class"] is None
    assert doc["task"]["classes"] == ["a", "b"] and doc["mlflow"]["experiment"] == "x=y"
    assert base["train_model"]["epochs"] != 2


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("epochs=2", "SECTION.KEY=VALUE"),
        ("train_model.epochs", "SECTION.KEY=VALUE"),
        ("nosuch.key=1", "unknown section 'nosuch'"),
        ("train_model.epochs.x=1", "not a mapping"),
    ],
)
def test_bad_overrides_are_refused(item: str, message: str, base: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=message):
        apply_overrides(base, [item])


def test_a_task_file_is_merged_like_a_preset_with_its_own_registry_names(tmp_path: Path, base: dict[str, Any]) -> None:
    path = tmp_path / "cells" / "cells.yaml"
    path.parent.mkdir()
    path.write_text(
        yaml.safe_dump(
            {
                "task": {"name": "cells", "classes": ["Living Cell", "Dead Cell"], "data": "../raw"},
                "train_model": {"epochs": 3},
            }
        ),
        encoding="utf-8",
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(base), encoding="utf-8")
    doc = build_settings(tmp_path / "params.yaml", str(path), ["train_model.lr=0.1"])
    task = load_task(doc)
    assert task.classes == ("Living Cell", "Dead Cell") and task.aliases == {}  # aliases replaced whole
    assert doc["train_model"]["epochs"] == 3 and doc["train_model"]["lr"] == 0.1
    assert doc["train_model"]["batch_size"] == base["train_model"]["batch_size"]  # untouched defaults kept
    assert (doc["mlflow"]["registered_model"], doc["mlflow"]["registered_detector"]) == (
        "cells_classifier",
        "cells_detector",
    )  # never the demo's champion
    assert task.data == str((tmp_path / "raw").resolve())  # relative to the task file


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"task": {"classes": ["a", "b"]}}, "must set task.name and task.classes"),
        ({"task": {"name": "x"}}, "must set task.name and task.classes"),
        ({"task": {"name": "x", "classes": ["a", "b"]}, "trian_model": {}}, "unknown section"),
        ({"task": {"name": "x", "classes": ["WBC", "wbc"]}}, "'WBC' and 'wbc' are the same class"),
    ],
)
def test_bad_task_files_are_refused_naming_the_file(
    doc: dict[str, Any], message: str, tmp_path: Path, base: dict[str, Any]
) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        build_settings(REPO / "params.yaml", str(path))
    with pytest.raises(ConfigError, match="no such task file"):
        build_settings(REPO / "params.yaml", str(tmp_path / "missing.yml"))


def test_stage_commands_take_task_and_set(tmp_path: Path) -> None:
    from components.common.cli import base_parser, params_from

    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"task": {"name": "mine", "classes": ["ESP8266", "Arduino_Nano"]}}))
    args = base_parser("x").parse_args(
        [
            "--params",
            str(REPO / "params.yaml"),
            "--task",
            str(path),
            "--set",
            "crop_patches.patch_size=48",
            "--set",
            "task.sample=patches",
        ]
    )
    doc = params_from(args)
    assert load_task(doc).normalize("arduino nano") == "Arduino_Nano" and doc["crop_patches"]["patch_size"] == 48
    preset = params_from(base_parser("x").parse_args(["--params", str(REPO / "params.yaml"), "--task", "acupoint"]))
    assert load_task(preset).name == "acupoint"
