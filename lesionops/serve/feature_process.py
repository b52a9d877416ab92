"""The process that measures drift features, so that measuring never holds the server's GIL.

`python -m lesionops.serve.feature_process NICE IDLE` answers each request frame (child.py:
`(paths, max_side)`) with `[(features, problem), ...]`, one per path. It imports only what it
measures with (never the server's main module) and ends when the server does (child.py).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from pathlib import Path

from components.common.errors import DataError
from components.common.image_stats import read_features
from lesionops.serve.child import Child, ChildError, run_child

Measured = tuple[dict[str, float], str | None]  # (features, why there are none)


class FeatureProcessError(ChildError):
    """The feature process died or answered something that is not an answer."""


def drift_features(path: Path, max_side: int) -> dict[str, float]:
    """Features of the full stored image, by the function the drift reference was built with (same
    reduced JPEG decode, same downscale), so the two are comparable. A value that could not be
    measured (no skin tone on a grey film) is left out, as the JSON column stores it."""
    return {k: v for k, v in read_features(path, max_side).items() if math.isfinite(v)}


def measure_rows(paths: list[Path], max_side: int) -> list[Measured]:
    """Each stored image's features, or {} and the problem when it cannot be read (gone, corrupt)."""
    out: list[Measured] = []
    for path in paths:
        try:
            out.append((drift_features(path, max_side), None))
        except DataError as exc:
            out.append(({}, exc.problem))
    return out


class FeatureProcess:
    """The child; one batch at a time, started at construction (FeatureProcessError if it cannot)."""

    def __init__(self, nice: int, idle: bool) -> None:
        self._child = Child(__name__, [str(nice), "1" if idle else "0"], "feature process", FeatureProcessError)

    @property
    def pid(self) -> int:
        return self._child.pid

    def alive(self) -> bool:
        return self._child.alive()

    def measure(self, paths: list[Path], max_side: int) -> list[Measured]:
        """The features of `paths`, in order; FeatureProcessError when the child is gone."""
        answer = self._child.call(([str(p) for p in paths], max_side))
        return [(dict(features), problem) for features, problem in answer]

    def close(self) -> None:
        self._child.close()


def _lower_priority(nice: int, idle: bool) -> None:
    """Requests come first for the CPU. SCHED_IDLE (Linux) runs this process only on a core nothing
    else wants; a nice value still lends it a share of a busy core."""
    if idle and hasattr(os, "sched_setscheduler"):
        with contextlib.suppress(OSError):  # pragma: no cover - refused: the nice value alone
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    if nice > 0:
        with contextlib.suppress(AttributeError, OSError):  # pragma: no cover - no nice here
            os.nice(nice)


def _answer(request: tuple[list[str], int]) -> list[Measured]:
    paths, max_side = request
    return measure_rows([Path(p) for p in paths], int(max_side))


if __name__ == "__main__":
    _lower_priority(int(sys.argv[1]), sys.argv[2] == "1")
    run_child(_answer)
