"""Expert review over HTTP: queue, image, accept/reject, and the VOC export going through the real
ingest_data and validate_annotations stages like any other labelImg data."""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest

from components.common.store import Store
from components.common.task import TaskConfig
from components.common.voc import read_voc
from components.ingest_data.config import IngestConfig
from components.ingest_data.core import run as ingest
from components.validate_annotations.config import ValidateConfig
from components.validate_annotations.core import run as validate
from lesionops.synth.skin import SynthConfig, generate_skin_dataset
from tests.serve.fixtures import CLASSES, REVIEWER, ServeSetup


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[bytes, list[float], str]]:
    """Synthetic labelImg photos: (jpeg bytes, first box as x1,y1,x2,y2 0-based, its label)."""
    out = tmp_path_factory.mktemp("photos")
    generate_skin_dataset(
        SynthConfig(
            out_dir=out,
            n_images=6,
            seed=11,
            image_width=160,
            image_height=120,
            classes=CLASSES,
            class_priors=(0.5, 0.5),
        ),
        progress=False,
    )
    found = []
    for xml in sorted(out.rglob("*.xml")):
        ann = read_voc(xml)
        if ann.boxes:
            b = ann.boxes[0]
            found.append(((xml.parent / ann.filename).read_bytes(), [b.xmin - 1, b.ymin - 1, b.xmax, b.ymax], b.name))
    assert len(found) >= 4
    return found


def _report(
    client: httpx.Client, auth: dict[str, str], photo: bytes, box: list[float] | None, label: str = "psoriasis"
) -> str:
    data = {"box": ",".join(str(v) for v in box)} if box else {}
    pid = client.post("/classify", files={"file": ("p.jpg", photo, "image/jpeg")}, data=data).json()["prediction_id"]
    r = client.post("/feedback", data={"prediction_id": pid, "suggested_label": label, "note": "wrong?"}, headers=auth)
    assert r.status_code == 201, r.text
    return str(r.json()["feedback_id"])


def _review(client: httpx.Client, auth: dict[str, str], fid: str, **body: object) -> httpx.Response:
    # "reviewer" in the body is ignored: the signed-in user is the reviewer
    return client.post(f"/review/items/{fid}", json={"reviewer": "someone else", **body}, headers=auth)


def test_accepted_reports_flow_through_ingest_and_validation(
    client: httpx.Client, auth: dict[str, str], serving: ServeSetup, photos: list, tmp_path: Path
) -> None:
    (a, box_a, label_a), (b, box_b, label_b), (c, box_c, _) = photos[:3]
    fa, fb, fc = (_report(client, auth, p, bx) for p, bx in ((a, box_a), (b, None), (c, box_c)))
    queue = client.get("/review/queue", headers=auth).json()
    assert queue["classes"] == list(CLASSES)
    item = next(i for i in queue["items"] if i["feedback_id"] == fa)
    assert item["status"] == "pending" and item["box"] == box_a and item["note"] == "wrong?"
    assert item["prediction"]["kind"] == "classify" and len(item["prediction"]["top"]) == 2
    assert client.get(item["image_url"], headers=auth).content == a

    r = _review(client, auth, fa, action="accept", true_label=label_a)  # the report's box is the default
    assert r.status_code == 200, r.text
    assert r.json() == {"feedback_id": fa, "status": "accepted", "export": r.json()["export"]}
    r = _review(client, auth, fb, action="accept", true_label=label_b.upper(), box=box_b)  # expert draws the box
    assert r.status_code == 200, r.text
    r = _review(client, auth, fc, action="reject")
    assert r.json() == {"feedback_id": fc, "status": "rejected", "export": None}

    root = Path(serving.cfg.feedback_dir)
    xml = read_voc(root / Store(serving.cfg.store_url).get_feedback(fa)["export_path"])
    assert xml.verified and (xml.width, xml.height) == (160, 120)
    assert (root / "images" / xml.filename).read_bytes() == a
    assert [(bx.name, bx.xmin, bx.ymin, bx.xmax, bx.ymax) for bx in xml.boxes] == [
        (label_a, box_a[0] + 1, box_a[1] + 1, box_a[2], box_a[3])
    ]
    exported = sorted(p.name for p in (root / "images").iterdir())
    assert len(exported) == 2 and len(list((root / "Annotations").iterdir())) == 2  # the rejected one wrote nothing
    xml_a = root / Store(serving.cfg.store_url).get_feedback(fa)["export_path"]
    review = ET.parse(xml_a).getroot().find("object/review")
    reviewer_id = REVIEWER.split(".")[0]
    assert review is not None and review.findtext("reviewer") == reviewer_id
    assert review.findtext("reviewer_name") == "dr-test" and review.findtext("feedback_id") == fa
    with (root / "metadata.csv").open(newline="", encoding="utf-8") as fh:
        meta = {r["filename"]: r for r in csv.DictReader(fh)}
    assert set(meta) == {f"images/{n}" for n in exported}
    assert {(r["reviewer"], r["reviewer_name"], r["label_source"]) for r in meta.values()} == {
        (reviewer_id, "dr-test", "expert_review")
    }

    manifest = ingest(IngestConfig(cache_dir=str(tmp_path / "cache")), root, tmp_path / "manifest")
    assert sorted(manifest.loc[manifest.row_type == "image", "rel_path"]) == [f"images/{n}" for n in exported]
    images = manifest[manifest.row_type == "image"]
    assert set(images.patient_source) == {"metadata"} and set(images.label_source) == {"expert_review"}
    task = TaskConfig(name="tiny_skin", classes=CLASSES)
    report = validate(
        ValidateConfig(min_boxes_per_class=0, log_to_mlflow=False), task, tmp_path / "manifest", tmp_path / "validated"
    )
    assert report["n_accepted_images"] == 2 and report["n_quarantined"] == 0 and report["n_accepted_boxes"] == 2

    store = Store(serving.cfg.store_url)
    reviewed = store.reviewed_feedback().set_index("feedback_id")
    assert reviewed.loc[fa, "status"] == "accepted" and reviewed.loc[fa, "true_label"] == label_a
    assert reviewed.loc[fc, "status"] == "rejected" and bool(reviewed.loc[fc, "correct"])  # rejection confirms model
    assert bool(reviewed.loc[fa, "correct"]) == (reviewed.loc[fa, "model_label"] == label_a)


