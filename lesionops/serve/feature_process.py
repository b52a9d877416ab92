"""The process that measures drift features, so that measuring never holds the server's GIL.

`python -m lesionops.serve.feature_process NICE IDLE` reads one JSON line per batch on stdin
(`{"paths": [...], "max_side": N}`) and answers one JSON line: `[[features, problem], ...]`. A plain
child with pipes, not a multiprocessing pool: it imports only what it measures with (never the
server's main module), and it ends when its stdin closes, that is when the server ends, even by
kill -9 (a pool's worker holds its own queue's write end and outlives a killed parent).

In the child, stdout is the protocol alone: anything a library prints goes to stderr.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

from components.common.errors import DataError
from components.common.image_stats import read_features

Measured = tuple[dict[str, float], str | None]  # (features, why there are none)


class FeatureProcessError(RuntimeError):
    """The feature process died or answered something that is not an answer."""


def drift_features(path: Path, max_side: int) -> dict[str, float]:
    """Features of the full stored image, by the function the drift reference was built with (same
    reduced JPEG decode, same downscale), so the two are comparable. A value that could not be
    measured (no skin tone on a grey film) is left out: JSON has no NaN."""
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
    """The child and its two pipes; one batch at a time (a lock), started at construction."""

    def __init__(self, nice: int, idle: bool) -> None:
        self._lock = threading.Lock()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", __name__, str(nice), "1" if idle else "0"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            self.measure([], 8)  # answered once the child has imported what it measures with
        except FeatureProcessError:
            self.close()  # reaped, not left a zombie
            raise

    @property
    def pid(self) -> int:
        return self._proc.pid

    def alive(self) -> bool:
        return self._proc.poll() is None

    def measure(self, paths: list[Path], max_side: int) -> list[Measured]:
        """The features of `paths`, in order; FeatureProcessError when the child is gone."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        job = json.dumps({"paths": [str(p) for p in paths], "max_side": max_side})
        with self._lock:
            try:
                self._proc.stdin.write(job + "\n")
                self._proc.stdin.flush()
                line = self._proc.stdout.readline()
            except (OSError, ValueError) as exc:  # BrokenPipeError: it ended before reading the job
                raise self._ended() from exc
        try:
            answer = json.loads(line)
        except json.JSONDecodeError as exc:
            raise self._ended() from exc
        return [(dict(features), problem) for features, problem in answer]

    def _ended(self) -> FeatureProcessError:
        try:
            code: int | None = self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None  # alive but not answering (a broken pipe of its own)
        return FeatureProcessError(f"the feature process {self.pid} ended (exit code {code})")

    def close(self) -> None:
        """Close its stdin (it exits) and reap it."""
        with contextlib.suppress(OSError, ValueError):
            if self._proc.stdin is not None:
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def _lower_priority(nice: int, idle: bool) -> None:
    """Requests come first for the CPU. SCHED_IDLE (Linux) runs this process only on a core nothing
    else wants; a nice value still lends it a share of a busy core."""
    if idle and hasattr(os, "sched_setscheduler"):
        with contextlib.suppress(OSError):  # pragma: no cover - refused: the nice value alone
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    if nice > 0:
        with contextlib.suppress(AttributeError, OSError):  # pragma: no cover - no nice here
            os.nice(nice)


def serve(nice: int, idle: bool, jobs: IO[str], answers: IO[str]) -> None:
    """The child's loop: one answer line per job line, until `jobs` ends."""
    _lower_priority(nice, idle)
    for line in jobs:
        job = json.loads(line)
        measured = measure_rows([Path(p) for p in job["paths"]], int(job["max_side"]))
        answers.write(json.dumps(measured) + "\n")
        answers.flush()


if __name__ == "__main__":
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print must not corrupt the protocol
    serve(int(sys.argv[1]), sys.argv[2] == "1", sys.stdin, protocol)
