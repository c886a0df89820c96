"""Claiming stored messages, so that two workers never answer the same message.

A worker answers message X of a conversation only after every older unanswered message of that
conversation, which makes per-conversation order hold even when Redis delivered the stream
entries out of order (a republish after a Redis restart, a partition changing hands).
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, or_, select, update

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


async def claim_up_to(
    store: SqlStore, conversation: str, up_to: int, me: str, stale_after: float
) -> Claim:
    """Claim the unanswered messages of ``conversation`` up to id ``up_to``, oldest first.

    Stops before a message another worker is processing (it keeps the order) unless that worker
    showed no sign of life (``claimed_at``) for ``stale_after`` seconds: then it is taken over.
    Liveness lives in the database, not Redis, so a Redis restart cannot make a busy worker
    look dead. One transaction: this runs before every turn a worker answers.
    """
    return await store.transact(_claim, conversation, up_to, me, stale_after)


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
    async with store.engine.begin() as conn:
        await conn.execute(
            update(_IN)
            .where(_IN.c.id.in_(list(ids)), _IN.c.owner == me, _IN.c.status == "processing")
            .values(claimed_at=time.time())
        )
