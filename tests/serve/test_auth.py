"""Sign-in and roles over real HTTP: no credentials → 401 on every route that stores or reveals data,
the wrong role → 403, revocation at once; the kiosk mode that answers anonymously and stores
nothing; the per-user upload limit (429 + Retry-After); OIDC tokens checked against a JWKS served
on loopback."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from components.common.store import Store
from lesionops.serve.users import add_user, revoke_user
from tests.serve.fixtures import ADMIN, CLINICIAN, REVIEWER, ServeSetup, image_bytes, serve_in_thread

PHOTO = {"file": ("a.jpg", image_bytes(seed=3), "image/jpeg")}
ROUTES = {  # every route that stores or reveals data
    "classify": ("POST", "/classify", {"files": PHOTO}),
    "detect": ("POST", "/detect", {"files": PHOTO}),
    "feedback": ("POST", "/feedback", {"data": {"prediction_id": "x", "suggested_label": "psoriasis"}}),
    "review queue": ("GET", "/review/queue", {}),
    "review decision": ("POST", "/review/items/x", {"json": {"action": "reject"}}),
    "review image": ("GET", "/review/items/x/image", {}),
    "reload": ("POST", "/reload", {}),
    "rollback": ("POST", "/rollback", {"json": {"reason": "x"}}),
    "who am I": ("GET", "/auth/me", {}),
}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("route", list(ROUTES), ids=list(ROUTES))
def test_every_storing_route_needs_sign_in(anon: httpx.Client, route: str) -> None:
    method, path, kwargs = ROUTES[route]
    r = anon.request(method, path, **kwargs)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", r.text


ROLE_CASES = {  # token, route, status
    "clinician cannot see the queue": (CLINICIAN, "review queue", 403),
    "clinician cannot decide": (CLINICIAN, "review decision", 403),
    "clinician cannot see reported photos": (CLINICIAN, "review image", 403),
    "clinician cannot reload": (CLINICIAN, "reload", 403),
    "reviewer cannot reload": (REVIEWER, "reload", 403),
    "reviewer cannot roll back": (REVIEWER, "rollback", 403),
    "admin cannot review": (ADMIN, "review queue", 403),
    "admin cannot report": (ADMIN, "feedback", 403),
    "clinician classifies": (CLINICIAN, "classify", 200),
}


@pytest.mark.parametrize("case", list(ROLE_CASES), ids=list(ROLE_CASES))
def test_roles(anon: httpx.Client, case: str) -> None:
    token, route, status = ROLE_CASES[case]
    method, path, kwargs = ROUTES[route]
    r = anon.request(method, path, headers=_bearer(token), **kwargs)
    assert r.status_code == status, r.text
    if status == 403:
        assert "may not" in r.json()["detail"]


def test_who_am_i(anon: httpx.Client) -> None:
    me = anon.get("/auth/me", headers=_bearer(CLINICIAN)).json()
    assert me == {
        "user_id": CLINICIAN.split(".")[0],
        "name": "dr-clinician",
        "role": "clinician",
        "permissions": ["predict", "report"],
    }


def test_revoked_token_is_refused_at_once(anon: httpx.Client, serving: ServeSetup) -> None:
    store = Store(serving.cfg.store_url)
    user, token = add_user(store, "temp-nurse", "clinician")
    assert token.startswith(user.user_id + ".") and token.split(".")[1] not in str(store.get_user(user.user_id))
    for _ in range(2):  # the second answer comes from the verified-token cache
        assert anon.get("/auth/me", headers=_bearer(token)).json()["name"] == "temp-nurse"
    revoke_user(store, "temp-nurse")
    assert anon.get("/auth/me", headers=_bearer(token)).status_code == 401
    assert anon.get("/auth/me", headers=_bearer(token[:-1] + "x")).status_code == 401


# ---- a second server on the same store: kiosk mode, 2 uploads a minute, OIDC ----------------------
ISSUER, AUDIENCE, KID = "https://login.clinic.test/realms/derm", "lesionops", "k1"
PUBLIC_URL = "https://lesionops.example.org/"


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks_url(signing_key: rsa.RSAPrivateKey) -> Iterator[str]:
    """The issuer's public key set, served by a plain HTTP server on loopback."""
    jwk = {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key())), "kid": KID, "use": "sig"}
    body = json.dumps({"keys": [jwk]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/jwks"
    server.shutdown()


@pytest.fixture(scope="module")
def kiosk(serving: ServeSetup, jwks_url: str) -> Iterator[str]:
    cfg = dataclasses.replace(
        serving.cfg,
        anonymous_classify=True,
        upload_rate="2/minute",
        public_url=PUBLIC_URL,
        oidc_issuer=ISSUER,
        oidc_audience=AUDIENCE,
        oidc_jwks_url=jwks_url,
    )
    with serve_in_thread(dataclasses.replace(serving, cfg=cfg).app()) as url:
        yield url


def _jwt(key: rsa.RSAPrivateKey, **claims: Any) -> str:
    now = int(time.time())
    body = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "u-123",
        "exp": now + 300,
        "iat": now,
        "preferred_username": "dr.oidc",
        "roles": ["offline_access", "reviewer"],
        **claims,
    }
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": KID})


def _files(root: ServeSetup) -> int:
    return sum(1 for p in (root.root / "serving" / "images").rglob("*") if p.is_file())


def test_kiosk_answers_anonymously_stores_nothing_and_is_rate_limited(kiosk: str, serving: ServeSetup) -> None:
    store = Store(serving.cfg.store_url)
    rows, files = store.count_predictions(), _files(serving)
    photo = {"file": ("k.jpg", image_bytes(seed=77), "image/jpeg")}
    r = httpx.post(kiosk + "/classify", files=photo, timeout=60)
    assert r.status_code == 200 and r.json()["prediction_id"] is None and r.json()["top"]
    assert httpx.post(kiosk + "/detect", files=photo, timeout=60).status_code == 200
    assert (store.count_predictions(), _files(serving)) == (rows, files)  # no row, no file, no temp left
    assert httpx.post(kiosk + "/feedback", data={"prediction_id": "x", "suggested_label": "other"}).status_code == 401
    third = httpx.post(kiosk + "/classify", files=photo, timeout=60)
    assert third.status_code == 429 and "serve.upload_rate" in third.json()["detail"]
    assert 1 <= int(third.headers["retry-after"]) <= 60
    signed_in = httpx.post(kiosk + "/classify", files=photo, headers=_bearer(CLINICIAN), timeout=60)
    assert signed_in.status_code == 200 and signed_in.json()["prediction_id"]  # own budget; stored
    assert store.count_predictions() == rows + 1


def test_qr_encodes_the_public_url(kiosk: str) -> None:
    assert f"<title>{PUBLIC_URL}</title>" in httpx.get(kiosk + "/qr.svg").text


def test_oidc_tokens(kiosk: str, signing_key: rsa.RSAPrivateKey, serving: ServeSetup) -> None:
    good = _jwt(signing_key)
    me = httpx.get(kiosk + "/auth/me", headers=_bearer(good)).json()
    assert me["user_id"] == "oidc:u-123" and me["name"] == "dr.oidc" and me["role"] == "reviewer"
    assert httpx.get(kiosk + "/review/queue", headers=_bearer(good)).status_code == 200
    assert Store(serving.cfg.store_url).get_user("oidc:u-123")["source"] == "oidc"  # named in the audit trail
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused = {
        "expired": _jwt(signing_key, exp=int(time.time()) - 60),
        "wrong audience": _jwt(signing_key, aud="x"),
        "wrong issuer": _jwt(signing_key, iss="https://evil.test"),
        "forged": _jwt(other_key),
    }
    for why, token in refused.items():
        assert httpx.get(kiosk + "/auth/me", headers=_bearer(token)).status_code == 401, why
    no_role = _jwt(signing_key, sub="u-9", preferred_username="visitor", roles=["offline_access"])
    assert httpx.get(kiosk + "/review/queue", headers=_bearer(no_role)).status_code == 403
