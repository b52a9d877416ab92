"""What every route shares: config, store, models, metrics, who is calling (auth) and the upload limit."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import HTTPException, Request

from components.common.store import Store
from components.common.task import TaskConfig
from components.common.tracking import TrackingConfig
from components.crop_patches.config import CropConfig
from components.promote_model.config import PromoteConfig
from lesionops.serve.auth import Authenticator
from lesionops.serve.config import ServeConfig
from lesionops.serve.features import FeatureWorker
from lesionops.serve.metrics import ServeMetrics
from lesionops.serve.models import Champions
from lesionops.serve.ratelimit import UploadLimiter
from lesionops.serve.users import User


@dataclass
class ServeState:
    cfg: ServeConfig
    task: TaskConfig
    crop: CropConfig
    store: Store
    champions: Champions
    metrics: ServeMetrics
    auth: Authenticator
    limiter: UploadLimiter
    tracking: TrackingConfig  # the registry POST /rollback moves aliases in
    promote: PromoteConfig  # its audit log and lock
    features: FeatureWorker  # measures each stored prediction's drift features after the answer
    export_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def image_dir(self) -> Path:
        return Path(self.cfg.image_dir)

    @property
    def feedback_dir(self) -> Path:
        return Path(self.cfg.feedback_dir)


def get_state(request: Request) -> ServeState:
    return request.app.state.serve  # type: ignore[no-any-return]


def count_upload(request: Request, user: User | None) -> None:
    """One stored (or kiosk) upload against the caller's rate limit: 429 over `serve.upload_rate`."""
    host = request.client.host if request.client else "unknown"
    get_state(request).limiter.hit(user.user_id if user else f"anonymous:{host}")


FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


async def require_form(request: Request) -> None:
    """415 for a body that is not a form (JSON, raw image bytes...), before the field checks.
    `async`: a header check needs no thread-pool hop.

    multipart/form-data carries files; a urlencoded form is accepted too (a report about a stored
    prediction has no file), and a missing file is then the usual 422."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in FORM_TYPES:
        raise HTTPException(415, f"expected a multipart/form-data body, found content type {media or 'none'!r}")
