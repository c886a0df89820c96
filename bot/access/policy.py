"""Who may talk to the agent, and who is an admin.

Grants live in the database and are cached in memory, because ``Runtime.is_admin`` is called
synchronously on every command; every change goes through this class, which keeps the cache in
step; other processes reload theirs when told (``bot/scale/changes.py``).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from opencomputer.bot.access.models import GrantRow, PairingRow
from opencomputer.bot.config import DmPolicy, Settings
from opencomputer.bot.events import Address, ChatKind, Command, Message, Reaction, User

__all__ = ["ALPHABET", "AccessPolicy", "Pairing", "Verdict", "chat_subject", "user_subject"]

logger = logging.getLogger(__name__)

_GRANT = GrantRow.__table__  # type: ignore[attr-defined]
_PAIR = PairingRow.__table__  # type: ignore[attr-defined]
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: codes get read aloud and retyped
OWNER_PLATFORM = "terminal"


class Verdict(StrEnum):
    """What to do with an inbound event."""

    ALLOW = "allow"
    PAIR = "pair"  # unknown user under the pairing policy: hand out a code
    REFUSE = "refuse"  # unknown user under the allow-list policy: say so once
    DROP = "drop"  # denied user, or a group that is not allowed: stay silent


@dataclass(frozen=True, slots=True)
class Pairing:
    """A pairing code and whether it was just created (only new codes are announced)."""

    code: str
    user_key: str
    user_name: str
    address: Address
    new: bool


def user_subject(user_key: str) -> str:
    """Grant subject of a user (``platform:id``)."""
    return f"user:{user_key}"


def chat_subject(chat_key: str) -> str:
    """Grant subject of a chat (``platform:chat_id``)."""
    return f"chat:{chat_key}"


class AccessPolicy:
    """Decides, per event, whether it goes on; holds grants and pairing codes."""

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        *,
        accounts_of: Callable[[str], list[str]] | None = None,
        code_ttl: float = 3600.0,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.code_ttl = code_ttl
        self.accounts_of: Callable[[str], list[str]] = accounts_of or (lambda key: [key])
        self._roles: dict[str, str] = {}
        self.announce: Callable[[], Awaitable[None]] | None = None
        """Called after a change, so other processes reload their copy (bot/scale/changes.py)."""

    async def load(self) -> None:
        """Read every grant into the cache."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(_GRANT.c.subject, _GRANT.c.role))
            self._roles = {row.subject: row.role for row in rows}

    async def reload_subject(self, subject: str) -> str | None:
        """Read one subject's grant from the database into the cache; its role, if any.

        A grant another process stored (``opencomputer keys create`` while the server runs,
        without Redis to announce it) reaches this cache only at the next :meth:`load`; the
        access rule calls this before treating someone as a stranger, so they need no restart.
        """
        async with self.engine.connect() as conn:
            role = await conn.scalar(select(_GRANT.c.role).where(_GRANT.c.subject == subject))
        if role is None:
            self._roles.pop(subject, None)
        else:
            self._roles[subject] = str(role)
        return None if role is None else str(role)

    # --- questions -----------------------------------------------------------------------
    def role(self, subject: str) -> str | None:
        """The stored role of a subject, if any."""
        return self._roles.get(subject)

    def is_owner_or_configured_admin(self, user: User) -> bool:
        """Admins nobody can demote from chat: the terminal owner and ``OC_ADMINS``."""
        return user.platform == OWNER_PLATFORM or user.key in self.settings.admins

    def is_admin(self, user: User) -> bool:
        """``OC_ADMINS``, the terminal owner, or an admin granted with ``/admins add``."""
        return (
            self.is_owner_or_configured_admin(user)
            or self._roles.get(user_subject(user.key)) == "admin"
        )

    def is_denied(self, user: User) -> bool:
        """Whether this account was denied (linking does not spread a denial)."""
        return self._roles.get(user_subject(user.key)) == "denied"

    def is_allowed(self, user: User) -> bool:
        """Allowed directly, or linked to an account that is (linking proves it is one person)."""
        if self.is_admin(user):
            return True
        if self.is_denied(user):
            return False
        return any(
            self._roles.get(user_subject(key)) in ("allowed", "admin")
            or key in self.settings.admins
            or key.startswith(f"{OWNER_PLATFORM}:")
            for key in self.accounts_of(user.key)
        )

    def chat_allowed(self, chat_key: str) -> bool:
        """Whether a group chat or room was allowed with ``/allow`` there."""
        return self._roles.get(chat_subject(chat_key)) == "allowed"

    def check(self, event: Message | Reaction | Command) -> Verdict:
        """The verdict for one inbound event."""
        user = event.user
        if self.is_admin(user):
            return Verdict.ALLOW
        if self.is_denied(user):
            return Verdict.DROP
        policy = self.settings.dm_policy
        if policy is DmPolicy.OPEN:
            return Verdict.ALLOW
        if event.chat.kind is ChatKind.GROUP:
            return Verdict.ALLOW if self.chat_allowed(event.chat.key) else Verdict.DROP
        if self.is_allowed(user):
            return Verdict.ALLOW
        if isinstance(event, Reaction):
            return Verdict.DROP
        return Verdict.PAIR if policy is DmPolicy.PAIRING else Verdict.REFUSE

    def admins(self) -> list[tuple[str, str]]:
        """Every admin as (user key, where it comes from)."""
        found = [(key, "OC_ADMINS") for key in self.settings.admins]
        found += [
            (subject.removeprefix("user:"), "granted")
            for subject, role in sorted(self._roles.items())
            if role == "admin" and subject.startswith("user:")
        ]
        return found

    def grants(self) -> dict[str, str]:
        """A copy of every stored grant."""
        return dict(self._roles)

    # --- changes -------------------------------------------------------------------------
    async def grant(self, subject: str, role: str, *, by: str, note: str = "") -> None:
        """Store a role for a subject (replacing any earlier one)."""
        async with self.engine.begin() as conn:
            await conn.execute(delete(_GRANT).where(_GRANT.c.subject == subject))
            await conn.execute(
                insert(_GRANT).values(
                    subject=subject, role=role, granted_by=by, note=note, at=time.time()
                )
            )
        self._roles[subject] = role
        if self.announce is not None:
            await self.announce()

    async def revoke(self, subject: str) -> bool:
        """Remove a subject's grant; True if there was one."""
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(_GRANT).where(_GRANT.c.subject == subject))
        self._roles.pop(subject, None)
        if self.announce is not None:
            await self.announce()
        return bool(result.rowcount)

    # --- pairing -------------------------------------------------------------------------
    async def pair(self, user: User, address: Address) -> Pairing:
        """The user's live pairing code, created if needed (``new`` says which)."""
        now = time.time()
        async with self.engine.begin() as conn:
            await conn.execute(delete(_PAIR).where(_PAIR.c.expires_at < now))
            row = (await conn.execute(select(_PAIR).where(_PAIR.c.user_key == user.key))).first()
            if row is not None:
                return Pairing(row.code, user.key, row.user_name, Address.parse(row.address), False)
            code = "".join(secrets.choice(ALPHABET) for _ in range(6))
            await conn.execute(
                insert(_PAIR).values(
                    code=code,
                    user_key=user.key,
                    user_name=user.name,
                    address=address.key,
                    created_at=now,
                    expires_at=now + self.code_ttl,
                )
            )
        logger.info("pairing code issued to %s", user.key)
        return Pairing(code, user.key, user.name, address, True)

    async def redeem(self, code: str) -> Pairing | None:
        """Use a pairing code once; None when it is unknown or expired."""
        code = code.strip().upper()
        async with self.engine.begin() as conn:
            row = (await conn.execute(select(_PAIR).where(_PAIR.c.code == code))).first()
            if row is None:
                return None
            await conn.execute(delete(_PAIR).where(_PAIR.c.code == code))
        if row.expires_at < time.time():
            return None
        return Pairing(row.code, row.user_key, row.user_name, Address.parse(row.address), False)

    async def forget_user(self, user_key: str) -> int:
        """Drop a user's pending pairing codes (``/forget``)."""
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(_PAIR).where(_PAIR.c.user_key == user_key))
        return int(result.rowcount or 0)
