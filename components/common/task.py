"""The task being learned: its class taxonomy and what kind of samples feed the model.

Class names are display names, exactly as the user declared them (`WBC`, `Living Cell`): they are
what outputs, registry tags, pages and reports show. Matching a label typed in labelImg against
them compares *keys* — both sides case-folded with runs of spaces, hyphens and underscores made
one `_` — so `living-cell`, `LIVING_CELL` and `Living  Cell ` are all `Living Cell`. Aliases are
keyed the same way and may name their class by any spelling of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from components.common.errors import ConfigError
from components.common.params import section

_SEPARATORS = re.compile(r"[\s_\-]+")
MODELS = ("classifier", "detector")


def label_key(label: str) -> str:
    """The matching key of a label: case-folded, spaces/hyphens/underscores collapsed to one `_`."""
    return "_".join(part for part in _SEPARATORS.split(str(label).casefold()) if part)


def usable_label(label: str) -> bool:
    """A class name needs a letter or a digit (`?`, `-` or an empty <name> cannot be one)."""
    return any(ch.isalnum() for ch in str(label))


@dataclass(frozen=True)
class TaskConfig:
    """The `task` section of params.yaml, shared by every stage."""

    name: str
    classes: tuple[str, ...]
    # patches: crop the labelImg boxes (seed 002); whole_image: one label per image (seeds 001/003/004)
    sample: str = "patches"
    # labels as annotators typed them → a declared class (keys and targets match like labels do)
    aliases: dict[str, str] = field(default_factory=dict)
    # which models the training pipeline builds: a classifier (patches or whole images) and/or a
    # detector on the raw images (seeds 000/002)
    models: tuple[str, ...] = ("classifier",)
    # the raw dataset folder this task trains on: `pipeline run`'s default --source (null: data/, or
    # a preset's synth.out); `lesionops task new` writes the folder it scanned
    data: str | None = None

    def __post_init__(self) -> None:
        unknown = set(self.models) - set(MODELS)
        if unknown or not self.models:
            raise ConfigError(
                f"task.models: a non-empty list of 'classifier' and/or 'detector', found {list(self.models)}"
            )
        if not self.classes:
            raise ConfigError("task.classes: the list is empty; name every class as your annotators typed it")
        if "classifier" in self.models and len(self.classes) < 2:
            raise ConfigError(
                f"task.classes: a classifier needs at least 2 classes, found {list(self.classes)}; "
                "for one-class detection (boxes of one kind) set task.models: [detector]"
            )
        if self.sample not in ("patches", "whole_image"):
            raise ConfigError(f"task.sample: expected 'patches' or 'whole_image', found {self.sample!r}")
        if "detector" in self.models and self.sample != "patches":
            raise ConfigError("task.models: a detector needs boxes (task.sample: patches)")
        object.__setattr__(self, "_lookup", self._build_lookup())

    def _build_lookup(self) -> dict[str, str]:
        """key → declared class, from the classes themselves and then the aliases."""
        lookup: dict[str, str] = {}
        for name in self.classes:
            key = label_key(name)
            if not usable_label(name):
                raise ConfigError(f"task.classes: {name!r} has no letters or digits")
            if key in lookup:
                raise ConfigError(
                    f"task.classes: {lookup[key]!r} and {name!r} are the same class once case, "
                    f"spaces, hyphens and underscores are ignored (both read as {key!r}); "
                    "keep one and list the other spelling under task.aliases"
                )
            lookup[key] = name
        by_class = dict(lookup)
        for typed, target in self.aliases.items():
            cls = by_class.get(label_key(str(target)))
            if cls is None:
                raise ConfigError(
                    f"task.aliases: {typed!r} points to {target!r}, which is not one of "
                    f"task.classes {list(self.classes)}"
                )
            key = label_key(str(typed))
            if lookup.get(key, cls) != cls:
                raise ConfigError(
                    f"task.aliases: {typed!r} → {target!r}, but {typed!r} already reads as class {lookup[key]!r}"
                )
            lookup[key] = cls
        return lookup

    def normalize(self, label: str) -> str | None:
        """The declared class a label typed in labelImg means (case, spaces, aliases); None if unknown."""
        return self._lookup.get(label_key(label))  # type: ignore[attr-defined]


def load_task(doc: dict[str, Any]) -> TaskConfig:
    return section(doc, "task", TaskConfig)
