"""Creating, listing, revoking and checking API keys.

A key is ``oc-`` plus 32 random bytes (URL-safe base64). Only its SHA-256 digest is stored:
the key carries 256 bits of entropy, so nobody can guess their way back from the digest, and a
fast hash lets every request be checked by one indexed lookup. Slow password hashes (argon2,
bcrypt) exist to protect low-entropy secrets people choose; here they would only add tens of
milliseconds to every API call and need a per-key salt, which rules out the lookup by digest.

Creating a key also allows its person (``user:api:<person>``, unless a grant already decides
about them): holding a key the operator made is the permission to talk to the agent.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from opencomputer.bot.access.models import GrantRow
from opencomputer.bot.apikeys.models import ApiKeyRow

__all__ = [
    "PERSON_PATTERN",
    "PLATFORM",
    "ApiKey",
    "authenticate",
    "check_person",
    "create_key",
    "digest",
    "list_keys",
    "revoke_key",
]

PLATFORM = "api"
"""The platform name of the API channel: a key's person talks as ``api:<person>``."""

PERSON_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
"""Person names become user and chat ids (``api:<person>``), which must not hold ``:``."""

_KEYS = ApiKeyRow.__table__  # type: ignore[attr-defined]
_GRANT = GrantRow.__table__  # type: ignore[attr-defined]
_TOKEN_PREFIX = "oc-"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key, without the key itself."""

    id: int
    person: str
    name: str
    prefix: str
    created_at: float
    revoked_at: float | None

    @property
    def active(self) -> bool:
        """Not revoked."""
        return self.revoked_at is None


def digest(token: str) -> str:
    """The stored form of a key (hex SHA-256 of its UTF-8 bytes)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def check_person(person: str) -> str:
    """The person name, or ValueError saying which names are allowed."""
    if not PERSON_PATTERN.fullmatch(person):
        raise ValueError(
            f"bad person name {person!r}: use 1-64 letters, digits, '_', '.', '@' or '-' "
            "(starting with a letter or digit)"
        )
    return person


async def create_key(engine: AsyncEngine, person: str, name: str = "") -> tuple[ApiKey, str]:
    """Store a new key for ``person``; return it and the key text (shown once, never again)."""
    check_person(person)
    token = _TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = time.time()
    label = name[:255]
    values = {
        "person": person,
        "name": label,
        "prefix": token[:10],
        "digest": digest(token),
        "created_at": now,
        "revoked_at": None,
    }
    subject = f"user:{PLATFORM}:{person}"
    async with engine.begin() as conn:
        result = await conn.execute(insert(_KEYS).values(**values))
        key_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        decided = await conn.scalar(select(_GRANT.c.role).where(_GRANT.c.subject == subject))
        if decided is None:  # an admin's earlier decision (denied, admin) stands
            await conn.execute(
                insert(_GRANT).values(
                    subject=subject,
                    role="allowed",
                    granted_by="opencomputer keys create",
                    note=f"API key {key_id}",
                    at=now,
                )
            )
    return ApiKey(key_id, person, label, token[:10], now, None), token


async def list_keys(engine: AsyncEngine) -> list[ApiKey]:
    """Every key, oldest first, revoked ones included."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(_KEYS).order_by(_KEYS.c.id))
        return [_key(row) for row in rows]


async def revoke_key(engine: AsyncEngine, key_id: int) -> bool:
    """Revoke a key at once (the next request with it is refused); False if no active key."""
    async with engine.begin() as conn:
        result = await conn.execute(
            update(_KEYS)
            .where(_KEYS.c.id == key_id, _KEYS.c.revoked_at.is_(None))
            .values(revoked_at=time.time())
        )
    return bool(result.rowcount)


async def authenticate(engine: AsyncEngine, token: str) -> ApiKey | None:
    """The active key ``token`` is, or None (unknown or revoked).

    Looked up on every request, not cached: a key revoked by the CLI (another process) stops
    working with the next request.
    """
    if not token.startswith(_TOKEN_PREFIX) or len(token) > 200:
        return None
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(_KEYS).where(_KEYS.c.digest == digest(token), _KEYS.c.revoked_at.is_(None))
            )
        ).first()
    return None if row is None else _key(row)


def _key(row: Any) -> ApiKey:
    revoked = None if row.revoked_at is None else float(row.revoked_at)
    return ApiKey(
        int(row.id), str(row.person), str(row.name), str(row.prefix), float(row.created_at), revoked
    )
