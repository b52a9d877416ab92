"""Expert review: the queue of reports, their images, and accept/reject with a labelImg VOC export.

An accepted report becomes ordinary training data: the image (the stored bytes, which carry no
metadata, in the stored pixel frame) goes to `feedback_dir/images/<sha16><ext>` and a labelImg
Pascal VOC file to `feedback_dir/Annotations/<sha16>.xml` — the VOC devkit layout ingest_data pairs
automatically — marked `verified="yes"` as labelImg marks checked files. A photo whose upload said
it is viewed rotated (EXIF orientation, dropped on upload) is exported upright as lossless PNG with
its box turned to match, since the file no longer carries the tag that told training to turn it.
The same photo accepted twice (two lesions reported) gets one XML with both boxes.
Track `feedback_dir` with DVC like any other dataset.

Who decided is part of the data: each `<object>` carries a `<review>` element (reviewer id and
name, time, feedback id; labelImg and ingest_data ignore it), and `feedback_dir/metadata.csv` lists
per image its patient group, label source and reviewers. Only a signed-in reviewer reaches these
routes, and the reviewer recorded is that user. A rejected report writes nothing. Reviews are
final: a second decision on one report is a 409.
"""

from __future__ import annotations

import csv
import hashlib
import io
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Annotated, Any

from defusedxml import ElementTree as SafeET
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse
from filelock import FileLock
from PIL import Image

from components.common.images import EXIF_ORIENTATION
from components.common.store import STATUSES, Review, utc_now
from components.common.voc import VocAnnotation, VocBox, read_voc, to_xml
from components.crop_patches.geometry import upright
from lesionops.serve.auth import require
from lesionops.serve.privacy import TURNED, reencode, strip_metadata, upright_box
from lesionops.serve.schemas import ReviewBody, ReviewResponse
from lesionops.serve.state import ServeState, get_state
from lesionops.serve.uploads import INGESTABLE, MEDIA_TYPES, InputError, parse_box, voc_box, write_atomic
from lesionops.serve.users import User

can_review = require("review")  # one callable: run once per request
router = APIRouter(prefix="/review", tags=["review"], dependencies=[Depends(can_review)])
DATABASE = "LesionOps expert review"
EXPORT_LOCK = ".export.lock"  # in feedback_dir: held by whichever server process is exporting
GREY_MODES = {"1", "L", "I", "I;16", "I;16B", "I;16L", "F", "LA"}
PNG_MODES = {"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"}
META_FIELDS = [
    "filename",
    "patient_id",
    "body_site",
    "label_source",
    "reviewer",
    "reviewer_name",
    "reviewed_at",
    "feedback_ids",
]


def _prediction_view(pred: dict[str, Any] | None) -> dict[str, Any] | None:
    if pred is None:
        return None
    view = {
        "prediction_id": pred["prediction_id"],
        "kind": pred["kind"],
        "model": {"name": pred["model_name"], "version": pred["model_version"]},
        "box": pred["box"],
    }
    return {**view, **pred["outputs"]}  # "top" for classify, "detections" for detect


def _item(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "feedback_id": row["feedback_id"],
        "created_at": row["created_at"].isoformat(),
        "status": row["status"],
        "suggested_label": row["suggested_label"],
        "note": row["note"],
        "box": row["box"],
        "model_label": row["model_label"],
        "image_url": f"/review/items/{row['feedback_id']}/image",
        "image": {"width": row["image_width"], "height": row["image_height"]},
        "prediction": _prediction_view(row.get("prediction")),
        "reviewer": row["reviewer"],
        "reporter": row["reporter_id"],
        "true_label": row["true_label"],
        "export": row["export_path"],
    }


