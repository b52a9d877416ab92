"""The `serve` section of params.yaml as one frozen config, checked when it is built.

The feedback/review token is never a value here: `token_env` names the environment variable that
holds it, so params.yaml (versioned, shared) cannot leak it.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    token_env: str = "LESIONOPS_TOKEN"  # NAME of the env var holding the feedback/review token
    detect_score_threshold: float = 0.5  # detections below this score are not returned
    feature_max_side: int = 256  # drift features are computed on a copy downscaled to this side
    champion_alias: str = "champion"
    torch_threads: int = 0  # intra-op threads of the model forward; 0 = torch's default (one per core)

    def __post_init__(self) -> None:
        checks = [
            (1 <= self.port <= 65535, "port", "1..65535", self.port),
            (self.max_upload_bytes >= 1024, "max_upload_bytes", "≥ 1024", self.max_upload_bytes),
            (self.max_image_pixels >= 1, "max_image_pixels", "≥ 1", self.max_image_pixels),
            (self.top_k >= 1, "top_k", "≥ 1", self.top_k),
            (self.reload_every_s >= 0, "reload_every_s", "≥ 0", self.reload_every_s),
            (0 <= self.detect_score_threshold <= 1, "detect_score_threshold", "0..1", self.detect_score_threshold),
            (self.feature_max_side >= 8, "feature_max_side", "≥ 8", self.feature_max_side),
            (self.token_env.isidentifier(), "token_env", "an environment variable name", self.token_env),
            (bool(self.champion_alias), "champion_alias", "a non-empty alias", self.champion_alias),
            (self.torch_threads >= 0, "torch_threads", "≥ 0", self.torch_threads),
        ]
        for ok, name, expected, found in checks:
            if not ok:
                raise ConfigError(f"serve.{name}: expected {expected}, found {found!r}")
