"""Drift features off the request path: measured after the answer has gone, in a child process.

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
empty features, as a value that cannot be measured does: the drift tests see NaN.

The measuring itself runs in a child process (feature_process.py) at a lower OS priority
(`serve.feature_idle`: Linux's SCHED_IDLE, and `serve.feature_nice`); the thread only feeds it and
writes the results. In a thread, the ~10 ms of Python and numpy per image held the GIL that the
model's forwards need between layers, and no nice value outranks a lock: a lone client's forward
went from 6.6 to 12.9 ms while the worker ran. As a process it yields the CPU to requests; while
they keep every core busy its rows wait, pending in the store. One such process serves every app of
the server process; a dead one is replaced, and its rows are measured again.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from components.common.store import Store
from lesionops.serve.child import Children
from lesionops.serve.feature_process import FeatureProcess, FeatureProcessError

log = logging.getLogger("lesionops.serve")
SCAN_ROWS = 256  # pending rows read from the store at a time
FILL_ROWS = 32  # rows measured, then stored in one commit (one fsync instead of one a row)


_processes: Children[tuple[int, bool], FeatureProcess] = Children(lambda key: FeatureProcess(*key))  # (nice, idle)


def _feature_process(nice: int, idle: bool) -> FeatureProcess:
    """The feature process of this server process (child.Children: shared by its workers, one per
    app; replaced when dead)."""
    return _processes.get((nice, idle))


class FeatureWorker:
    """Fills the drift features of pending prediction rows, in a daemon thread of the server."""

    def __init__(
        self,
        store: Store,
        image_dir: Path,
        max_side: int,
        queue_size: int,
        rescan_s: float,
        nice: int = 0,
        idle: bool = False,
    ) -> None:
        self.store, self.image_dir, self.max_side = store, image_dir, max_side
        self.rescan_s, self.nice, self.idle = rescan_s, nice, idle
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue(queue_size)
        self._stop = threading.Event()
        self._scan = threading.Event()  # set: the store may hold pending rows the queue does not
        self._scan.set()  # at start: whatever a previous run (or another server) left
        self._thread = threading.Thread(target=self._run, name="lesionops-features", daemon=True)
        self.ready = threading.Event()  # set after the feature process started or failed to (tests wait)
        self._failures = 0  # feature-process failures in a row

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
        with contextlib.suppress(OSError, FeatureProcessError):  # else started again with the first rows
            _feature_process(self.nice, self.idle)
        self.ready.set()
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
        try:
            measured = self._measure(jobs)
        except FeatureProcessError as exc:  # the child died (killed, out of memory): a new one next time
            log.error("serve: the drift-feature process failed (%s); %d rows stay pending", exc, len(jobs))
            self._scan.set()
            # waits of 1, 2, 4 ... s (at most rescan_s): a child that cannot start is not respawned in a loop
            self._stop.wait(min(self.rescan_s, 2.0**self._failures))
            self._failures += 1
            return False
        self._failures = 0
        try:
            self.store.fill_features(measured)
        except SQLAlchemyError:
            log.exception("serve: cannot store the drift features of %d predictions; retrying later", len(jobs))
            self._scan.set()
            self._stop.wait(self.rescan_s)
            return False
        return True

    def _measure(self, jobs: list[tuple[str, str]]) -> dict[str, dict[str, float]]:
        """prediction id → features, measured in the feature process."""
        paths = [self.image_dir / image_path for _, image_path in jobs]
        results = _feature_process(self.nice, self.idle).measure(paths, self.max_side)
        measured = {}
        for (prediction_id, _), (features, problem) in zip(jobs, results, strict=True):
            if problem is not None:  # the image is gone or unreadable: nothing to measure
                log.warning("serve: no drift features for prediction %s (%s)", prediction_id, problem)
            measured[prediction_id] = features
        return measured