@router.get("/queue", summary="Reports waiting for (or closed by) an expert, oldest first")
def queue(
    request: Request,
    status: Annotated[str, Query(description="pending | accepted | rejected")] = "pending",
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    state = get_state(request)
    if status not in STATUSES:
        raise InputError(400, f"'status': expected one of {list(STATUSES)}, found {status!r}")
    items = [_item(r) for r in state.store.list_feedback(status, limit)]
    return {"items": items, "classes": list(state.task.classes)}


def _feedback(state: ServeState, feedback_id: str) -> dict[str, Any]:
    row = state.store.get_feedback(feedback_id)
    if row is None:
        raise HTTPException(404, f"unknown feedback_id {feedback_id!r}")
    return row


@router.get("/items/{feedback_id}/image", summary="The reported image, as uploaded", response_class=FileResponse)
def item_image(request: Request, feedback_id: str) -> FileResponse:
    state = get_state(request)
    row = _feedback(state, feedback_id)
    path = state.image_dir / row["image_path"]
    if not path.is_file():
        raise HTTPException(404, f"image of feedback {feedback_id} is missing from {state.image_dir}")
    return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"))


def _default_box(row: dict[str, Any], state: ServeState) -> list[float]:
    """The reporter's box, else the classified region, else the whole image."""
    if row["box"]:
        return list(row["box"])
    if row["prediction_id"]:
        prediction = state.store.get_prediction(row["prediction_id"])
        if prediction and prediction["box"]:
            return list(prediction["box"])
    return [0.0, 0.0, float(row["image_width"]), float(row["image_height"])]


def _export_image(
    src: Path, row: dict[str, Any], box: list[float]
) -> tuple[str, bytes, tuple[int, int], int, list[float]]:
    """(file name, bytes, size, depth, box) of the exported photo: no metadata, upright, ingestable.

    Stored copies carry no metadata; older ones may, so the bytes go through the same stripping."""
    stem, size = row["input_sha256"][:16], (int(row["image_width"]), int(row["image_height"]))
    with Image.open(src) as img:
        img.load()
        depth = 1 if img.mode in GREY_MODES else 3
        orientation = int(row.get("orientation") or img.getexif().get(EXIF_ORIENTATION, 1) or 1)
        if orientation in TURNED:  # lossless PNG in the frame the photo is viewed in
            turned = upright(img if img.mode in PNG_MODES else img.convert("RGB"), orientation)
            return f"{stem}.png", reencode(turned, "PNG"), turned.size, depth, upright_box(box, size, orientation)
        if src.suffix in INGESTABLE:
            return f"{stem}{src.suffix}", strip_metadata(src.read_bytes(), img), size, depth, box
        # e.g. WebP, which ingest_data does not read: lossless PNG, same pixels and frame
        return f"{stem}.png", reencode(img if img.mode in PNG_MODES else img.convert("RGB"), "PNG"), size, depth, box


def _reviews_of(xml_path: Path) -> list[ET.Element | None]:
    """The `<review>` element of each object already in our XML (None where there is none)."""
    if not xml_path.is_file():
        return []
    return [obj.find("review") for obj in SafeET.parse(xml_path).getroot().findall("object")]


def _with_reviews(ann: VocAnnotation, reviews: list[ET.Element | None]) -> bytes:
    """labelImg's XML with one `<review>` per object (an element labelImg and ingest_data skip)."""
    top = ET.fromstring(to_xml(ann))
    for obj, review in zip(top.findall("object"), reviews, strict=False):
        if review is not None:
            obj.append(review)
    ET.indent(top, space="\t")
    return (ET.tostring(top, encoding="unicode") + "\n").encode("utf-8")


def _review_element(user: User, feedback_id: str) -> ET.Element:
    review = ET.Element("review")
    for tag, value in (
        ("reviewer", user.user_id),
        ("reviewer_name", user.name),
        ("reviewed_at", utc_now().isoformat(timespec="seconds")),
        ("feedback_id", feedback_id),
    ):
        ET.SubElement(review, tag).text = value
    return review


def _joined(row: dict[str, str], key: str, value: str) -> str:
    """`value` added to a ;-separated list (each reviewer of a photo listed once, in order)."""
    return ";".join(dict.fromkeys([*filter(None, row.get(key, "").split(";")), value]))


def _update_metadata(root: Path, name: str, data: bytes, user: User, feedback_id: str) -> None:
    """One metadata.csv row per exported image (ingest_data's patient grouping), naming its reviewers."""
    path, rel = root / "metadata.csv", f"images/{name}"
    rows: dict[str, dict[str, str]] = {}
    if path.is_file():
        with path.open(newline="", encoding="utf-8") as fh:
            rows = {r["filename"]: r for r in csv.DictReader(fh)}
    old = rows.get(rel, {})
    rows[rel] = {
        "filename": rel,
        "patient_id": f"feedback:{hashlib.sha256(data).hexdigest()[:16]}",
        "body_site": old.get("body_site", ""),
        "label_source": "expert_review",
        "reviewer": _joined(old, "reviewer", user.user_id),
        "reviewer_name": _joined(old, "reviewer_name", user.name),
        "reviewed_at": utc_now().isoformat(timespec="seconds"),
        "feedback_ids": _joined(old, "feedback_ids", feedback_id),
    }
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=META_FIELDS, extrasaction="ignore", restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows[k] for k in sorted(rows))
    write_atomic(path, buf.getvalue().encode("utf-8"))


