"""The serving API over real HTTP (uvicorn on loopback) against a real MLflow registry and SQLite store.

Happy paths for every endpoint, then every kind of bad input: each must be a 4xx with a reason in
`{"detail": "..."}`, never a 500. A last test reads /metrics to prove no request of the module
ended in a 500.
"""

from __future__ import annotations

import base64
import io
import struct
import zlib
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from components.common.store import Store
from lesionops.serve.app import STATIC_DIR
from tests.serve.fixtures import (
    CLASSES,
    CLINICIAN,
    REVIEWER,
    ServeSetup,
    build_serving,
    filled,
    image_bytes,
    serve_in_thread,
)

JPEG = image_bytes()


def _file(data: bytes = JPEG, name: str = "photo.jpg", ctype: str = "image/jpeg") -> dict[str, tuple[str, bytes, str]]:
    return {"file": (name, data, ctype)}


def _classify(client: httpx.Client, **data: str) -> dict:
    r = client.post("/classify", files=_file(), data=data)
    assert r.status_code == 200, r.text
    return r.json()


# ---- happy paths ---------------------------------------------------------------------------------
def test_health_reports_both_champions(client: httpx.Client) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["classifier"] == {"name": "tiny_classifier", "version": "1"}
    assert body["detector"] == {"name": "tiny_detector", "version": "1"}
    assert body["classes"] and all(isinstance(c, str) for c in body["classes"])  # what a report may suggest


def test_classify_whole_image(client: httpx.Client, serving: ServeSetup) -> None:
    body = _classify(client)
    assert body["kind"] == "classify" and body["box"] is None
    assert body["model"] == {"name": "tiny_classifier", "version": "1"}
    assert body["image"] == {"width": 160, "height": 120}
    confidences = [t["confidence"] for t in body["top"]]
    assert [t["label"] for t in body["top"]] != [] and {t["label"] for t in body["top"]} == set(CLASSES)
    assert confidences == sorted(confidences, reverse=True) and sum(confidences) == pytest.approx(1.0, abs=1e-5)
    row = filled(Store(serving.cfg.store_url), body["prediction_id"])
    assert row["predicted_class"] == body["top"][0]["label"]
    assert row["model_version"] == "1" and len(row["embedding"]) == 192  # small_cnn's penultimate width
    assert set(row["features"]) >= {"brightness", "sharpness", "width"} and row["features"]["width"] == 160
    assert 10 < row["features"]["ita"] < 55  # the photo's skin-like field (about 180, 140, 120 RGB): a tone
    assert (serving.root / "serving" / "images" / row["image_path"]).read_bytes() == JPEG  # no metadata to strip
    assert row["input_sha256"] == row["image_path"].split("/")[1].split(".")[0]
    assert row["user_id"] == REVIEWER.split(".")[0] and row["orientation"] == 1


def test_classify_box_and_top_k(client: httpx.Client) -> None:
    body = _classify(client, box="10,12,70,60", top_k="1")
    assert body["box"] == [10.0, 12.0, 70.0, 60.0] and len(body["top"]) == 1


