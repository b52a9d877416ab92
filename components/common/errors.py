"""Typed errors that always name the file and the problem, so a user can fix their data."""

from __future__ import annotations

from pathlib import Path


class LesionOpsError(Exception):
    """Base class: every error a user can act on. Every command ends on one with one line naming
    the command and the problem, and this exit code (components.common.cli.fail)."""

    exit_code = 2
    headline = "failed"


class DataError(LesionOpsError):
    """A specific input file is wrong; the message says which file, what was expected and found.

    `code` (e.g. IMAGE_CORRUPT, XML_UNSAFE) lets ingestion record *which* kind of problem it was, so
    validation can report a precise finding without parsing the human-readable message.
    """

    def __init__(self, path: Path | str, problem: str, code: str | None = None) -> None:
        self.path = str(path)
        self.problem = problem
        self.code = code
        super().__init__(f"{self.path}: {problem}")


class ConfigError(LesionOpsError):
    """params.yaml (or a CLI flag) holds a value that cannot work."""


class GateFailed(LesionOpsError):
    """Raised by drivers that must fail loudly (dvc repro) when the evaluation gate says no."""

    exit_code = 3
    headline = "gate failed"


class Refused(LesionOpsError):
    """A safe refusal, not a fault: e.g. a promotion whose evaluation is stale. Exit code 4 tells
    a scheduler to re-evaluate rather than retry."""

    exit_code = 4
    headline = "refused"
