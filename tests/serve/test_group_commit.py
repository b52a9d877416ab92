"""Group commit: concurrent writers share a commit, every caller returns only once its row is in,
and one refused or invalid row never takes the others in its group down."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.exc import IntegrityError

from components.common.grouping import Grouper
from components.common.store import ImageDeleted, Store
from tests.serve.fixtures import all_at_once
from tests.serve.test_store import _prediction


def test_a_group_runs_once_and_every_caller_gets_its_own_result() -> None:
    group: Grouper[int] = Grouper()
    runs = []

    def run_batch(items: list[int]) -> list[object]:
        runs.append(sorted(items))
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]

    def call(i: int) -> object:
        try:
            return group.run(i, run_batch, max_items=4, wait_s=5.0)  # waits until all 4 are queued
        except ValueError as exc:
            return str(exc)

    assert all_at_once(4, call) == [0, "odd 1", 20, "odd 3"]
    assert runs == [[0, 1, 2, 3]] and (group.groups, group.grouped) == (1, 4)


def test_concurrent_writers_are_all_committed(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'serve.db'}")
    all_at_once(16, lambda i: store.add_prediction(_prediction(i)))
    assert store.count_predictions() == 16
    assert store._commits.grouped == 16 and store._commits.groups <= 16
    reopened = Store(store.url)  # what a restarted process sees
    assert reopened.count_predictions() == 16


def test_one_bad_row_in_a_group_fails_alone(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'serve.db'}")
    store.add_prediction(_prediction(1))
    duplicate = _prediction(1)  # same prediction_id: the database refuses it
    good = _prediction(2)
    jobs = [
        lambda conn: store._insert_prediction(conn, duplicate),
        lambda conn: store._insert_prediction(conn, good),
    ]
    results = store._commit_group(jobs)
    assert isinstance(results[0], IntegrityError) and results[1] is None
    assert store.get_prediction("p002") is not None and store.count_predictions() == 2


def test_a_refusal_in_a_group_leaves_the_others_committed(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'serve.db'}")
    store.add_prediction(_prediction(1))

    def refused(conn) -> None:  # type: ignore[no-untyped-def]
        raise ImageDeleted("p001")

    results = store._commit_group([refused, lambda conn: store._insert_prediction(conn, _prediction(2))])
    assert isinstance(results[0], ImageDeleted) and results[1] is None
    assert store.count_predictions() == 2
