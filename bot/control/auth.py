"""Login links and sessions of the control room.

A login link carries a random token (32 bytes) in its URL *fragment* (``/ui/login#<token>``):
browsers never send a fragment to the server, so it stays out of access logs, proxies and
``Referer`` headers, and a messenger's link preview (which fetches the URL) cannot spend it.
The page posts the token; it is spent in one conditional UPDATE (``used_at IS NULL AND
expires_at > now``), so two racing requests cannot both log in.

A session id is another random token, sent back only as an ``HttpOnly`` cookie; the CSRF token
is a hash of the session id (``sha256("csrf:" + id)``), so it is tied to the session, needs no
storage, is the same in every gateway process, and cannot be computed by a page that cannot
read the cookie; the cookie alone (which a cross-site request might carry) changes nothing.
Only digests of links and sessions are stored (bot/control/models.py).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from opencomputer.bot.control.models import LoginLinkRow, SessionRow
from opencomputer.bot.events import User

__all__ = ["LINK_TTL", "SESSION_TTL", "Admin", "Logins", "digest"]

LINK_TTL = 600.0
"""Seconds a login link stays valid."""
SESSION_TTL = 12 * 3600.0
"""Seconds a session lasts (then the admin asks for a new link)."""
KEEP = 86400.0
"""Seconds spent, expired and ended rows are kept (to read what happened) before pruning."""

_LINKS = LoginLinkRow.__table__  # type: ignore[attr-defined]
_SESSIONS = SessionRow.__table__  # type: ignore[attr-defined]


def digest(secret: str) -> str:
    """The stored form of a link token or session id."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class Admin:
    """Who a session acts as: an admin account (``platform:id``) and its display name."""

    key: str
    name: str

    @property
    def user(self) -> User:
        """The account as the core knows it (what ``decide`` and ``is_admin`` take)."""
        platform, _, user_id = self.key.partition(":")
        return User(platform, user_id, self.name)


class Logins:
    """Issues and spends login links; opens, checks and ends sessions."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def issue_link(self, user: User, *, ttl: float = LINK_TTL) -> str:
        """A new single-use token for ``user`` (only its digest is stored)."""
        token = secrets.token_urlsafe(32)
        now = time.time()
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(_LINKS).values(
                    digest=digest(token),
                    user_key=user.key,
                    user_name=user.name or user.id,
                    created_at=now,
                    expires_at=now + ttl,
                )
            )
        return token

    async def spend_link(self, token: str) -> Admin | None:
        """The admin a valid, unspent, unexpired token names; spends it. None otherwise."""
        if not token or len(token) > 128:
            return None
        now, key = time.time(), digest(token)
        async with self.engine.begin() as conn:
            spent = await conn.execute(
                update(_LINKS)
                .where(_LINKS.c.digest == key)
                .where(_LINKS.c.used_at.is_(None))
                .where(_LINKS.c.expires_at > now)
                .values(used_at=now)
            )
            if spent.rowcount != 1:
                return None
            row = (await conn.execute(select(_LINKS).where(_LINKS.c.digest == key))).one()
        return Admin(row.user_key, row.user_name)

    async def open_session(self, admin: Admin, *, ttl: float = SESSION_TTL) -> str:
        """A fresh session id (never one the browser brought: no session fixation)."""
        session = secrets.token_urlsafe(32)
        now = time.time()
        async with self.engine.begin() as conn:
            await self._prune(conn, now)
            await conn.execute(
                insert(_SESSIONS).values(
                    digest=digest(session),
                    user_key=admin.key,
                    user_name=admin.name,
                    created_at=now,
                    expires_at=now + ttl,
                )
            )
        return session

    @staticmethod
    async def _prune(conn: Any, now: float) -> None:
        """Drop links and sessions dead for a day (a login is rare: this is the cheap moment)."""
        old = now - KEEP
        await conn.execute(delete(_LINKS).where(_LINKS.c.expires_at < old))
        await conn.execute(
            delete(_SESSIONS).where(or_(_SESSIONS.c.expires_at < old, _SESSIONS.c.ended_at < old))
        )

    async def session(self, session: str | None) -> Admin | None:
        """The admin of a live session, or None (missing, unknown, expired, logged out)."""
        if not session or len(session) > 128:
            return None
        query = (
            select(_SESSIONS.c.user_key, _SESSIONS.c.user_name)
            .where(_SESSIONS.c.digest == digest(session))
            .where(_SESSIONS.c.ended_at.is_(None))
            .where(_SESSIONS.c.expires_at > time.time())
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else Admin(row.user_key, row.user_name)

    async def end_session(self, session: str) -> None:
        """Log out: the session id is refused from now on."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(_SESSIONS)
                .where(_SESSIONS.c.digest == digest(session))
                .values(ended_at=time.time())
            )

    def csrf(self, session: str) -> str:
        """The CSRF token of a session (what the page sends as ``X-CSRF-Token``)."""
        return digest(f"csrf:{session}")

    def csrf_ok(self, session: str, token: str | None) -> bool:
        """Whether ``token`` belongs to this session (constant time)."""
        expected = self.csrf(session).encode()
        return bool(token) and hmac.compare_digest(
            (token or "").encode("ascii", "replace"), expected
        )
