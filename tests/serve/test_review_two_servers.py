"""Two servers sharing one store and one `serve.feedback_dir`, reviewers accepting on both at once:
every accepted photo keeps its labelImg pair and its row of `feedback_dir/metadata.csv`.

Each app has its own process-wide state (as two `lesionops serve` processes do): the export's
read-modify-write of metadata.csv must be serialised across servers, not only across the threads of
one. Both apps are real (uvicorn on loopback) and share a real PostgreSQL store (pgserver; its row
locks, unlike SQLite's one writer, let two reviews' exports run at the same time) and the folder.
"""

from __future__ import annotations

import csv
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.serve.fixtures import TOKEN, build_serving, image_bytes, serve_in_thread

REPORTS = 24
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def test_reviews_accepted_on_two_servers_at_once_all_reach_the_feedback_dataset(
    tmp_path: Path, postgres_url: str
) -> None:
    serving = build_serving(tmp_path, detector=False, upload_rate=None, store_url=postgres_url)
    with serve_in_thread(serving.app()) as url_a, serve_in_thread(serving.app()) as url_b:
        urls = [url_a, url_b]
        with httpx.Client(base_url=url_a, timeout=60, headers=HEADERS) as client:
            fids = []
            for i in range(REPORTS):  # a photo of its own each: one metadata row per report
                r = client.post(
                    "/feedback",
                    data={"suggested_label": "psoriasis"},
                    files={"file": ("p.png", image_bytes(48, 40, "PNG", seed=i), "image/png")},
                )
                assert r.status_code == 201, r.text
                fids.append(r.json()["feedback_id"])

        def accept(i: int) -> int:
            with httpx.Client(base_url=urls[i % 2], timeout=60, headers=HEADERS) as c:
                body = {"action": "accept", "true_label": "psoriasis"}
                return c.post(f"/review/items/{fids[i]}", json=body).status_code

        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(accept, range(REPORTS))) == [200] * REPORTS
    root = Path(serving.cfg.feedback_dir)
    with (root / "metadata.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(list((root / "Annotations").glob("*.xml"))) == REPORTS
    assert len(list((root / "images").iterdir())) == REPORTS
    assert sorted(fid for r in rows for fid in r["feedback_ids"].split(";")) == sorted(fids), len(rows)
