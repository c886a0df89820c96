"""Tables of the control room (revision ``0009_control_room``): login links and sessions.

Both hold only the SHA-256 digest of their secret: a database dump (a backup, a read-only
replica) lets nobody log in. The secrets carry 256 bits of entropy, so a fast hash is enough
and lets every request be checked by one indexed lookup (see bot/apikeys/keys.py).
"""

from __future__ import annotations

import time

from sqlmodel import Field, SQLModel

__all__ = ["LoginLinkRow", "SessionRow"]


def _now() -> float:
    return time.time()


class LoginLinkRow(SQLModel, table=True):
    """A one-time login link: valid until ``expires_at``, spent once ``used_at`` is set."""

    __tablename__ = "control_links"

    id: int | None = Field(default=None, primary_key=True)
    digest: str = Field(unique=True, index=True, max_length=64)
    user_key: str = Field(max_length=300)
    user_name: str = Field(default="", max_length=255)
    created_at: float = Field(default_factory=_now)
    expires_at: float
    used_at: float | None = Field(default=None)


class SessionRow(SQLModel, table=True):
    """A browser's session: the admin it acts as, until it expires or logs out."""

    __tablename__ = "control_sessions"

    id: int | None = Field(default=None, primary_key=True)
    digest: str = Field(unique=True, index=True, max_length=64)
    user_key: str = Field(max_length=300)
    user_name: str = Field(default="", max_length=255)
    created_at: float = Field(default_factory=_now)
    expires_at: float
    ended_at: float | None = Field(default=None)
