"""The `serve` section of params.yaml as one frozen config, checked when it is built.

No secret is ever a value here (params.yaml is versioned and shared): accounts and their hashed
tokens live in the store (`lesionops users`), OIDC needs only the issuer's public keys.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from limits import parse

from components.common.errors import ConfigError


@dataclass(frozen=True)
class ServeConfig:
    """The `serve` section of params.yaml."""

    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None  # the URL phones should open (QR code); None: the request's base URL
    store_url: str = "sqlite:///serving/lesionops.db"  # SQLite (WAL) by default; postgresql://… by URL
    image_dir: str = "serving/images"  # content-addressed copies of every uploaded image
    feedback_dir: str = "feedback"  # accepted reviews as labelImg VOC (images/ + annotations/)
    max_upload_bytes: int = 20_000_000  # a request body above this is refused (413)
    max_image_pixels: int = 40_000_000  # decompression-bomb guard: width × height above this → 400
    top_k: int = 3  # classes returned by /classify unless the request asks for fewer/more
    reload_every_s: float = 30.0  # how often the champion aliases are polled (0: never, reload on demand)
    detect_score_threshold: float = 0.5  # detections below this score are not returned
    feature_max_side: int = 256  # drift features are computed on a copy downscaled to this side
    feature_queue: int = 1000  # rows waiting for their drift features in memory; more wait in the store
    feature_rescan_s: float = 60.0  # an idle feature worker looks for pending rows (a killed server's) this often
    feature_nice: int = 10  # the feature process's OS priority below the requests' (0 = same priority)
    feature_idle: bool = True  # Linux: the feature process runs only on a core no request wants (SCHED_IDLE)
    champion_alias: str = "champion"
    torch_threads: int = 0  # intra-op threads of the model forward; 0 = one core fewer than this process may use
    backend: str = "torch"  # classifier forward: torch, or onnx (ONNX Runtime; the graph logged at promotion)
    model_process: bool = True  # torch classifier forwards run in a child process (model_process.py)
    max_batch: int = 8  # concurrent /classify requests answered by one forward pass (1 = one at a time)
    batch_wait_ms: float = 0.0  # how long a forward waits for company (0: runs at once, batches form under load)
    anonymous_classify: bool = False  # demo kiosk: /classify and /detect answer anonymous callers, storing nothing
    upload_rate: str | None = "30/minute"  # per user (kiosk: per client address); over it 429; None = no limit
    retention_days: float | None = None  # unreported uploads older than this are deleted; None = keep
    oidc_issuer: str | None = None  # e.g. https://login.example.org/realms/clinic; None = token users only
    oidc_audience: str | None = None  # the `aud` an access token must carry (required with an issuer)
    oidc_jwks_url: str | None = None  # None = the issuer's discovery document's jwks_uri
    oidc_role_claim: str = "roles"  # claim listing roles; its first clinician/reviewer/admin value counts
    oidc_name_claim: str = "preferred_username"  # shown and audited as the user's name

    @property
    def model_threads(self) -> int:
        """`torch_threads`, or with 0 one core fewer than the process may use (at least 1): the request
        threads and the drift features need a core. OpenMP's threads spin on every core between
        layers: on 2 cores under 4 clients, 2 forward threads left 236 of 300 rows' drift features
        pending (41 req/s counting their drain), 1 thread left 3 (50-55 req/s) (benchmarks/serve.py,
        forwards in the server). The model process (`model_process`) runs with this many."""
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return self.torch_threads or max(1, usable - 1)

    def __post_init__(self) -> None:
        checks = [
            (1 <= self.port <= 65535, "port", "1..65535", self.port),
            (self.max_upload_bytes >= 1024, "max_upload_bytes", "≥ 1024", self.max_upload_bytes),
            (self.max_image_pixels >= 1, "max_image_pixels", "≥ 1", self.max_image_pixels),
            (self.top_k >= 1, "top_k", "≥ 1", self.top_k),
            (self.reload_every_s >= 0, "reload_every_s", "≥ 0", self.reload_every_s),
            (0 <= self.detect_score_threshold <= 1, "detect_score_threshold", "0..1", self.detect_score_threshold),
            (self.feature_max_side >= 8, "feature_max_side", "≥ 8", self.feature_max_side),
            (self.feature_queue >= 1, "feature_queue", "≥ 1", self.feature_queue),
            (self.feature_rescan_s > 0, "feature_rescan_s", "> 0", self.feature_rescan_s),
            (0 <= self.feature_nice <= 19, "feature_nice", "0..19", self.feature_nice),
            (
                self.retention_days is None or self.retention_days > 0,
                "retention_days",
                "> 0 or null",
                self.retention_days,
            ),
            (
                self.oidc_issuer is None or bool(self.oidc_audience),
                "oidc_audience",
                "set when oidc_issuer is",
                self.oidc_audience,
            ),
            (bool(self.champion_alias), "champion_alias", "a non-empty alias", self.champion_alias),
            (self.torch_threads >= 0, "torch_threads", "≥ 0", self.torch_threads),
            (self.backend in ("torch", "onnx"), "backend", "torch or onnx", self.backend),
            (self.max_batch >= 1, "max_batch", "≥ 1", self.max_batch),
            (0 <= self.batch_wait_ms <= 1000, "batch_wait_ms", "0..1000", self.batch_wait_ms),
        ]
        for ok, name, expected, found in checks:
            if not ok:
                raise ConfigError(f"serve.{name}: expected {expected}, found {found!r}")
        if self.upload_rate is not None:
            try:
                parse(self.upload_rate)
            except ValueError as exc:
                raise ConfigError(
                    f"serve.upload_rate: expected e.g. '30/minute' or '500/day', found {self.upload_rate!r}"
                ) from exc
