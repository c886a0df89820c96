"""Cross-platform identity: several accounts of one person share memory and settings.

``/link`` on one account gives a short-lived, single-use code; ``/link <code>`` on another
account joins it to the first account's person. ``/unlink`` makes an account its own person
again. The map is cached in memory because ``person_of`` runs on every turn.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import Field, SQLModel

from bot.events import User

__all__ = ["IdentityLinks", "LinkCodeRow", "LinkRow"]

logger = logging.getLogger(__name__)

_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


class LinkRow(SQLModel, table=True):
    """An account that belongs to a person other than itself."""

    __tablename__ = "identity_links"

    user_key: str = Field(primary_key=True, max_length=300)
    person_id: str = Field(index=True, max_length=300)
    linked_at: float = Field(default_factory=time.time)


class LinkCodeRow(SQLModel, table=True):
    """A pending ``/link`` code: who asked for it and until when it works."""

    __tablename__ = "identity_link_codes"

    code: str = Field(primary_key=True, max_length=16)
    user_key: str = Field(index=True, max_length=300)
    expires_at: float


_LINK = LinkRow.__table__  # type: ignore[attr-defined]
_CODE = LinkCodeRow.__table__  # type: ignore[attr-defined]


class IdentityLinks:
    """The account -> person map and the link codes."""

    def __init__(self, engine: AsyncEngine, *, code_ttl: float = 600.0) -> None:
        self.engine = engine
        self.code_ttl = code_ttl
        self._person: dict[str, str] = {}
        self.announce: Callable[[], Awaitable[None]] | None = None
        """Called after a change, so other processes reload their copy (bot/scale/changes.py)."""

    async def load(self) -> None:
        """Read every link into the cache."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(_LINK.c.user_key, _LINK.c.person_id))
            self._person = {row.user_key: row.person_id for row in rows}

    def person_key(self, user_key: str) -> str:
        """The person an account belongs to (an unlinked account is its own person)."""
        return self._person.get(user_key, user_key)

    async def person_of(self, user: User) -> str:
        """``Runtime.person_of``: the person id of a user."""
        return self.person_key(user.key)

    def accounts_of(self, user_key: str) -> list[str]:
        """Every account of the person this account belongs to (itself first)."""
        person = self.person_key(user_key)
        members = {key for key, p in self._person.items() if p == person}
        members.add(person)
        members.discard(user_key)
        return [user_key, *sorted(members)]

    def people(self) -> dict[str, list[str]]:
        """Person id -> linked accounts (persons with more than one account)."""
        grouped: dict[str, list[str]] = defaultdict(list)
        for key, person in self._person.items():
            grouped[person].append(key)
        return dict(grouped)

    async def new_code(self, user: User) -> str:
        """A fresh single-use code for ``user`` (earlier codes of theirs stop working)."""
        code = "".join(secrets.choice(_ALPHABET) for _ in range(8))
        async with self.engine.begin() as conn:
            await conn.execute(delete(_CODE).where(_CODE.c.user_key == user.key))
            await conn.execute(
                insert(_CODE).values(
                    code=code, user_key=user.key, expires_at=time.time() + self.code_ttl
                )
            )
        return code

    async def redeem(self, code: str, user: User) -> str | None:
        """Join ``user`` to the person of the code's owner; return that owner's key.

        None when the code is unknown, expired, already used, or the user's own.
        """
        code = code.strip().upper()
        async with self.engine.begin() as conn:
            row = (await conn.execute(select(_CODE).where(_CODE.c.code == code))).first()
            if row is None or row.user_key == user.key:
                return None
            await conn.execute(delete(_CODE).where(_CODE.c.code == code))
            if row.expires_at < time.time():
                return None
            person = self.person_key(row.user_key)
            await conn.execute(delete(_LINK).where(_LINK.c.user_key == user.key))
            await conn.execute(
                insert(_LINK).values(user_key=user.key, person_id=person, linked_at=time.time())
            )
            # Accounts that hung on the joining account come along: the two persons merge.
            await conn.execute(
                update(_LINK).where(_LINK.c.person_id == user.key).values(person_id=person)
            )
        await self.load()
        if self.announce is not None:
            await self.announce()
        logger.info("linked %s to person %s", user.key, person)
        return str(row.user_key)

    async def unlink(self, user_key: str) -> bool:
        """Make an account its own person again; True if it was linked.

        If other accounts use this account as their person id, they stay together under the
        first of them, so unlinking one account never splits the others.
        """
        person = self.person_key(user_key)
        others = [k for k in self.accounts_of(user_key) if k != user_key]
        if not others:
            return False
        async with self.engine.begin() as conn:
            await conn.execute(delete(_LINK).where(_LINK.c.user_key == user_key))
            if person == user_key:  # the others hang on this account: re-home them
                head, *rest = others
                await conn.execute(delete(_LINK).where(_LINK.c.person_id == user_key))
                if rest:
                    await conn.execute(
                        insert(_LINK),
                        [
                            {"user_key": k, "person_id": head, "linked_at": time.time()}
                            for k in rest
                        ],
                    )
        await self.load()
        if self.announce is not None:
            await self.announce()
        return True

    async def forget(self, user_key: str) -> int:
        """Remove an account's links and codes (``/forget``)."""
        unlinked = await self.unlink(user_key)
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(_CODE).where(_CODE.c.user_key == user_key))
        return int(unlinked) + int(result.rowcount or 0)
