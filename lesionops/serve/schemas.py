"""Response and request bodies: they document the API in /docs and keep answers to the contract."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ModelRef(BaseModel):
    name: str
    version: str


class ImageSize(BaseModel):
    width: int
    height: int


class Health(BaseModel):
    status: Literal["ok"]
    classifier: ModelRef | None
    detector: ModelRef | None
    problems: dict[str, str] = Field(description="why a model is not (or no longer) being updated")
    classes: list[str] = Field(description="the task's classes: what a report may suggest (or 'other')")
    anonymous_classify: bool = Field(
        False, description="true on a kiosk: /classify and /detect answer without sign-in (and store nothing)"
    )


class Ranked(BaseModel):
    label: str
    confidence: float = Field(description="softmax(logits / T), T fitted on validation data")


PredictionId = Field(description="what /feedback reports on; null for an anonymous kiosk answer (nothing stored)")


class Scope(BaseModel):
    in_scope: bool
    reasons: list[str] = Field(description="near_black | grey | unfamiliar (the embedding is far from every class)")
    distance: float | None = Field(description="Mahalanobis distance of the embedding to the nearest class mean")
    threshold: float | None = Field(description="refused above this (serve_scope.false_rejection on held-out photos)")


class ClassifyResponse(BaseModel):
    prediction_id: str | None = PredictionId
    kind: Literal["classify"]
    model: ModelRef
    top: list[Ranked] = Field(description="empty when the photo is out of scope: no diagnosis-like answer")
    scope: Scope | None = Field(None, description="the per-request scope check (serve_scope); None: not checked")
    box: list[float] | None = Field(description="x1,y1,x2,y2 in stored-image pixels (0-based, x2/y2 exclusive)")
    image: ImageSize


class Detection(BaseModel):
    label: str
    score: float
    box: list[float]


class DetectResponse(BaseModel):
    prediction_id: str | None = PredictionId
    kind: Literal["detect"]
    model: ModelRef
    detections: list[Detection] = Field(description="empty when the photo is out of scope")
    scope: Scope | None = Field(None, description="acquisition checks with the classifier's scope; None: not checked")
    image: ImageSize
    annotated_png: str | None = Field(None, description="data:image/png;base64,... when annotated=true")


class FeedbackResponse(BaseModel):
    feedback_id: str
    status: Literal["pending"]


class ReviewBody(BaseModel):
    action: Literal["accept", "reject"]
    true_label: str | None = Field(None, description="required to accept: one of the task classes")
    box: list[float] | None = Field(
        None, description="x1,y1,x2,y2; default: the report's or prediction's box, else the whole image"
    )
    # No reviewer field: the signed-in user is the reviewer (an old client's "reviewer" is ignored).


class RollbackBody(BaseModel):
    kind: Literal["classifier", "detector"] = "classifier"
    reason: str = Field("", max_length=2000, description="why (kept in the audit log)")


class Me(BaseModel):
    user_id: str
    name: str
    role: str
    permissions: list[str]


class ReviewResponse(BaseModel):
    feedback_id: str
    status: Literal["accepted", "rejected"]
    export: str | None = Field(description="the VOC xml written, relative to serve.feedback_dir")
