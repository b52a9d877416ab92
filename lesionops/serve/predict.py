"""POST /classify, /detect and /feedback: decode, check, answer, and record everything durably.

Routes are plain `def`: FastAPI runs them in its thread pool, so decoding and cropping of several
requests overlap while each model runs one forward at a time. A /classify upload is decoded once,
at the reduced scale its patch needs; drift features are measured off the request path (features.py).

Every stored prediction and report names the signed-in user. An anonymous kiosk request
(`serve.anonymous_classify`) is answered from memory: no image file, no row, no prediction id to
report on.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from PIL import Image

from components.common.scope import Verdict
from components.common.store import Feedback, ImageDeleted, Prediction, StoredImage, utc_now
from lesionops.serve.auth import predict_user, require
from lesionops.serve.inference import annotate, classify, detect, patch_for, patch_scale
from lesionops.serve.models import Classifier
from lesionops.serve.schemas import ClassifyResponse, DetectResponse, FeedbackResponse
from lesionops.serve.state import ServeState, count_upload, get_state, require_form
from lesionops.serve.uploads import InputError, Upload, check_content_type, decode_image, parse_box, store_image
from lesionops.serve.users import User

router = APIRouter()
OTHER = "other"  # a reporter may say "none of these classes"

FileField = Annotated[UploadFile, File(description="the photo (JPEG, PNG, BMP, TIFF, WebP)")]
BoxField = Annotated[str | None, Form(description="x1,y1,x2,y2 in stored-image pixels (0-based, x2/y2 exclusive)")]
Caller = Annotated[User | None, Depends(predict_user)]
can_report = require("report")  # one callable: FastAPI then runs it once per request, before the body checks


def read_upload(file: UploadFile, state: ServeState, scale: Callable[[int, int], int] | None = None) -> Upload:
    check_content_type(file.content_type)
    return decode_image(file.file.read(), state.cfg.max_image_pixels, scale=scale)


def _record(
    state: ServeState,
    user: User | None,
    stored: StoredImage | None,
    kind: str,
    model: Any,
    box: list[float] | None,
    outputs: dict[str, Any],
    top: tuple[str | None, float | None],
    embedding: Any = None,
) -> str | None:
    """The prediction row (None: kiosk, not stored), committed with its drift features pending: the
    feature worker (features.py) measures them from the stored image after the answer has gone."""
    state.metrics.predictions.labels(kind, top[0] or "none").inc()
    if user is None or stored is None:
        return None
    prediction_id = uuid.uuid4().hex
    state.store.add_prediction(
        Prediction(
            prediction_id,
            utc_now(),
            kind,
            model.name,
            model.version,
            stored,
            box,
            outputs,
            top[0],
            top[1],
            None,
            embedding,
            user.user_id,
        )
    )
    state.features.submit(prediction_id, stored.path)
    return prediction_id


@router.post(
    "/classify",
    response_model=ClassifyResponse,
    dependencies=[Depends(predict_user), Depends(require_form)],
    summary="Top-k classes of a photo or of a boxed region, with calibrated confidences",
)
def classify_route(
    request: Request,
    user: Caller,
    file: FileField,
    box: BoxField = None,
    top_k: Annotated[int | None, Form(description="how many classes (default serve.top_k)")] = None,
) -> dict[str, Any]:
    state = get_state(request)
    model = state.champions.classifier
    if model is None:
        raise HTTPException(503, state.champions.reason("classifier"))
    count_upload(request, user)
    k = min(state.cfg.top_k, len(model.classes)) if top_k is None else top_k
    if not 1 <= k <= len(model.classes):
        raise InputError(400, f"'top_k': expected 1..{len(model.classes)}, found {k}")
    regions: list[list[float] | None] = []

    def scale(width: int, height: int) -> int:  # the box is checked against the header's size
        regions.append(parse_box(box, width, height, state.crop.min_box_side))
        return patch_scale((width, height), regions[0], state.crop)

    upload = read_upload(file, state, scale)
    region, (width, height) = regions[0], upload.size
    patch = patch_for(upload.image, upload.size, region, upload.orientation, state.crop)
    stored = store_image(state.image_dir, upload) if user is not None else None
    cfg = state.cfg
    answer = classify(model, patch, k, cfg.model_threads, cfg.max_batch, cfg.batch_wait_ms / 1000)
    scope = _scope(state, model, patch, answer.embedding)
    top1 = answer.top[0]
    prediction_id = _record(
        state,
        user,
        stored,
        "classify",
        model,
        region,
        {"top": answer.top, **({"scope": scope} if scope else {})},  # the model's answer kept for audit
        (top1["label"], top1["confidence"]),
        answer.embedding,
    )
    return {
        "prediction_id": prediction_id,
        "kind": "classify",
        "model": model.info(),
        "top": answer.top if scope is None or scope["in_scope"] else [],
        "scope": scope,
        "box": region,
        "image": {"width": width, "height": height},
    }


def _scope(state: ServeState, model: Classifier, patch: Image.Image, embedding: np.ndarray) -> dict[str, Any] | None:
    """The serve_scope verdict on the patch the model saw (None: the check is off). An out-of-scope
    photo is still stored with the model's answer, counted by reason, and its image statistics
    feed monitor_drift's acquisition alerts like every other upload's."""
    if model.scope is None:
        return None
    return _counted(state, model.scope.judge(np.asarray(patch), embedding))


@router.post(
    "/detect",
    response_model=DetectResponse,
    response_model_exclude_none=True,
    dependencies=[Depends(predict_user), Depends(require_form)],
    summary="Lesion boxes, classes and scores on a raw photo",
)
def detect_route(
    request: Request,
    user: Caller,
    file: FileField,
    annotated: Annotated[bool, Form(description="also return the image with boxes drawn")] = False,
) -> dict[str, Any]:
    state = get_state(request)
    model = state.champions.detector
    if model is None:
        raise HTTPException(503, state.champions.reason("detector"))
    count_upload(request, user)
    upload = read_upload(file, state)
    detections = detect(model, upload.image, state.cfg.detect_score_threshold, state.cfg.model_threads)
    scope = _detect_scope(state, upload.image)
    best = (detections[0]["label"], detections[0]["score"]) if detections else (None, None)
    stored = store_image(state.image_dir, upload) if user is not None else None
    outputs = {"detections": detections, **({"scope": scope} if scope else {})}
    prediction_id = _record(state, user, stored, "detect", model, None, outputs, best)
    width, height = upload.size
    out = {
        "prediction_id": prediction_id,
        "kind": "detect",
        "model": model.info(),
        "detections": detections if scope is None or scope["in_scope"] else [],
        "scope": scope,
        "image": {"width": width, "height": height},
    }
    if annotated:
        out["annotated_png"] = annotate(upload.image, detections, model.classes)
    return out


def _detect_scope(state: ServeState, image: Image.Image) -> dict[str, Any] | None:
    """The acquisition checks (near-black; grey when the classifier's reference is colour) on a
    thumbnail of the whole photo: the detector has no embedding reference, so its scope is the
    classifier champion's minus the embedding check. None when there is no classifier scope."""
    classifier = state.champions.classifier
    if classifier is None or classifier.scope is None:
        return None
    thumb = image.copy()  # RGB already (decode_image); thumbnail works in place
    thumb.thumbnail((128, 128))
    return _counted(state, classifier.scope.judge(np.asarray(thumb), None))


def _counted(state: ServeState, verdict: Verdict) -> dict[str, Any]:
    """The verdict as the answer carries it, each refusal reason counted (/metrics)."""
    for reason in verdict.reasons:
        state.metrics.out_of_scope.labels(reason).inc()
    return verdict.as_dict()


def iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def model_label(prediction: dict[str, Any], box: list[float] | None) -> str | None:
    """What the model said about the reported region: top-1, or the detection overlapping the box most."""
    if prediction["kind"] == "classify" or box is None:
        return prediction["predicted_class"]  # type: ignore[no-any-return]
    scored = [(iou(d["box"], box), d["label"]) for d in prediction["outputs"].get("detections", [])]
    best = max(scored, default=(0.0, None))
    return best[1] if best[0] >= 0.5 else None


def _label(state: ServeState, text: str) -> str:
    label = OTHER if text.strip().lower() == OTHER else state.task.normalize(text)
    if label is None:
        raise InputError(400, f"'suggested_label': {text!r} is not one of {[*state.task.classes, OTHER]}")
    return label


def _subject(
    state: ServeState,
    prediction_id: str | None,
    file: UploadFile | None,
) -> tuple[StoredImage, dict[str, Any] | None]:
    """The image a report is about: a stored prediction's, or a freshly uploaded one."""
    if (prediction_id is None) == (file is None):
        raise InputError(422, "give exactly one of 'prediction_id' (a prediction to report) or 'file' (an image)")
    if prediction_id is not None:
        prediction = state.store.get_prediction(prediction_id.strip())
        if prediction is None:
            raise InputError(404, f"unknown prediction_id {prediction_id!r}")
        if prediction["image_deleted_at"] is not None:
            raise InputError(
                410,
                f"the photo of prediction {prediction_id} was deleted "
                f"(serve.retention_days); report it again with the photo attached",
            )
        image = StoredImage(
            prediction["input_sha256"],
            prediction["image_path"],
            prediction["image_width"],
            prediction["image_height"],
            prediction["orientation"] or 1,
        )
        return image, prediction
    assert file is not None
    return store_image(state.image_dir, read_upload(file, state)), None


@router.post(
    "/feedback",
    status_code=201,
    response_model=FeedbackResponse,
    dependencies=[Depends(can_report), Depends(require_form)],
    summary="Report a wrong result (or an unclassified image) for expert review",
)
def feedback_route(
    request: Request,
    user: Annotated[User, Depends(can_report)],
    suggested_label: Annotated[str, Form(description="a task class, or 'other'")],
    prediction_id: Annotated[str | None, Form()] = None,
    file: Annotated[UploadFile | None, File(description="the image, if no prediction")] = None,
    note: Annotated[str | None, Form(max_length=2000)] = None,
    box: BoxField = None,
) -> dict[str, Any]:
    state = get_state(request)
    label = _label(state, suggested_label)
    if file is not None:
        count_upload(request, user)
    image, prediction = _subject(state, prediction_id, file)
    region = parse_box(box, image.width, image.height)
    if region is None and prediction is not None:
        region = prediction["box"]
    feedback_id = uuid.uuid4().hex
    try:
        state.store.add_feedback(
            Feedback(
                feedback_id,
                utc_now(),
                prediction["prediction_id"] if prediction else None,
                image,
                label,
                note,
                region,
                model_label(prediction, region) if prediction else None,
                user.user_id,
            )
        )
    except ImageDeleted as exc:
        raise InputError(410, f"the photo of prediction {exc} was deleted meanwhile (serve.retention_days)") from exc
    state.metrics.feedback.labels("reported").inc()
    return {"feedback_id": feedback_id, "status": "pending"}