def export_voc(state: ServeState, row: dict[str, Any], label: str, box: list[float], user: User) -> str:
    """Write (or extend) the labelImg pair for this image; returns the XML path inside feedback_dir."""
    name, data, (width, height), depth, box = _export_image(state.image_dir / row["image_path"], row, box)
    root = state.feedback_dir
    image_path, xml_path = root / "images" / name, root / "Annotations" / f"{Path(name).stem}.xml"
    new = VocBox(label, *voc_box(box, width, height))
    root.mkdir(parents=True, exist_ok=True)
    # metadata.csv and a photo's XML are read, merged and rewritten: serialised across this server's
    # threads and across every server process sharing feedback_dir (their store rows lock apart)
    with state.export_lock, FileLock(root / EXPORT_LOCK):
        if not image_path.is_file():
            write_atomic(image_path, data)
        boxes = read_voc(xml_path).boxes if xml_path.is_file() else ()
        reviews = _reviews_of(xml_path)
        if new not in boxes:
            boxes, reviews = (*boxes, new), [*reviews, _review_element(user, row["feedback_id"])]
        ann = VocAnnotation(
            folder="images",
            filename=name,
            path=None,
            width=width,
            height=height,
            depth=depth,
            boxes=boxes,
            database=DATABASE,
            verified=True,
        )
        write_atomic(xml_path, _with_reviews(ann, reviews))
        _update_metadata(root, name, data, user, row["feedback_id"])
    return xml_path.relative_to(root).as_posix()


def _decide(state: ServeState, row: dict[str, Any], body: ReviewBody, user: User) -> Review:
    label = state.task.normalize(body.true_label) if body.true_label else None
    if body.true_label and label is None:
        raise InputError(400, f"'true_label': {body.true_label!r} is not one of {list(state.task.classes)}")
    box = parse_box(body.box, int(row["image_width"]), int(row["image_height"])) if body.box is not None else None
    if body.action == "accept":
        if label is None:
            raise InputError(400, f"'true_label' is required to accept: one of {list(state.task.classes)}")
        return Review("accepted", label, box or _default_box(row, state), user.user_id, utc_now())
    # Rejecting a "this is wrong" report confirms the model's answer unless the expert names another.
    return Review("rejected", label or row["model_label"], box, user.user_id, utc_now())


def _who(state: ServeState, user_id: str | None) -> str:
    row = state.store.get_user(user_id) if user_id else None
    return f"{row['name']} ({user_id})" if row else str(user_id)


@router.post("/items/{feedback_id}", response_model=ReviewResponse, summary="Accept (and export) or reject a report")
def review_item(
    request: Request, feedback_id: str, body: ReviewBody, user: Annotated[User, Depends(can_review)]
) -> dict[str, Any]:
    state = get_state(request)
    row = _feedback(state, feedback_id)
    if row["status"] != "pending":
        raise HTTPException(
            409,
            f"feedback {feedback_id} was already {row['status']} by "
            f"{_who(state, row['reviewer'])} "
            f"at {row['reviewed_at'].isoformat() if row['reviewed_at'] else '?'}",
        )
    decision = _decide(state, row, body, user)

    def export(claimed: dict[str, Any]) -> str | None:
        if decision.status != "accepted":
            return None
        assert decision.true_label is not None and decision.box is not None
        return export_voc(state, claimed, decision.true_label, decision.box, user)

    done = state.store.review(feedback_id, decision, export)
    if done is None:
        raise HTTPException(409, f"feedback {feedback_id} was reviewed by someone else meanwhile")
    state.metrics.feedback.labels(decision.status).inc()
    return {"feedback_id": feedback_id, "status": decision.status, "export": done["export_path"]}