def test_detect_with_annotated_png(client: httpx.Client) -> None:
    r = client.post("/detect", files=_file(), data={"annotated": "true"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kind"] == "detect" and body["model"] == {"name": "tiny_detector", "version": "1"}
    for det in body["detections"]:
        x1, y1, x2, y2 = det["box"]
        assert det["label"] in CLASSES and 0 <= x1 <= x2 <= 160 and 0 <= y1 <= y2 <= 120
    scores = [d["score"] for d in body["detections"]]
    assert scores == sorted(scores, reverse=True)
    prefix = "data:image/png;base64,"
    assert body["annotated_png"].startswith(prefix)
    with Image.open(io.BytesIO(base64.b64decode(body["annotated_png"][len(prefix) :]))) as png:
        assert png.format == "PNG" and png.size == (160, 120)
    plain = client.post("/detect", files=_file()).json()
    assert "annotated_png" not in plain


def test_feedback_on_prediction_and_on_image(client: httpx.Client, auth: dict[str, str], serving: ServeSetup) -> None:
    pid = _classify(client, box="10,12,70,60")["prediction_id"]
    r = client.post(
        "/feedback",
        data={"prediction_id": pid, "suggested_label": "Lichen  Planus", "note": "biopsy says LP"},
        headers=auth,
    )
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "pending"
    row = Store(serving.cfg.store_url).get_feedback(r.json()["feedback_id"])
    assert row is not None and row["suggested_label"] == "lichen_planus"  # task aliases applied
    assert row["reporter_id"] == REVIEWER.split(".")[0]
    assert row["box"] == [10.0, 12.0, 70.0, 60.0] and row["prediction_id"] == pid and row["model_label"] in CLASSES
    r = client.post("/feedback", files=_file(image_bytes(seed=5)), data={"suggested_label": "other"}, headers=auth)
    assert r.status_code == 201, r.text
    row = Store(serving.cfg.store_url).get_feedback(r.json()["feedback_id"])
    assert row is not None and row["prediction_id"] is None and row["model_label"] is None


def test_feedback_on_a_detection_keeps_the_detected_label(
    client: httpx.Client, auth: dict[str, str], serving: ServeSetup
) -> None:
    body = client.post("/detect", files=_file()).json()
    assert body["detections"], "the fixture detector (threshold 0) should find boxes"
    first = body["detections"][0]
    r = client.post(
        "/feedback",
        data={
            "prediction_id": body["prediction_id"],
            "suggested_label": "psoriasis",
            "box": ",".join(str(v) for v in first["box"]),
        },
        headers=auth,
    )
    assert r.status_code == 201, r.text
    row = Store(serving.cfg.store_url).get_feedback(r.json()["feedback_id"])
    assert row is not None and row["model_label"] == first["label"] and row["box"] == first["box"]


def test_metrics_docs_and_qr(client: httpx.Client) -> None:
    _classify(client)
    text = client.get("/metrics").text
    assert 'lesionops_requests_total{method="POST",route="/classify",status="200"}' in text
    assert 'lesionops_model_info{kind="classifier",name="tiny_classifier",version="1"} 1.0' in text
    assert "lesionops_request_seconds_bucket" in text and 'lesionops_predictions_total{kind="classify"' in text
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/classify", "/detect", "/feedback", "/health", "/review/queue"} <= set(paths)
    qr = client.get("/qr.svg")
    assert qr.headers["content-type"] == "image/svg+xml" and f"<title>{client.base_url}/</title>" in qr.text


@pytest.mark.parametrize(("path", "page"), [("/", "index.html"), ("/review", "review.html")])
def test_pages(client: httpx.Client, path: str, page: str) -> None:
    r = client.get(path)
    if (STATIC_DIR / page).is_file():
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    else:
        assert r.status_code == 404 and page in r.json()["detail"]


# ---- bad input -----------------------------------------------------------------------------------
def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares `width`×`height` pixels but carries almost no data (a bomb's header)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _encoded(size: tuple[int, int], fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("L", size).save(buf, format=fmt)  # 25 Mpx of zeros compress to a few KB as PNG
    return buf.getvalue()


BAD_UPLOADS = {
    "text part": (_file(b"hello", "a.txt", "text/plain"), {}, 415, "content type"),
    "not an image": (_file(b"%PDF-1.4 definitely not pixels"), {}, 415, "not an image"),
    "empty file": (_file(b""), {}, 400, "empty"),
    "truncated jpeg": (_file(JPEG[: len(JPEG) // 2]), {}, 400, "cannot be decoded"),
    "gif": (_file(_encoded((8, 8), "GIF"), "a.gif", "image/gif"), {}, 415, "unsupported"),
    "bomb header": (_file(_png_header(30000, 30000), "b.png", "image/png"), {}, 400, "decompression bomb"),
    "over pixel limit": (_file(_encoded((5000, 5000), "PNG"), "z.png", "image/png"), {}, 400, "max_image_pixels"),
    "box 3 numbers": (_file(), {"box": "1,2,3"}, 400, "four"),
    "box words": (_file(), {"box": "a,b,c,d"}, 400, "four numbers"),
    "box reversed": (_file(), {"box": "50,50,10,10"}, 400, "x1 < x2"),
    "box outside": (_file(), {"box": "0,0,500,500"}, 400, "x1 < x2"),
    "box nan": (_file(), {"box": "nan,0,10,10"}, 400, "finite"),
    "box too thin": (_file(), {"box": "10,10,12,60"}, 400, "thinner"),
    "top_k zero": (_file(), {"top_k": "0"}, 400, "top_k"),
    "top_k huge": (_file(), {"top_k": "99"}, 400, "top_k"),
    "top_k word": (_file(), {"top_k": "many"}, 422, "top_k"),
    "no file": ({}, {"box": "1,2,30,40"}, 422, "missing field 'file'"),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS), ids=list(BAD_UPLOADS))
def test_classify_bad_input(client: httpx.Client, case: str) -> None:
    files, data, status, reason = BAD_UPLOADS[case]
    r = client.post("/classify", files=files or None, data=data)
    assert r.status_code == status, r.text
    assert reason in r.json()["detail"]


@pytest.mark.parametrize("endpoint", ["/classify", "/detect"])
def test_non_form_bodies_are_415(client: httpx.Client, endpoint: str) -> None:
    assert client.post(endpoint, json={"file": "x"}).status_code == 415
    r = client.post(endpoint, content=JPEG, headers={"content-type": "image/jpeg"})
    assert r.status_code == 415 and "multipart/form-data" in r.json()["detail"]


def test_detect_rejects_undecodable_image(client: httpx.Client) -> None:
    r = client.post("/detect", files=_file(JPEG[:300]))
    assert r.status_code == 400 and "cannot be decoded" in r.json()["detail"]


def test_oversize_body_declared(client: httpx.Client, serving: ServeSetup) -> None:
    big = b"\xff" * (serving.cfg.max_upload_bytes + 1)
    r = client.post("/classify", files=_file(big))
    assert r.status_code == 413 and "max_upload_bytes" in r.json()["detail"]


def test_oversize_body_chunked(client: httpx.Client, serving: ServeSetup) -> None:
    """No Content-Length (chunked): counted while streaming, refused when it crosses the limit."""
    boundary = "lesionopsboundary"

    def body() -> Iterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        for _ in range(serving.cfg.max_upload_bytes // 65536 + 2):
            yield b"\0" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    r = client.post("/classify", content=body(), headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 413 and "max_upload_bytes" in r.json()["detail"]


def test_malformed_multipart(client: httpx.Client) -> None:
    r = client.post("/classify", content=b"garbage", headers={"content-type": "multipart/form-data; boundary=zz"})
    assert 400 <= r.status_code < 500 and isinstance(r.json()["detail"], str)


BAD_FEEDBACK = {
    "no token": (None, {"prediction_id": "x", "suggested_label": "psoriasis"}, 401, "sign in"),
    "wrong token": ("nope", {"prediction_id": "x", "suggested_label": "psoriasis"}, 401, "refused"),
    "wrong secret": (REVIEWER[:-3] + "xyz", {"prediction_id": "x", "suggested_label": "psoriasis"}, 401, "refused"),
    "unknown prediction": ("ok", {"prediction_id": "f" * 32, "suggested_label": "psoriasis"}, 404, "unknown"),
    "unknown label": ("ok", {"prediction_id": "PID", "suggested_label": "measles"}, 400, "not one of"),
    "no label": ("ok", {"prediction_id": "PID"}, 422, "suggested_label"),
    "no subject": ("ok", {"suggested_label": "psoriasis"}, 422, "exactly one"),
    "bad box": ("ok", {"prediction_id": "PID", "suggested_label": "psoriasis", "box": "0,0,999,9"}, 400, "box"),
}


@pytest.mark.parametrize("case", list(BAD_FEEDBACK), ids=list(BAD_FEEDBACK))
def test_feedback_bad_input(client: httpx.Client, anon: httpx.Client, auth: dict[str, str], case: str) -> None:
    token, data, status, reason = BAD_FEEDBACK[case]
    if data.get("prediction_id") == "PID":
        data = {**data, "prediction_id": _classify(client)["prediction_id"]}
    headers = {} if token is None else auth if token == "ok" else {"Authorization": f"Bearer {token}"}
    r = anon.post("/feedback", data=data, headers=headers)
    assert r.status_code == status, r.text
    assert reason in r.json()["detail"]


def test_feedback_with_both_prediction_and_file(client: httpx.Client, auth: dict[str, str]) -> None:
    pid = _classify(client)["prediction_id"]
    r = client.post(
        "/feedback", data={"prediction_id": pid, "suggested_label": "psoriasis"}, files=_file(), headers=auth
    )
    assert r.status_code == 422 and "exactly one" in r.json()["detail"]


def test_no_champion_yet(tmp_path_factory: pytest.TempPathFactory) -> None:
    empty = build_serving(tmp_path_factory.mktemp("empty"), classifier=False, detector=False)
    with serve_in_thread(empty.app()) as url:
        health = httpx.get(url + "/health").json()
        assert health["classifier"] is None and health["detector"] is None
        for path in ("/classify", "/detect"):
            r = httpx.post(url + path, files=_file(), headers={"Authorization": f"Bearer {CLINICIAN}"})
            assert r.status_code == 503 and "no " in r.json()["detail"] and "champion" in r.json()["detail"]


def test_no_request_ended_in_500(client: httpx.Client) -> None:
    assert 'status="500"' not in client.get("/metrics").text
