"""Kill -9 the server while clients are posting feedback: every report acknowledged with a 201 must
be in the store after a restart (with its image on disk), and the database must be intact.

The server is the real `lesionops serve` command in its own process, so the kill is a real crash:
no shutdown hook, no flush, nothing but what SQLite (WAL, synchronous=FULL) had committed.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import text

from components.common.store import Store
from tests.serve.fixtures import TOKEN, build_serving, filled, free_port, image_bytes, start_server, wait_healthy

pytestmark = pytest.mark.slow
CLIENTS = 6
KILL_AFTER_ACKS = 40


def _client_loop(url: str, pid: str, worker: int, acked: list[str], failures: list[str], stop: threading.Event) -> None:
    """Post reports until the server dies; remember exactly the ones that were acknowledged."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    i = 0
    with httpx.Client(base_url=url, timeout=30) as client:
        while not stop.is_set():
            i += 1
            try:
                if i % 3 == 0:  # a report with its own image: the image file must survive too
                    r = client.post(
                        "/feedback",
                        data={"suggested_label": "psoriasis", "note": f"w{worker}-{i}"},
                        files={"file": ("x.png", image_bytes(64, 48, "PNG", seed=worker * 1000 + i), "image/png")},
                        headers=headers,
                    )
                else:
                    r = client.post(
                        "/feedback",
                        data={"prediction_id": pid, "suggested_label": "lichen_planus", "note": f"w{worker}-{i}"},
                        headers=headers,
                    )
            except httpx.TransportError as exc:
                failures.append(type(exc).__name__)
                return
            if r.status_code == 201:
                acked.append(r.json()["feedback_id"])


def test_acknowledged_feedback_survives_kill_9(tmp_path: Path) -> None:
    serving = build_serving(tmp_path, detector=False, upload_rate=None)  # the store holds the users
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(serving.params()))
    port, log = free_port(), tmp_path / "server.log"
    url = f"http://127.0.0.1:{port}"
    proc = start_server(params, port, log)
    try:
        wait_healthy(url, proc, log)
        pid = httpx.post(
            url + "/classify",
            files={"file": ("a.jpg", image_bytes(), "image/jpeg")},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=60,
        ).json()["prediction_id"]
        acked: list[str] = []
        failures: list[str] = []
        stop = threading.Event()
        with ThreadPoolExecutor(CLIENTS) as pool:
            for w in range(CLIENTS):
                pool.submit(_client_loop, url, pid, w, acked, failures, stop)
            deadline = time.monotonic() + 120
            while len(acked) < KILL_AFTER_ACKS and time.monotonic() < deadline:
                time.sleep(0.01)
            os.kill(proc.pid, signal.SIGKILL)  # mid-load: clients are still sending
            proc.wait(timeout=30)
            time.sleep(0.5)
            stop.set()
        assert len(acked) >= KILL_AFTER_ACKS, log.read_text()[-3000:]
        assert failures, "no request was cut off by the kill: the crash did not happen under load"

        proc = start_server(params, port, log)
        wait_healthy(url, proc, log)
        store = Store(serving.cfg.store_url)
        missing = [fid for fid in acked if store.get_feedback(fid) is None]
        assert not missing, f"{len(missing)} of {len(acked)} acknowledged reports lost"
        for fid in acked:
            row = store.get_feedback(fid)
            assert (Path(serving.cfg.image_dir) / row["image_path"]).is_file()
        with store.engine.connect() as conn:
            assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
        assert filled(store, pid)["features"]  # measured before the kill, or by the restarted server
        queue = httpx.get(url + "/review/queue?limit=1000", headers={"Authorization": f"Bearer {TOKEN}"}).json()
        assert set(acked) <= {i["feedback_id"] for i in queue["items"]}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
