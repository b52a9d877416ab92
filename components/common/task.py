"""The task being learned: its class taxonomy and what kind of samples feed the model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from components.common.errors import ConfigError
from components.common.params import section


@dataclass(frozen=True)
class TaskConfig:
    """The `task` section of params.yaml, shared by every stage."""

    name: str
    classes: tuple[str, ...]
    # patches: crop the labelImg boxes (seed 002); whole_image: one label per image (seeds 001/003/004)
    sample: str = "patches"
    aliases: dict[str, str] = field(default_factory=dict)
    # which models the training pipeline builds: a classifier (patches or whole images) and/or a
    # detector on the raw images (seeds 000/002)
    models: tuple[str, ...] = ("classifier",)

    def __post_init__(self) -> None:
        if len(self.classes) < 2:
            raise ConfigError(f"task.classes: need at least 2 classes, found {list(self.classes)}")
        if len(set(self.classes)) != len(self.classes):
            raise ConfigError(f"task.classes: duplicate names in {list(self.classes)}")
        if self.sample not in ("patches", "whole_image"):
            raise ConfigError(f"task.sample: expected 'patches' or 'whole_image', found {self.sample!r}")
        unknown = set(self.models) - {"classifier", "detector"}
        if unknown or not self.models:
            raise ConfigError(f"task.models: a non-empty list of 'classifier' and/or 'detector', found {list(self.models)}")
        if "detector" in self.models and self.sample != "patches":
            raise ConfigError("task.models: a detector needs boxes (task.sample: patches)")

    def normalize(self, label: str) -> str | None:
        """Map a label as typed in labelImg to the taxonomy (case, spaces, aliases); None if unknown."""
        key = "_".join(label.strip().lower().replace("-", " ").split())
        key = self.aliases.get(key, key)
        return key if key in self.classes else None


def load_task(doc: dict[str, Any]) -> TaskConfig:
    return section(doc, "task", TaskConfig)
