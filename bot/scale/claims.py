"""Claiming stored messages, so that two workers never answer the same message.

A worker answers message X of a conversation only after every older unanswered message of that
conversation, which makes per-conversation order hold even when Redis delivered the stream
entries out of order (a republish after a Redis restart, a partition changing hands).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from opencomputer.bot.storage.models import InboundRow
from opencomputer.bot.storage.store import SqlStore
from opencomputer.bot.storage.writer import Tx

__all__ = ["Claim", "claim_up_to", "touch"]

_IN = InboundRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Claim:
    """Rows this worker now owns, in order, and whether the target row is among them."""

    rows: list[tuple[Any, bool]]  # (row, resumed: an earlier attempt had started it; a row
    # whose status is "replying" only needs its recorded reply delivered)
    complete: bool


_UNANSWERED = (
    select(_IN)
    .where(
        _IN.c.conversation == bindparam("conv"),
        _IN.c.id <= bindparam("up_to"),
        or_(_IN.c.status == "accepted", _IN.c.status == "processing", _IN.c.status == "replying"),
    )
    .order_by(_IN.c.id)
)
_TAKE = (  # compare and set: changes nothing when another worker got there first
    update(_IN)
    .where(
        _IN.c.id == bindparam("iid"),
        _IN.c.status == bindparam("was"),
        _IN.c.owner.is_not_distinct_from(bindparam("prev")),
    )
    .values(status=bindparam("now_status"), owner=bindparam("me"), claimed_at=bindparam("at"))
)
_OLDER = _IN.alias("older")
_TAKE_ONLY = (  # the usual case in one statement: the message is new and nothing waits before it
    update(_IN)
    .where(
        _IN.c.id == bindparam("up_to"),
        _IN.c.conversation == bindparam("conv"),
        _IN.c.status == "accepted",
        ~exists().where(
            _OLDER.c.conversation == bindparam("conv"),
            _OLDER.c.id < bindparam("up_to"),
            _OLDER.c.status.in_(("accepted", "processing", "replying")),
        ),
    )
    .values(status="processing", owner=bindparam("me"), claimed_at=bindparam("at"))
    .returning(*_IN.c)
)


async def claim_up_to(
    store: SqlStore, conversation: str, up_to: int, me: str, stale_after: float
) -> Claim:
    """Claim the unanswered messages of ``conversation`` up to id ``up_to``, oldest first.

    Stops before a message another worker is processing (it keeps the order) unless that worker
    showed no sign of life (``claimed_at``) for ``stale_after`` seconds: then it is taken over.
    Liveness lives in the database, not Redis, so a Redis restart cannot make a busy worker
    look dead. One transaction: this runs before every turn a worker answers.

    On PostgreSQL the usual case (a new message, nothing older unanswered) is first tried as
    one autocommitted ``UPDATE ... RETURNING``: one round trip instead of four (BEGIN, SELECT,
    UPDATE, COMMIT). It changes a row only when the full claim would take exactly that row, so
    anything else (older messages waiting, a retry, a race lost) falls through to the full
    transaction, which decides as before.
    """
    if store.engine.dialect.name == "postgresql":
        async with _autocommit(store).connect() as conn:
            params = {"conv": conversation, "up_to": up_to, "me": me, "at": time.time()}
            row = (await conn.execute(_TAKE_ONLY, params)).first()
        if row is not None:
            return Claim([(row, False)], True)
    return await store.transact(_claim, conversation, up_to, me, stale_after)


_AUTOCOMMIT: weakref.WeakKeyDictionary[SqlStore, AsyncEngine] = weakref.WeakKeyDictionary()


def _autocommit(store: SqlStore) -> AsyncEngine:
    """The store's engine with autocommit (same pool): a single statement needs no BEGIN and
    COMMIT. Made once per engine (making one costs ~0.2 ms).
    """
    engine = store.engine
    found = _AUTOCOMMIT.get(store)
    if found is None or found.sync_engine.pool is not engine.sync_engine.pool:
        found = _AUTOCOMMIT[store] = engine.execution_options(isolation_level="AUTOCOMMIT")
    return found


def _claim(tx: Tx, conversation: str, up_to: int, me: str, stale_after: float) -> Claim:
    now = time.time()
    claimed: list[tuple[Any, bool]] = []
    for row in tx.all(_UNANSWERED, {"conv": conversation, "up_to": up_to}):
        resumed = row.status != "accepted"
        alive = (row.claimed_at or 0) > now - stale_after
        if resumed and row.owner != me and alive:
            return Claim(claimed, False)
        changed = tx.execute(
            _TAKE,
            {
                "iid": row.id,
                "was": row.status,
                "prev": row.owner,
                "now_status": "replying" if row.status == "replying" else "processing",
                "me": me,
                "at": now,
            },
        )
        if changed != 1:  # somebody else got there first
            return Claim(claimed, False)
        claimed.append((row, resumed))
    return Claim(claimed, True)


async def touch(store: SqlStore, ids: Collection[int], me: str) -> None:
    """Refresh ``claimed_at`` of the rows this worker is answering (its sign of life)."""
    if not ids:
        return
    engine = store.engine
    if engine.dialect.name == "postgresql":  # one statement: no BEGIN and COMMIT round trips
        engine = _autocommit(store)
    async with engine.begin() as conn:
        await conn.execute(
            update(_IN)
            .where(_IN.c.id.in_(list(ids)), _IN.c.owner == me, _IN.c.status == "processing")
            .values(claimed_at=time.time())
        )
