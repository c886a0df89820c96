"""Cross-platform identity: several accounts of one person share memory and settings.

Linking takes both accounts: ``/link`` on account A gives a short-lived, single-use code;
``/link <code>`` on account B only *asks*: A is shown B's platform and name in A's direct
chat and links the two with ``/link confirm`` (or refuses with ``/link deny``). A leaked code
therefore gives a stranger nothing until A says yes. Wrong codes are guesses: each account
gets a few per window, and all accounts together a few more, so a code cannot be brute-forced
(the commands audit every failure). The map is cached in memory because ``person_of`` runs on
every turn.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import Field, SQLModel

from opencomputer.bot.events import Address, User

__all__ = ["IdentityLinks", "LinkCodeRow", "LinkRequest", "LinkRow", "Redeemed"]

logger = logging.getLogger(__name__)

_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no O/0, I/1: and no code spells "confirm"


class LinkRow(SQLModel, table=True):
    """An account that belongs to a person other than itself."""

    __tablename__ = "identity_links"

    user_key: str = Field(primary_key=True, max_length=300)
    person_id: str = Field(index=True, max_length=300)
    linked_at: float = Field(default_factory=time.time)


class LinkCodeRow(SQLModel, table=True):
    """A ``/link`` code: who asked for it, where to ask them, and who redeemed it.

    ``joiner_key`` is empty until the code is redeemed (single use: only an empty one can be
    redeemed); from then on the row is the question waiting for the issuer's answer.
    """

    __tablename__ = "identity_link_codes"

    code: str = Field(primary_key=True, max_length=16)
    user_key: str = Field(index=True, max_length=300)
    expires_at: float
    address: str = Field(default="", max_length=600, description="The issuer's direct chat.")
    joiner_key: str = Field(default="", max_length=300)
    joiner_name: str = Field(default="", max_length=300)
    joiner_address: str = Field(default="", max_length=600)


_LINK = LinkRow.__table__  # type: ignore[attr-defined]
_CODE = LinkCodeRow.__table__  # type: ignore[attr-defined]


class Redeemed(StrEnum):
    """What became of a ``/link <code>``."""

    ASKED = "asked"  # the issuer is being asked to confirm
    UNKNOWN = "unknown"  # unknown, expired or already used: a wrong guess
    OWN = "own"  # the account's own code
    THROTTLED = "throttled"  # too many wrong codes lately: not even looked up


@dataclass(frozen=True, slots=True)
class LinkRequest:
    """A redeemed code waiting for the issuer's confirmation."""

    issuer: str
    issuer_address: str
    joiner: str
    joiner_name: str
    joiner_address: str

    @property
    def joiner_platform(self) -> str:
        """The platform of the account asking to join."""
        return self.joiner.partition(":")[0]


