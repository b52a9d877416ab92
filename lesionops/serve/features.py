"""Drift features off the request path: a worker thread measures them after the answer has gone.

A prediction row is committed (durably, before the answer) with its features pending
(`features_pending`); this worker measures them from the stored image with `read_features`, the very
function the drift reference is built with and that requests used to call inline, and stores them
with a conditional UPDATE. Nothing is lost on the way:

- the queue is bounded (`serve.feature_queue`); a row that does not fit stays pending in the store
  and is picked up by a scan once the queue has drained;
- at start, and after `serve.feature_rescan_s` without work, the worker scans the store for pending
  rows: what a killed server left (this one, or another one on the same PostgreSQL) gets finished;
- two servers filling one row: only a row still pending is written, and both measure the same values.

An image that can no longer be read (deleted by retention before its features were measured) gets
empty features, as a value that cannot be measured does: the drift tests see NaN. The thread runs
at a lower OS priority (`serve.feature_nice`): requests come first when they keep the CPU busy.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import queue
import threading
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from components.common.errors import DataError
from components.common.image_stats import read_features
from components.common.store import Store

log = logging.getLogger("lesionops.serve")
SCAN_ROWS = 256  # pending rows read from the store at a time
FILL_ROWS = 32  # rows measured, then stored in one commit (one fsync instead of one a row)


def drift_features(path: Path, max_side: int) -> dict[str, float]:
    """Features of the full stored image, by the function the drift reference was built with (same
    reduced JPEG decode, same downscale), so the two are comparable. A value that could not be
    measured (no skin tone on a grey film) is left out: JSON has no NaN."""
    return {k: v for k, v in read_features(path, max_side).items() if math.isfinite(v)}


class FeatureWorker:
    """Fills the drift features of pending prediction rows, in a daemon thread of the server."""

    def __init__(
        self, store: Store, image_dir: Path, max_side: int, queue_size: int, rescan_s: float, nice: int = 0
    ) -> None:
        self.store, self.image_dir, self.max_side = store, image_dir, max_side
        self.rescan_s, self.nice = rescan_s, nice
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue(queue_size)
        self._stop = threading.Event()
        self._scan = threading.Event()  # set: the store may hold pending rows the queue does not
        self._scan.set()  # at start: whatever a previous run (or another server) left
        self._thread = threading.Thread(target=self._run, name="lesionops-features", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop after the row in hand; rows still queued stay pending in the store for the next start."""
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        self._thread.join(timeout_s)

    def submit(self, prediction_id: str, image_path: str) -> None:
        """Queue a committed row; never blocks a request (a full queue leaves the row to a scan)."""
        try:
            self._queue.put_nowait((prediction_id, image_path))
        except queue.Full:
            self._scan.set()

    def _run(self) -> None:
        _lower_priority(self.nice)
        while not self._stop.is_set():
            if self._scan.is_set() and self._queue.empty():
                self._scan.clear()
                self._finish_pending()
                continue
            try:
                job = self._queue.get(timeout=self.rescan_s)
            except queue.Empty:
                self._scan.set()  # idle: look for rows another (killed) server left
                continue
            jobs = [j for j in (job, *self._queued(FILL_ROWS - 1)) if j is not None]
            if jobs:
                self._fill(jobs)

    def _queued(self, n: int) -> list[tuple[str, str] | None]:
        """Up to `n` more rows already waiting (none is waited for)."""
        out: list[tuple[str, str] | None] = []
        with contextlib.suppress(queue.Empty):
            while len(out) < n:
                out.append(self._queue.get_nowait())
        return out

    def _finish_pending(self) -> None:
        """Fill every row the store says is pending, oldest first."""
        while not self._stop.is_set():
            try:
                rows = self.store.pending_features(SCAN_ROWS)
            except SQLAlchemyError:
                log.exception("serve: cannot read the rows whose drift features are pending; retrying later")
                self._stop.wait(self.rescan_s)
                return
            for start in range(0, len(rows), FILL_ROWS):
                if self._stop.is_set() or not self._fill(rows[start : start + FILL_ROWS]):
                    return
            if len(rows) < SCAN_ROWS:
                return

    def _fill(self, jobs: list[tuple[str, str]]) -> bool:
        """Measure rows and store them in one commit; False when the store failed (they stay pending)."""
        measured = {prediction_id: self._measure(prediction_id, image_path) for prediction_id, image_path in jobs}
        try:
            self.store.fill_features(measured)
        except SQLAlchemyError:
            log.exception("serve: cannot store the drift features of %d predictions; retrying later", len(jobs))
            self._scan.set()
            self._stop.wait(self.rescan_s)
            return False
        return True

    def _measure(self, prediction_id: str, image_path: str) -> dict[str, float]:
        try:
            return drift_features(self.image_dir / image_path, self.max_side)
        except DataError as exc:  # the image is gone or unreadable: nothing to measure
            log.warning("serve: no drift features for prediction %s (%s)", prediction_id, exc.problem)
            return {}


def _lower_priority(nice: int) -> None:
    """Raise this thread's nice value (Linux keeps one per thread); elsewhere leave it."""
    if nice <= 0:
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        log.info("serve: the feature worker runs at normal priority (no per-thread nice here)")
