"""Leader/follower grouping: concurrent callers share one expensive step, each gets its own result.

Two places pay a fixed cost per call that a group pays once: a model forward (one pass over the
weights for a batch of patches) and a durable commit (one fsync for many rows). Callers queue their
item; whichever finds the group idle becomes the leader, takes up to `max_items` queued items (first
come, first served), runs them with one call of `run_batch` and hands every caller its own result.
Items that arrive while a group runs form the next group by themselves: with `wait_s = 0` a lone
caller never waits, and under load groups grow with the queue. `wait_s > 0` lets a leader wait that
long for company before it runs.

No thread of our own: the callers take turns as leader, so nothing is left to shut down, and an
exception reaches exactly the callers whose items it concerns.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")
# items → one result per item, in order; an exception *instance* in the list is raised to that caller
RunBatch = Callable[[list[T]], Sequence[Any]]


@dataclass
class _Slot(Generic[T]):
    item: T
    done: bool = False
    result: Any = None
    error: BaseException | None = None


@dataclass
class Grouper(Generic[T]):
    """One per shared resource. `groups` counts the runs and `grouped` the items they carried."""

    _cond: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _queue: list[_Slot[T]] = field(default_factory=list, repr=False)
    _busy: bool = False
    groups: int = 0
    grouped: int = 0

    def run(self, item: T, run_batch: RunBatch[T], max_items: int, wait_s: float = 0.0) -> Any:
        """`item`'s result, computed in one `run_batch` call with whatever else is queued."""
        slot = _Slot(item)
        with self._cond:
            self._queue.append(slot)
            self._cond.notify_all()
        while True:
            group = self._lead_or_wait(slot, max_items, wait_s)
            if group is None:  # another leader ran it
                break
            self._run(group, run_batch)
            if slot.done:
                break
        if slot.error is not None:
            raise slot.error
        return slot.result

    def _lead_or_wait(self, slot: _Slot[T], max_items: int, wait_s: float) -> list[_Slot[T]] | None:
        """The group this thread must run as leader, or None once `slot` was answered by another."""
        with self._cond:
            while self._busy and not slot.done:
                self._cond.wait()
            if slot.done:
                return None
            self._busy = True
            deadline = time.monotonic() + wait_s
            while len(self._queue) < max_items and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            group = self._queue[:max_items]
            del self._queue[:max_items]
            return group

    def _run(self, group: list[_Slot[T]], run_batch: RunBatch[T]) -> None:
        try:
            results = run_batch([s.item for s in group])
            if len(results) != len(group):
                raise RuntimeError(f"run_batch returned {len(results)} results for {len(group)} items")
            for slot, result in zip(group, results, strict=True):
                if isinstance(result, BaseException):
                    slot.error = result
                else:
                    slot.result = result
        except BaseException as exc:  # every caller in the group gets the error, none hangs
            for slot in group:
                slot.error = exc
        with self._cond:
            for slot in group:
                slot.done = True
            self.groups += 1
            self.grouped += len(group)
            self._busy = False
            self._cond.notify_all()
