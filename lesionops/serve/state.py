"""What every route shares (config, store, models, metrics) and the token check.

The token is compared in constant time; with no token configured the feedback and review routes
answer 503 instead of running open: an unprotected review queue would let anyone write training data.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from components.common.store import Store
from components.common.task import TaskConfig
from components.crop_patches.config import CropConfig
from lesionops.serve.config import ServeConfig
from lesionops.serve.metrics import ServeMetrics
from lesionops.serve.models import Champions

bearer = HTTPBearer(auto_error=False, description="the token held in $LESIONOPS_TOKEN (serve.token_env)")


@dataclass
class ServeState:
    cfg: ServeConfig
    task: TaskConfig
    crop: CropConfig
    token: str | None
    store: Store
    champions: Champions
    metrics: ServeMetrics
    export_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def image_dir(self) -> Path:
        return Path(self.cfg.image_dir)

    @property
    def feedback_dir(self) -> Path:
        return Path(self.cfg.feedback_dir)


def get_state(request: Request) -> ServeState:
    return request.app.state.serve  # type: ignore[no-any-return]


def require_token(request: Request,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
    """401 unless `Authorization: Bearer <token>` matches; 503 when no token is configured."""
    state = get_state(request)
    if not state.token:
        raise HTTPException(503, f"feedback disabled: set ${state.cfg.token_env}")
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "missing token: send 'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": "Bearer"})
    if not secrets.compare_digest(credentials.credentials.encode(), state.token.encode()):
        raise HTTPException(401, "wrong token", headers={"WWW-Authenticate": "Bearer"})


FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def require_form(request: Request) -> None:
    """415 for a body that is not a form (JSON, raw image bytes...), before the field checks.

    multipart/form-data carries files; a urlencoded form is accepted too (a report about a stored
    prediction has no file), and a missing file is then the usual 422."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in FORM_TYPES:
        raise HTTPException(415, f"expected a multipart/form-data body, found content type {media or 'none'!r}")
