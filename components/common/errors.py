"""Typed errors that always name the file and the problem, so a user can fix their data."""

from __future__ import annotations

from pathlib import Path


class LesionOpsError(Exception):
    """Base class: every error a user can act on."""


class DataError(LesionOpsError):
    """A specific input file is wrong; the message says which file, what was expected and found."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ConfigError(LesionOpsError):
    """params.yaml (or a CLI flag) holds a value that cannot work."""


class GateFailed(LesionOpsError):
    """Raised by drivers that must fail loudly (dvc repro) when the evaluation gate says no."""