class IdentityLinks:
    """The account -> person map, the link codes and the wrong-code throttle."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        code_ttl: float = 600.0,
        guesses_per_account: int = 5,
        guesses_total: int = 50,
        guess_window: float = 900.0,
    ) -> None:
        self.engine = engine
        self.code_ttl = code_ttl
        self.guesses_per_account = guesses_per_account
        self.guesses_total = guesses_total
        self.guess_window = guess_window
        self._person: dict[str, str] = {}
        # Wrong codes by account and overall (in this process; a guesser spread over workers
        # meets each worker's limit, still far from the 32**8 codes there are).
        self._wrong: dict[str, deque[float]] = defaultdict(deque)
        self._wrong_all: deque[float] = deque()
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

    async def new_code(self, user: User, address: Address | None = None) -> str:
        """A fresh single-use code for ``user``, asked for in ``address`` (their direct chat).

        Earlier codes of theirs stop working, and a question still open on one is dropped.
        """
        code = "".join(secrets.choice(_ALPHABET) for _ in range(8))
        async with self.engine.begin() as conn:
            await conn.execute(delete(_CODE).where(_CODE.c.user_key == user.key))
            await conn.execute(
                insert(_CODE).values(
                    code=code,
                    user_key=user.key,
                    expires_at=time.time() + self.code_ttl,
                    address=address.key if address is not None else "",
                )
            )
        return code

    def throttled(self, user_key: str) -> bool:
        """Whether ``user_key`` (or everyone together) ran out of wrong codes for now."""
        now = time.time()
        for seen in (self._wrong[user_key], self._wrong_all):
            while seen and seen[0] < now - self.guess_window:
                seen.popleft()
        if not self._wrong[user_key]:
            self._wrong.pop(user_key, None)
        return (
            len(self._wrong.get(user_key, ())) >= self.guesses_per_account
            or len(self._wrong_all) >= self.guesses_total
        )

    def _wrong_guess(self, user_key: str) -> None:
        now = time.time()
        self._wrong[user_key].append(now)
        self._wrong_all.append(now)
        if len(self._wrong) > 1000:  # accounts that stopped guessing long ago: let them go
            for key in [k for k, seen in self._wrong.items() if seen[-1] < now - self.guess_window]:
                del self._wrong[key]

    async def redeem(
        self, code: str, user: User, address: Address | None = None
    ) -> tuple[Redeemed, LinkRequest | None]:
        """Ask the code's issuer to let ``user`` join; nothing is linked yet.

        Returns the outcome and, when ``ASKED``, the question to put to the issuer. The code is
        used up; the question stays open for ``code_ttl`` seconds.
        """
        if self.throttled(user.key):
            return Redeemed.THROTTLED, None
        code = code.strip().upper()
        now = time.time()
        async with self.engine.begin() as conn:
            row = (await conn.execute(select(_CODE).where(_CODE.c.code == code))).first()
            if row is not None and row.user_key == user.key:
                return Redeemed.OWN, None
            usable = row is not None and not row.joiner_key and row.expires_at >= now
            if usable:  # only one redeemer can win: the update needs the code still unused
                taken = await conn.execute(
                    update(_CODE)
                    .where(_CODE.c.code == code, _CODE.c.joiner_key == "")
                    .values(
                        joiner_key=user.key,
                        joiner_name=user.name,
                        joiner_address=address.key if address is not None else "",
                        expires_at=now + self.code_ttl,
                    )
                )
                usable = bool(taken.rowcount)
        if row is None or not usable:
            self._wrong_guess(user.key)
            return Redeemed.UNKNOWN, None
        request = LinkRequest(
            row.user_key, row.address, user.key, user.name, address.key if address else ""
        )
        return Redeemed.ASKED, request

    async def pending(self, issuer_key: str) -> LinkRequest | None:
        """The open question for ``issuer_key`` (a redeemed, unexpired code of theirs)."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(_CODE).where(
                        _CODE.c.user_key == issuer_key,
                        _CODE.c.joiner_key != "",
                        _CODE.c.expires_at >= time.time(),
                    )
                )
            ).first()
        if row is None:
            return None
        return LinkRequest(
            row.user_key, row.address, row.joiner_key, row.joiner_name, row.joiner_address
        )

    async def confirm(self, issuer: User) -> LinkRequest | None:
        """The issuer said yes: join the redeeming account to the issuer's person."""
        request = await self.pending(issuer.key)
        if request is None:
            return None
        person = self.person_key(issuer.key)
        async with self.engine.begin() as conn:
            gone = await conn.execute(
                delete(_CODE).where(
                    _CODE.c.user_key == issuer.key, _CODE.c.joiner_key == request.joiner
                )
            )
            if not gone.rowcount:
                return None  # answered meanwhile (another process)
            await conn.execute(delete(_LINK).where(_LINK.c.user_key == request.joiner))
            await conn.execute(
                insert(_LINK).values(
                    user_key=request.joiner, person_id=person, linked_at=time.time()
                )
            )
            # Accounts that hung on the joining account come along: the two persons merge.
            await conn.execute(
                update(_LINK).where(_LINK.c.person_id == request.joiner).values(person_id=person)
            )
        await self.load()
        if self.announce is not None:
            await self.announce()
        logger.info("linked %s to person %s", request.joiner, person)
        return request

    async def deny(self, issuer: User) -> LinkRequest | None:
        """The issuer said no: drop the question (the code is spent)."""
        request = await self.pending(issuer.key)
        if request is None:
            return None
        async with self.engine.begin() as conn:
            await conn.execute(delete(_CODE).where(_CODE.c.user_key == issuer.key))
        return request

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
        """Remove an account's links and codes, issued or redeemed (``/forget``)."""
        unlinked = await self.unlink(user_key)
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(_CODE).where(
                    (_CODE.c.user_key == user_key) | (_CODE.c.joiner_key == user_key)
                )
            )
        return int(unlinked) + int(result.rowcount or 0)
