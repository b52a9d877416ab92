"""Who is calling, and may they: bearer tokens (per-user, or OIDC) → a `User` → 401 / 403.

Every route that stores or reveals data depends on `require(permission)`: no credentials or a
wrong one is 401 with `WWW-Authenticate: Bearer`, a valid user whose role lacks the permission 403.
`/classify` and `/detect` use `predict_user` instead, which lets an anonymous caller through only
when `serve.anonymous_classify` is on, and then nothing of the request is stored.

Token users are checked with argon2 once; the match is then cached by the token's SHA-256 for the
life of the process, and every later request still reads the user's row, so a revocation or a new
role applies at the next request. OIDC bearer tokens (a JWT: three dot-separated parts) are checked
against the configured issuer's JWKS with PyJWT: signature, `iss`, `aud`, `exp`; the role is the
first value of `serve.oidc_role_claim` that names a LesionOps role.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import jwt
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import IntegrityError

from components.common.store import Store
from lesionops.serve.users import ROLES, User, verify_token

log = logging.getLogger("lesionops.serve")
bearer = HTTPBearer(
    auto_error=False,
    description="a personal token from `lesionops users add`, or an OIDC access token from the configured issuer",
)
CACHE_MAX = 4096
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]


@dataclass(frozen=True)
class OidcSettings:
    issuer: str
    audience: str
    jwks_url: str | None
    role_claim: str
    name_claim: str


class OidcVerifier:
    """Validates OIDC JWTs against the issuer's published keys (fetched once, refreshed by PyJWT)."""

    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings
        self._jwks: jwt.PyJWKClient | None = None
        self._lock = threading.Lock()

    def _client(self) -> jwt.PyJWKClient:
        with self._lock:
            if self._jwks is None:
                url = self.settings.jwks_url or _discover_jwks(self.settings.issuer)
                self._jwks = jwt.PyJWKClient(url, cache_keys=True, lifespan=300, timeout=10)
            return self._jwks

    def verify(self, token: str) -> User | None:
        s = self.settings
        try:
            key = self._client().get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=ALGORITHMS,
                audience=s.audience,
                issuer=s.issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except (jwt.PyJWTError, OSError, ValueError) as exc:
            log.info("serve: OIDC token refused (%s)", exc)
            return None
        values = claims.get(s.role_claim) or []
        values = [values] if isinstance(values, str) else list(values)
        role = next((v for v in values if v in ROLES), "")
        return User(f"oidc:{claims['sub']}", str(claims.get(s.name_claim) or claims["sub"]), role)


def _discover_jwks(issuer: str) -> str:
    """The issuer's `jwks_uri` from its OpenID discovery document."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 (the configured issuer, https)
        return str(json.load(answer)["jwks_uri"])


class Authenticator:
    """Token → User, for per-user tokens and (when configured) OIDC tokens."""

    def __init__(self, store: Store, oidc: OidcVerifier | None = None) -> None:
        self.store, self.oidc = store, oidc
        self._verified: dict[str, tuple[str, str]] = {}  # sha256(token) → (user id, hash it matched)
        self._oidc_seen: set[str] = set()
        self._lock = threading.Lock()

    def authenticate(self, token: str) -> User | None:
        if token.count(".") == 2:
            return self._oidc(token) if self.oidc is not None else None
        digest = hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            cached = self._verified.get(digest)
        if cached is None:
            found = verify_token(self.store, token)
            if found is None:
                return None
            with self._lock:
                if len(self._verified) >= CACHE_MAX:
                    self._verified.clear()
                self._verified[digest] = (found[0].user_id, found[1])
            return found[0]
        row = self.store.get_user(cached[0])
        if row is None or row["revoked_at"] is not None or row["token_hash"] != cached[1]:
            with self._lock:
                self._verified.pop(digest, None)
            return None
        return User(row["user_id"], row["name"], row["role"])

    def _oidc(self, token: str) -> User | None:
        """An OIDC user, recorded in the users table the first time it is seen (names for the audit)."""
        assert self.oidc is not None
        user = self.oidc.verify(token)
        if user is not None and user.user_id not in self._oidc_seen:
            if self.store.get_user(user.user_id) is None:
                try:
                    self.store.add_user(user.user_id, user.name, user.role or "none", None, source="oidc")
                except IntegrityError:  # a concurrent first request, or the name is taken
                    log.info("serve: OIDC user %s not recorded (exists, or name taken)", user.user_id)
            self._oidc_seen.add(user.user_id)
        return user


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


def current_user(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> User | None:
    """The caller, None when no credentials were sent; 401 for credentials that do not check out."""
    if credentials is None:
        if request.headers.get("authorization"):
            raise _unauthorized("unsupported authorization scheme: send 'Authorization: Bearer <token>'")
        return None
    user = request.app.state.serve.auth.authenticate(credentials.credentials.strip())
    if user is None:
        raise _unauthorized("the token was refused (unknown, revoked, expired or mistyped)")
    request.state.user = user
    return user


def require(permission: str) -> Callable[..., User]:
    """A dependency: the signed-in user holding `permission` (401 without one, 403 without the role)."""

    async def dependency(user: Annotated[User | None, Depends(current_user)]) -> User:  # no I/O: no thread hop
        if user is None:
            raise _unauthorized("sign in: send 'Authorization: Bearer <your token>' (`lesionops users add`)")
        if not user.can(permission):
            raise HTTPException(403, f"user {user.name!r} (role {user.role or 'none'}) may not {permission}")
        return user

    dependency.__name__ = f"require_{permission}"
    return dependency


async def predict_user(request: Request, user: Annotated[User | None, Depends(current_user)]) -> User | None:
    """The user of /classify and /detect; None only for an anonymous caller of a kiosk server.
    `async` because it does no I/O: FastAPI runs a plain `def` dependency in its thread pool, a hop
    per request that costs more than this check (current_user reads the store: it stays `def`)."""
    if user is None:
        if request.app.state.serve.cfg.anonymous_classify:
            return None
        raise _unauthorized("sign in to classify: send 'Authorization: Bearer <your token>'")
    if not user.can("predict"):
        raise HTTPException(403, f"user {user.name!r} (role {user.role or 'none'}) may not predict")
    return user