def test_two_lesions_of_one_photo_share_one_annotation(
    client: httpx.Client, auth: dict[str, str], serving: ServeSetup, photos: list
) -> None:
    photo, box, label = photos[3]
    other = [1.0, 1.0, 30.0, 30.0]
    first, second = _report(client, auth, photo, box), _report(client, auth, photo, other)
    path_1 = _review(client, auth, first, action="accept", true_label=label).json()["export"]
    path_2 = _review(client, auth, second, action="accept", true_label="lichen_planus").json()["export"]
    assert path_1 == path_2
    boxes = read_voc(Path(serving.cfg.feedback_dir) / path_1).boxes
    assert [(b.name, b.xmin, b.xmax) for b in boxes] == [(label, box[0] + 1, box[2]), ("lichen_planus", 2, 30)]


def test_review_is_final(client: httpx.Client, auth: dict[str, str], photos: list) -> None:
    fid = _report(client, auth, photos[0][0], None)
    assert _review(client, auth, fid, action="reject", true_label="psoriasis").status_code == 200
    for body in ({"action": "accept", "true_label": "psoriasis"}, {"action": "reject"}):
        r = _review(client, auth, fid, **body)
        assert r.status_code == 409 and "already rejected by dr-test" in r.json()["detail"]
    statuses = {
        i["feedback_id"]: i["status"] for i in client.get("/review/queue?status=rejected", headers=auth).json()["items"]
    }
    assert statuses[fid] == "rejected"
    assert fid not in {i["feedback_id"] for i in client.get("/review/queue", headers=auth).json()["items"]}


BAD_REVIEWS = {
    "accept without label": ({"action": "accept"}, 400, "required to accept"),
    "unknown label": ({"action": "accept", "true_label": "measles"}, 400, "not one of"),
    "other is not a class": ({"action": "accept", "true_label": "other"}, 400, "not one of"),
    "bad box": ({"action": "accept", "true_label": "psoriasis", "box": [5, 5, 2, 2]}, 400, "box"),
    "short box": ({"action": "accept", "true_label": "psoriasis", "box": [5, 5]}, 400, "four"),
    "bad action": ({"action": "maybe"}, 422, "action"),
}


@pytest.mark.parametrize("case", list(BAD_REVIEWS), ids=list(BAD_REVIEWS))
def test_bad_reviews_leave_the_report_pending(
    client: httpx.Client, auth: dict[str, str], photos: list, case: str
) -> None:
    fid = _report(client, auth, photos[1][0], None)
    body, status, reason = BAD_REVIEWS[case]
    r = _review(client, auth, fid, **body)
    assert r.status_code == status, r.text
    assert reason in r.json()["detail"]
    assert any(i["feedback_id"] == fid for i in client.get("/review/queue", headers=auth).json()["items"])


@pytest.mark.parametrize(("method", "path"), [("get", "/review/items/{id}/image"), ("post", "/review/items/{id}")])
def test_unknown_feedback_is_404(client: httpx.Client, auth: dict[str, str], method: str, path: str) -> None:
    kwargs = {"json": {"action": "reject"}} if method == "post" else {}
    r = client.request(method.upper(), path.format(id="0" * 32), headers=auth, **kwargs)
    assert r.status_code == 404 and "unknown feedback_id" in r.json()["detail"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dXNlcjpwdw=="}])
def test_review_needs_the_token(anon: httpx.Client, headers: dict[str, str]) -> None:
    for r in (
        anon.get("/review/queue", headers=headers),
        anon.post("/review/items/x", json={"action": "reject"}, headers=headers),
        anon.get("/review/items/x/image", headers=headers),
    ):
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
