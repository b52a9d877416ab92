"""Expert review: the queue of reports, their images, and accept/reject with a labelImg VOC export.

An accepted report becomes ordinary training data: the image (its original bytes, stored pixel
frame) goes to `feedback_dir/images/<sha16><ext>` and a labelImg Pascal VOC file to
`feedback_dir/Annotations/<sha16>.xml` — the VOC devkit layout ingest_data pairs automatically —
marked `verified="yes"` as labelImg marks checked files. The same photo accepted twice (two lesions
reported) gets one XML with both boxes. Track `feedback_dir` with DVC like any other dataset.
A rejected report writes nothing. Reviews are final: a second decision on one report is a 409.
"""

from __future__ import annotations

from io import BytesIO
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse
from PIL import Image

from components.common.store import STATUSES, Review, utc_now
from components.common.voc import VocAnnotation, VocBox, read_voc, to_xml
from lesionops.serve.schemas import ReviewBody, ReviewResponse
from lesionops.serve.state import ServeState, get_state, require_token
from lesionops.serve.uploads import INGESTABLE, MEDIA_TYPES, InputError, parse_box, voc_box, write_atomic

router = APIRouter(prefix="/review", tags=["review"], dependencies=[Depends(require_token)])
DATABASE = "LesionOps expert review"
GREY_MODES = {"1", "L", "I", "I;16", "I;16B", "I;16L", "F", "LA"}


def _prediction_view(pred: dict[str, Any] | None) -> dict[str, Any] | None:
    if pred is None:
        return None
    view = {"prediction_id": pred["prediction_id"], "kind": pred["kind"],
            "model": {"name": pred["model_name"], "version": pred["model_version"]}, "box": pred["box"]}
    return {**view, **pred["outputs"]}  # "top" for classify, "detections" for detect


def _item(row: dict[str, Any]) -> dict[str, Any]:
    return {"feedback_id": row["feedback_id"], "created_at": row["created_at"].isoformat(), "status": row["status"],
            "suggested_label": row["suggested_label"], "note": row["note"], "box": row["box"],
            "model_label": row["model_label"], "image_url": f"/review/items/{row['feedback_id']}/image",
            "image": {"width": row["image_width"], "height": row["image_height"]},
            "prediction": _prediction_view(row.get("prediction")), "reviewer": row["reviewer"],
            "true_label": row["true_label"], "export": row["export_path"]}


@router.get("/queue", summary="Reports waiting for (or closed by) an expert, oldest first")
def queue(request: Request, status: Annotated[str, Query(description="pending | accepted | rejected")] = "pending",
          limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> dict[str, Any]:
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


@router.get("/items/{feedback_id}/image", summary="The reported image, as uploaded",
            response_class=FileResponse)
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


def export_voc(state: ServeState, row: dict[str, Any], label: str, box: list[float]) -> str:
    """Write (or extend) the labelImg pair for this image; returns the XML path inside feedback_dir."""
    src = state.image_dir / row["image_path"]
    stem, width, height = row["input_sha256"][:16], int(row["image_width"]), int(row["image_height"])
    with Image.open(src) as img:
        depth = 1 if img.mode in GREY_MODES else 3
        if src.suffix in INGESTABLE:
            name, data = f"{stem}{src.suffix}", src.read_bytes()
        else:  # e.g. WebP, which ingest_data does not read: lossless PNG, same pixels and frame
            buf = BytesIO()
            img.save(buf, format="PNG")
            name, data = f"{stem}.png", buf.getvalue()
    root = state.feedback_dir
    image_path, xml_path = root / "images" / name, root / "Annotations" / f"{stem}.xml"
    new = VocBox(label, *voc_box(box, width, height))
    with state.export_lock:
        if not image_path.is_file():
            write_atomic(image_path, data)
        boxes = read_voc(xml_path).boxes if xml_path.is_file() else ()
        if new not in boxes:
            boxes = (*boxes, new)
        ann = VocAnnotation(folder="images", filename=name, path=None, width=width, height=height, depth=depth,
                            boxes=boxes, database=DATABASE, verified=True)
        write_atomic(xml_path, to_xml(ann).encode("utf-8"))
    return xml_path.relative_to(root).as_posix()


def _decide(state: ServeState, row: dict[str, Any], body: ReviewBody) -> Review:
    label = state.task.normalize(body.true_label) if body.true_label else None
    if body.true_label and label is None:
        raise InputError(400, f"'true_label': {body.true_label!r} is not one of {list(state.task.classes)}")
    box = parse_box(body.box, int(row["image_width"]), int(row["image_height"])) if body.box is not None else None
    if body.action == "accept":
        if label is None:
            raise InputError(400, f"'true_label' is required to accept: one of {list(state.task.classes)}")
        return Review("accepted", label, box or _default_box(row, state), body.reviewer, utc_now())
    # Rejecting a "this is wrong" report confirms the model's answer unless the expert names another.
    return Review("rejected", label or row["model_label"], box, body.reviewer, utc_now())


@router.post("/items/{feedback_id}", response_model=ReviewResponse, summary="Accept (and export) or reject a report")
def review_item(request: Request, feedback_id: str, body: ReviewBody) -> dict[str, Any]:
    state = get_state(request)
    row = _feedback(state, feedback_id)
    if row["status"] != "pending":
        raise HTTPException(409, f"feedback {feedback_id} was already {row['status']} by {row['reviewer']} "
                                 f"at {row['reviewed_at'].isoformat() if row['reviewed_at'] else '?'}")
    decision = _decide(state, row, body)

    def export(claimed: dict[str, Any]) -> str | None:
        if decision.status != "accepted":
            return None
        assert decision.true_label is not None and decision.box is not None
        return export_voc(state, claimed, decision.true_label, decision.box)

    done = state.store.review(feedback_id, decision, export)
    if done is None:
        raise HTTPException(409, f"feedback {feedback_id} was reviewed by someone else meanwhile")
    state.metrics.feedback.labels(decision.status).inc()
    return {"feedback_id": feedback_id, "status": decision.status, "export": done["export_path"]}
