"""The LesionOps serving app: predictions, feedback, expert review, health, metrics and the pages.

`create_app` builds everything from configs and opens nothing until the server starts: the
lifespan loads the champions, starts the alias poller, and closes the store on the way out.
Errors always answer `{"detail": "<reason>"}` — including FastAPI's validation errors (422), which
are flattened to one sentence — and nothing a client sends produces a 500.

Only /health, /metrics, /qr.svg and the static pages answer without sign-in (they reveal no patient
data); every other route needs a user whose role allows it (auth.py).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from io import BytesIO
from pathlib import Path
from typing import Annotated, Any

import segno
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from components.common.scope import ScopeConfig
from components.common.store import Store
from components.common.task import TaskConfig
from components.common.tracking import TrackingConfig
from components.crop_patches.config import CropConfig
from components.promote_model.config import PromoteConfig
from lesionops.serve import expert_review, predict
from lesionops.serve.auth import Authenticator, OidcSettings, OidcVerifier, current_user, require
from lesionops.serve.config import ServeConfig
from lesionops.serve.features import FeatureWorker
from lesionops.serve.limits import BodyLimitMiddleware
from lesionops.serve.metrics import MetricsMiddleware, ServeMetrics
from lesionops.serve.models import Champions, Poller
from lesionops.serve.ratelimit import UploadLimiter
from lesionops.serve.schemas import Health, Me, RollbackBody
from lesionops.serve.state import ServeState, get_state
from lesionops.serve.uploads import InputError
from lesionops.serve.users import User

log = logging.getLogger("lesionops.serve")
STATIC_DIR = Path(__file__).parent / "static"
PAGES = {"/": "index.html", "/review": "review.html"}


def _validation_detail(exc: RequestValidationError) -> str:
    """FastAPI's list of errors as one sentence: "missing field 'file' (body); ..."."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header"))
        kind = "missing field" if err.get("type") == "missing" else "invalid field"
        parts.append(f"{kind} '{where}': {err.get('msg', '')}" if kind != "missing field" else f"{kind} '{where}'")
    return "; ".join(parts) or "invalid request"


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(InputError)
    async def input_error(_request: Request, exc: InputError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_detail(exc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def server_error(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("serve: unhandled error", exc_info=exc)
        return JSONResponse({"detail": f"internal error ({type(exc).__name__}); see the server log"}, status_code=500)


def _health(state: ServeState) -> dict[str, Any]:
    clf, det = state.champions.classifier, state.champions.detector
    return {
        "status": "ok",
        "classifier": clf.info() if clf else None,
        "detector": det.info() if det else None,
        "problems": dict(state.champions.problems),
        "classes": list(state.task.classes),
        "anonymous_classify": state.cfg.anonymous_classify,
    }


def _refresh(state: ServeState) -> dict[str, Any]:
    state.champions.refresh()
    state.metrics.set_models(state.champions.models)
    return _health(state)


def _page(name: str) -> Response:
    path = STATIC_DIR / name
    if not path.is_file():
        return JSONResponse({"detail": f"page not built: lesionops/serve/static/{name} is missing"}, status_code=404)
    return FileResponse(path, media_type="text/html")


def _rollback(state: ServeState, body: RollbackBody, user: User) -> dict[str, Any]:
    """champion ← previous in the registry (audit-logged with the user), then serve it now."""
    from components.promote_model.rollback import rollback

    done = rollback(state.promote, state.tracking, body.kind, body.reason, user=user.user_id)
    _refresh(state)
    return done


def _install_routes(app: FastAPI) -> None:
    @app.get("/health", response_model=Health, tags=["ops"], summary="Liveness and the model versions in service")
    def health(request: Request) -> dict[str, Any]:
        return _health(get_state(request))

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics", response_class=Response)
    def metrics(request: Request) -> Response:
        return Response(generate_latest(get_state(request).metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post(
        "/reload",
        response_model=Health,
        tags=["ops"],
        dependencies=[Depends(require("admin"))],
        summary="Follow the registry aliases now instead of at the next poll (admin)",
    )
    def reload(request: Request) -> dict[str, Any]:
        return _refresh(get_state(request))

    @app.post("/rollback", tags=["ops"], summary="Move the champion back to the previous version (admin)")
    def rollback(
        request: Request, body: RollbackBody, user: Annotated[User, Depends(require("admin"))]
    ) -> dict[str, Any]:
        return _rollback(get_state(request), body, user)

    @app.get("/auth/me", response_model=Me, tags=["auth"], summary="Who the token belongs to, and their role")
    def me(user: Annotated[User | None, Depends(current_user)]) -> dict[str, Any]:
        if user is None:
            raise HTTPException(401, "not signed in", headers={"WWW-Authenticate": "Bearer"})
        return user.info()

    @app.get(
        "/qr.svg", tags=["pages"], summary="QR code of the page URL, for opening it on a phone", response_class=Response
    )
    def qr(request: Request) -> Response:
        url = get_state(request).cfg.public_url or str(request.base_url)
        buf = BytesIO()
        segno.make(url, error="m").save(buf, kind="svg", scale=6, border=2, title=url)
        return Response(buf.getvalue(), media_type="image/svg+xml")

    for route, name in PAGES.items():
        app.add_api_route(route, lambda name=name: _page(name), methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")


def _oidc(cfg: ServeConfig) -> OidcVerifier | None:
    if cfg.oidc_issuer is None or cfg.oidc_audience is None:
        return None
    return OidcVerifier(
        OidcSettings(cfg.oidc_issuer, cfg.oidc_audience, cfg.oidc_jwks_url, cfg.oidc_role_claim, cfg.oidc_name_claim)
    )


def _feature_worker(cfg: ServeConfig, store: Store) -> FeatureWorker:
    return FeatureWorker(
        store,
        Path(cfg.image_dir),
        cfg.feature_max_side,
        cfg.feature_queue,
        cfg.feature_rescan_s,
        cfg.feature_nice,
        cfg.feature_idle,
    )


def create_app(
    cfg: ServeConfig,
    tracking: TrackingConfig,
    task: TaskConfig,
    *,
    crop: CropConfig | None = None,
    promote: PromoteConfig | None = None,
    scope: ScopeConfig | None = None,
) -> FastAPI:
    """The app for these configs. `crop` (the crop_patches section) must be the one the classifier
    was trained with: serving rebuilds patches with it. `promote` (the promote_model section) names
    the audit log and lock that POST /rollback uses. `scope` (serve_scope) makes /classify refuse
    photos the classifier cannot answer; None answers every photo. Users live in the store (`lesionops users`)."""
    crop = crop or CropConfig()
    champions = Champions(
        tracking,
        cfg.champion_alias,
        task.classes,
        backend=cfg.backend,
        scope=scope,
        process_threads=cfg.model_threads if cfg.model_process else None,
    )
    metrics = ServeMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = Store(cfg.store_url)
        state = ServeState(
            cfg,
            task,
            crop,
            store,
            champions,
            metrics,
            Authenticator(store, _oidc(cfg)),
            UploadLimiter(cfg.upload_rate),
            tracking,
            promote or PromoteConfig(),
            _feature_worker(cfg, store),
        )
        app.state.serve = state
        _refresh(state)
        poller = Poller(champions, cfg.reload_every_s, on_change=lambda: metrics.set_models(champions.models))
        poller.start()
        state.features.start()  # first finishes the rows a previous run left pending
        try:
            yield
        finally:
            poller.stop()
            state.features.stop()
            state.store.close()

    app = FastAPI(
        title="LesionOps",
        version="1",
        lifespan=lifespan,
        description="Classify and detect skin lesions, report wrong results, review the reports. "
        "Boxes are x1,y1,x2,y2 in pixels of the image as stored (no EXIF rotation).",
    )
    _install_handlers(app)
    _install_routes(app)
    app.include_router(predict.router, tags=["predict"])
    app.include_router(expert_review.router)
    app.add_middleware(BodyLimitMiddleware, max_bytes=cfg.max_upload_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: counts the 413s too
    return app
