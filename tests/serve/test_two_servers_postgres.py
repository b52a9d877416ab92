"""Two `lesionops serve` processes on one PostgreSQL, under concurrent load, one killed with SIGKILL:
every acknowledged prediction and report is in the database exactly once, with its image on disk,
and the survivor keeps answering (the killed server's clients fail over to it).

Both servers are the real command in processes of their own, started at the same moment on an
empty database (both create the schema), sharing the image and feedback folders. PostgreSQL is a
real server (pgserver). Every request is sent once and is unique (its own image, its own note), so
a row that appears twice, or an acknowledged one that is missing, is the server's doing.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import create_engine, text

from tests.serve.fixtures import (
    TOKEN,
    add_test_users,
    build_serving,
    free_port,
    image_bytes,
    start_server,
    wait_healthy,
)

pytestmark = pytest.mark.slow
CLIENTS_PER_SERVER = 3
KILL_AFTER_ACKS = 40  # acknowledged requests (both servers) before server A is killed
ACKS_AFTER_KILL = 40  # and on the survivor afterwards
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Load:
    """What the clients sent and what was acknowledged, by whom (appends are thread-safe)."""

    predictions: list[tuple[str, str, str]] = field(default_factory=list)  # (server, id, image sha-tag)
    reports: list[tuple[str, str, str]] = field(default_factory=list)  # (server, feedback id, note)
    sent: list[str] = field(default_factory=list)  # server of every request sent
    cut_off: list[tuple[str, str]] = field(default_factory=list)  # (server, exception) of unanswered ones
    refused: list[tuple[str, int, str]] = field(default_factory=list)  # (server, status, body): must stay empty

    @property
    def acked(self) -> int:
        return len(self.predictions) + len(self.reports)


def _one_round(client: httpx.Client, name: str, tag: str, seed: int, load: Load) -> None:
    """A classification of a new image, then a report on it (every third time on an image of its own)."""
    load.sent.append(name)
    r = client.post("/classify", files={"file": ("a.png", image_bytes(48, 40, "PNG", seed=seed), "image/png")})
    if r.status_code != 200:
        load.refused.append((name, r.status_code, r.text[:300]))
        return
    load.predictions.append((name, r.json()["prediction_id"], tag))
    report: dict[str, str] = {"suggested_label": "psoriasis", "note": tag}
    files = None
    if seed % 3 == 0:
        files = {"file": ("r.png", image_bytes(40, 48, "PNG", seed=seed + 500_000), "image/png")}
    else:
        report["prediction_id"] = r.json()["prediction_id"]
    load.sent.append(name)
    r = client.post("/feedback", data=report, files=files)
    if r.status_code != 201:
        load.refused.append((name, r.status_code, r.text[:300]))
        return
    load.reports.append((name, r.json()["feedback_id"], tag))


def _client_loop(servers: dict[str, str], home: str, worker: int, load: Load, stop: threading.Event) -> None:
    """Rounds against `home` until stopped; when it stops answering, the same on the other server."""
    name, i = home, 0
    while not stop.is_set():
        with httpx.Client(base_url=servers[name], timeout=60, headers=HEADERS) as client:
            try:
                while not stop.is_set():
                    i += 1
                    _one_round(client, name, f"w{worker}-{i}", worker * 10_000 + i, load)
            except httpx.TransportError as exc:
                load.cut_off.append((name, type(exc).__name__))
                if name != home:
                    return  # the survivor failed too: the test reports it
                name = next(n for n in servers if n != home)


def _wait_for(condition: Callable[[], object], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_two_servers_on_postgres_lose_nothing_when_one_is_killed(tmp_path: Path, postgres_url: str) -> None:
    started = time.monotonic()
    serving = build_serving(
        tmp_path, detector=False, users=False, upload_rate=None, store_url=postgres_url, torch_threads=1
    )
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(serving.params()))
    ports = {"a": free_port(), "b": free_port()}
    servers = {n: f"http://127.0.0.1:{p}" for n, p in ports.items()}
    logs = {n: tmp_path / f"server-{n}.log" for n in ports}
    procs = {n: start_server(params, ports[n], logs[n]) for n in ports}  # both at once, empty database
    load, stop = Load(), threading.Event()
    try:
        for n in ports:
            wait_healthy(servers[n], procs[n], logs[n])
        add_test_users(postgres_url)  # accounts live in the shared store: both servers see them
        with ThreadPoolExecutor(2 * CLIENTS_PER_SERVER) as pool:
            for w in range(2 * CLIENTS_PER_SERVER):
                pool.submit(_client_loop, servers, "ab"[w % 2], w, load, stop)
            _wait_for(lambda: load.acked >= KILL_AFTER_ACKS or load.refused, 120)
            os.kill(procs["a"].pid, signal.SIGKILL)  # mid-load: its clients are still sending
            procs["a"].wait(timeout=30)
            acked_at_kill = load.acked
            _wait_for(lambda: load.acked >= acked_at_kill + ACKS_AFTER_KILL or load.refused, 120)
            stop.set()
        load_s = time.monotonic() - started

        assert not load.refused, load.refused[:5]
        assert load.acked >= KILL_AFTER_ACKS + ACKS_AFTER_KILL, logs["b"].read_text()[-3000:]
        assert [n for n, _ in load.cut_off] and {n for n, _ in load.cut_off} == {"a"}, load.cut_off
        assert any(n == "a" for n, _, _ in load.predictions), "server A acknowledged nothing before the kill"
        engine = create_engine(postgres_url)
        with engine.connect() as conn:
            preds = {r.prediction_id: r for r in conn.execute(text("SELECT * FROM predictions"))}
            reports = {r.feedback_id: r for r in conn.execute(text("SELECT * FROM feedback"))}
            per_image = dict(list(conn.execute(text("SELECT input_sha256, count(*) FROM predictions GROUP BY 1"))))
            per_note = dict(list(conn.execute(text("SELECT note, count(*) FROM feedback GROUP BY note"))))
        engine.dispose()
        acked_preds = [pid for _, pid, _ in load.predictions]
        acked_reports = [fid for _, fid, _ in load.reports]
        assert len(set(acked_preds)) == len(acked_preds) and len(set(acked_reports)) == len(acked_reports)
        lost = [p for p in acked_preds if p not in preds] + [f for f in acked_reports if f not in reports]
        assert not lost, f"{len(lost)} of {load.acked} acknowledged rows lost: {lost[:5]}"
        # every request was unique and sent once: one row per image, one per note, at most
        assert max(per_image.values()) == 1 and max(per_note.values()) == 1, (per_image, per_note)
        # rows nobody acknowledged can only come from requests the kill cut off (committed, answer lost)
        assert len(preds) - len(acked_preds) + len(reports) - len(acked_reports) <= len(load.cut_off)
        assert {reports[f].note for f in acked_reports} == {tag for _, _, tag in load.reports}
        for row in [preds[p] for p in acked_preds] + [reports[f] for f in acked_reports]:
            assert (Path(serving.cfg.image_dir) / row.image_path).is_file(), row.image_path

        with httpx.Client(base_url=servers["b"], timeout=60, headers=HEADERS) as client:
            assert client.post("/classify", files={"file": ("z.jpg", image_bytes(seed=99), "image/jpeg")}).is_success
            queue = client.get("/review/queue", params={"status": "pending", "limit": 1000}).json()
        assert set(acked_reports) <= {item["feedback_id"] for item in queue["items"]}
        print(
            f"\ntwo servers on PostgreSQL: {len(load.sent)} requests sent, {load.acked} acknowledged "
            f"({len(acked_preds)} predictions, {len(acked_reports)} reports; "
            f"{sum(n == 'a' for n, _, _ in load.predictions + load.reports)} by the killed server), "
            f"{len(load.cut_off)} cut off by the kill, 0 lost, 0 duplicated; "
            f"{len(preds)} prediction and {len(reports)} report rows; {load_s:.1f} s from start to stop"
        )
    finally:
        stop.set()
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
