"""Serving accounts: roles, per-user tokens, and how a token is checked.

A token is `<user id>.<secret>`: the id picks the one row whose hash is checked, so checking costs
one argon2id verification whoever sends it, and the secret is compared inside argon2's own
constant-time verify. Only `argon2id(secret)` (salted, argon2-cffi) is stored; the token itself is
printed once by `lesionops users add` and can never be shown again (revoke and add a new one).
An unknown or revoked id is checked against a dummy hash, so the answer time does not say whether
an id exists.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from components.common.errors import ConfigError
from components.common.store import Store, utc_now

ROLES = ("clinician", "reviewer", "admin")
# What each role may do. A reviewer is an expert clinician; an admin runs the service (reload,
# rollback, audit) and may try the models, but does not write training labels.
PERMISSIONS = {
    "clinician": frozenset({"predict", "report"}),
    "reviewer": frozenset({"predict", "report", "review"}),
    "admin": frozenset({"predict", "admin"}),
}
# OWASP's argon2id minimum (19 MiB, 2 passes): ~20 ms here. Tokens carry 256 random bits, so the
# hash guards a leaked database, not a guessable password; a cache (auth.py) spares repeat requests.
HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
_DUMMY = HASHER.hash("lesionops-no-such-user")
NAME = re.compile(r"^[\w.@+-]{1,200}$")
TOKEN = re.compile(r"^([0-9a-f]{16})\.([\w-]{20,200})$")


@dataclass(frozen=True)
class User:
    """Who is calling: an account id (token user) or `oidc:<subject>`, a display name and a role."""

    user_id: str
    name: str
    role: str

    def can(self, permission: str) -> bool:
        return permission in PERMISSIONS.get(self.role, frozenset())

    def info(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "name": self.name,
            "role": self.role,
            "permissions": sorted(PERMISSIONS.get(self.role, ())),
        }


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ConfigError(f"role: expected one of {list(ROLES)}, found {role!r}")
    return role


def add_user(store: Store, name: str, role: str, *, token: str | None = None) -> tuple[User, str]:
    """Create an account; returns it with its token (shown once, stored only as a hash).

    `token` lets tests fix one (`<16 hex>.<secret>`); normally it is drawn here."""
    if not NAME.match(name):
        raise ConfigError(f"user name: letters, digits and . _ @ + - only (1..200), found {name!r}")
    if store.get_user(name) is not None:
        raise ConfigError(f"user {name!r} already exists (revoke it, or pick another name)")
    token = token or f"{secrets.token_hex(8)}.{secrets.token_urlsafe(32)}"
    match = TOKEN.match(token)
    if match is None:
        raise ConfigError("token: expected <16 hex digits>.<at least 20 URL-safe characters>")
    user = User(match.group(1), name, check_role(role))
    store.add_user(user.user_id, name, role, HASHER.hash(match.group(2)))
    store.add_event("user_add", None, user.user_id, {"name": name, "role": role})
    return user, token


def revoke_user(store: Store, who: str) -> User:
    """Revoke an account by id or name: its token stops working at once (checked per request)."""
    row = store.get_user(who)
    if row is None:
        raise ConfigError(f"no user {who!r} (see `lesionops users list`)")
    store.update_user(row["user_id"], revoked_at=utc_now())
    store.add_event("user_revoke", None, row["user_id"], {"name": row["name"]})
    return User(row["user_id"], row["name"], row["role"])


def verify_token(store: Store, token: str) -> tuple[User, str] | None:
    """The active user this token belongs to, with the hash it matched; None otherwise."""
    match = TOKEN.match(token)
    row = store.get_user(match.group(1)) if match else None
    usable = row is not None and row["revoked_at"] is None and row["token_hash"] and row["user_id"] == match.group(1)
    hashed = row["token_hash"] if usable else _DUMMY
    try:
        HASHER.verify(hashed, match.group(2) if match else token)
    except (VerificationError, InvalidHashError):
        return None
    if not usable:
        return None
    return User(row["user_id"], row["name"], row["role"]), hashed
