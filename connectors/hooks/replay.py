"""The delivery memory: a signed request is acted on once, however often it is sent.

Keys (the signature, and the sender's delivery id when it gives one) are stored hashed in the
``seen_command`` table that already remembers command event ids (``bot/dedupe.py``): platform
``hook``, one insert per request, so a replay sent to another gateway of a scale-out deployment
is caught too, and rows are kept as long as command ids are. A delivery that fails is
forgotten again, so the sender's retry is not mistaken for a replay.

It also tells whether the runtime stored a hook's message: an inbound rule (access control,
a rate limit) may drop it, and the sender must then hear so rather than 202.

Without a store (the connector not yet given one) the memory is this process's own.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from typing import TYPE_CHECKING, Literal

from sqlalchemy import bindparam, delete, select
from sqlalchemy.exc import IntegrityError

from opencomputer.bot.dedupe import KEEP, SeenCommandRow
from opencomputer.bot.storage.models import InboundRow

if TYPE_CHECKING:
    from opencomputer.bot.storage.store import SqlStore
    from opencomputer.bot.storage.writer import Tx

__all__ = ["DeliveryMemory"]

PLATFORM = "hook"
_T = SeenCommandRow.__table__  # type: ignore[attr-defined]
_INBOUND = InboundRow.__table__  # type: ignore[attr-defined]
_PRUNE = delete(_T).where(_T.c.at < bindparam("cutoff"))
_FIND = select(_T.c.at).where(
    _T.c.platform == bindparam("platform"), _T.c.event_hash == bindparam("hash")
)
_FORGET = delete(_T).where(
    _T.c.platform == bindparam("platform"), _T.c.event_hash == bindparam("hash")
)


STALE = 120.0
"""Seconds after which an unconfirmed claim is taken for one whose process died mid-delivery:
the sender's retry then delivers (at least once) instead of being told it was done."""

Claim = Literal["new", "done", "busy"]


def _hash(hook: str, key: str) -> str:
    return hashlib.sha256(f"{hook}\0{key}".encode("utf-8", "replace")).hexdigest()


def _done(digest: str) -> str:
    return hashlib.sha256(f"done\0{digest}".encode()).hexdigest()


def _claim(tx: Tx, hashes: list[str], now: float) -> Claim:
    """One transaction: done -> "done"; claimed lately -> "busy"; else claim (again)."""
    tx.execute(_PRUNE, {"cutoff": now - KEEP})
    for digest in hashes:
        if tx.first(_FIND, {"platform": PLATFORM, "hash": _done(digest)}) is not None:
            return "done"
    for digest in hashes:
        row = tx.first(_FIND, {"platform": PLATFORM, "hash": digest})
        if row is not None and row[0] >= now - STALE:  # sqlite3.Row or SQLAlchemy Row
            return "busy"
    _forget(tx, hashes)  # stale claims of a delivery that never finished
    tx.insert_many(_T, [{"platform": PLATFORM, "event_hash": h, "at": now} for h in hashes])
    return "new"


def _confirm(tx: Tx, hashes: list[str], now: float) -> None:
    rows = [{"platform": PLATFORM, "event_hash": _done(h), "at": now} for h in hashes]
    tx.insert_many(_T, rows)


def _forget(tx: Tx, hashes: list[str]) -> None:
    for value in hashes:  # one statement per key: the SQLite writer binds no expanding lists
        tx.execute(_FORGET, {"platform": PLATFORM, "hash": value})


class DeliveryMemory:
    """Claims, confirms and releases delivery keys, in the database when there is one.

    A request first claims its keys (``new``: deliver it), then confirms them once delivered;
    a copy finds them ``done`` (answered as a duplicate) or, while the first is under way,
    ``busy``. A claim never confirmed (the process died mid-delivery) counts as ``busy`` for
    :data:`STALE` seconds and is then claimed again by the sender's retry.
    """

    def __init__(self, store: SqlStore | None = None) -> None:
        self.store = store
        self._local: dict[str, float] = {}

    async def claim(self, hook: str, keys: list[str]) -> Claim:
        """Claim every key of one request (see the class docstring for the answers)."""
        hashes = [_hash(hook, k) for k in keys]
        now = time.time()
        if self.store is None:
            self._local = {h: at for h, at in self._local.items() if at >= now - KEEP}
            if any(_done(h) in self._local for h in hashes):
                return "done"
            if any(self._local.get(h, 0.0) >= now - STALE for h in hashes):
                return "busy"
            self._local.update(dict.fromkeys(hashes, now))
            return "new"
        try:
            return await self.store.transact(_claim, hashes, now)
        except (IntegrityError, sqlite3.IntegrityError):
            return "busy"  # another gateway claimed it in the same instant

    async def confirm(self, hook: str, keys: list[str]) -> None:
        """Mark a request delivered: every later copy is a duplicate."""
        hashes = [_hash(hook, k) for k in keys]
        if self.store is None:
            self._local.update(dict.fromkeys((_done(h) for h in hashes), time.time()))
            return
        await self.store.transact(_confirm, hashes, time.time())

    async def stored(self, event_id: str) -> bool:
        """Whether the runtime stored the hook message ``event_id`` (True without a store)."""
        if self.store is None:
            return True
        query = select(_INBOUND.c.id).where(
            _INBOUND.c.platform == PLATFORM, _INBOUND.c.event_id == event_id
        )
        async with self.store.engine.connect() as conn:
            return (await conn.execute(query)).first() is not None

    async def release(self, hook: str, keys: list[str]) -> None:
        """Forget keys whose delivery failed: the sender's retry must get through."""
        hashes = [_hash(hook, k) for k in keys]
        if self.store is None:
            for h in hashes:
                self._local.pop(h, None)
            return
        await self.store.transact(_forget, hashes)
