"""The taxonomy: declared display names, labels matched as annotators type them, one-class detection."""

from __future__ import annotations

import pytest

from components.common.errors import ConfigError
from components.common.task import TaskConfig, label_key


@pytest.mark.parametrize(
    ("typed", "key"),
    [
        ("Living Cell", "living_cell"),
        ("  living-cell ", "living_cell"),
        ("LIVING__CELL", "living_cell"),
        ("WBC ", "wbc"),
        ("lichen_planus_(lp)", "lichen_planus_(lp)"),
        ("Ödem", "ödem"),
    ],
)
def test_label_key_ignores_case_spaces_hyphens_and_underscores(typed: str, key: str) -> None:
    assert label_key(typed) == key


def test_labels_map_to_the_declared_display_names() -> None:
    task = TaskConfig(
        name="cells",
        classes=("Living Cell", "Dead Cell", "WBC"),
        aliases={"live": "Living Cell", "dead-cell (old)": "dead_cell", "white blood cell": "wbc"},
    )
    assert [task.normalize(t) for t in ("Living Cell", "living_cell", "LIVING-CELL", "Living  Cell ")] == [
        "Living Cell"
    ] * 4
    assert task.normalize("wbc") == "WBC" and task.normalize("White Blood Cell") == "WBC"
    assert task.normalize("LIVE") == "Living Cell" and task.normalize("Dead Cell (old)") == "Dead Cell"
    assert task.normalize("Dead") is None and task.normalize("") is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"classes": ("WBC", "wbc ")}, "'WBC' and 'wbc ' are the same class"),
        ({"classes": ("Living Cell", "living-cell")}, "read as 'living_cell'"),
        ({"classes": ("a", "b"), "aliases": {"x": "c"}}, "'x' points to 'c', which is not one of"),
        ({"classes": ("a", "b"), "aliases": {"A": "b"}}, "already reads as class 'a'"),
        ({"classes": ("a", "--")}, "has no letters or digits"),
        ({"classes": ()}, "the list is empty"),
        ({"classes": ("cell",)}, r"a classifier needs at least 2 classes.*task.models: \[detector\]"),
        ({"classes": ("cell",), "models": ("classifier", "detector")}, "a classifier needs at least 2"),
    ],
)
def test_taxonomy_errors_name_both_spellings(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TaskConfig(name="t", **kwargs)


def test_one_class_detection_is_a_task() -> None:
    task = TaskConfig(name="rbc", classes=("RBC",), models=("detector",))
    assert task.normalize("rbc") == "RBC"
