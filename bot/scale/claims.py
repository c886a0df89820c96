"""Claiming stored messages, so that two workers never answer the same message.

A worker answers message X of a conversation only after every older unanswered message of that
conversation, which makes per-conversation order hold even when Redis delivered the stream
entries out of order (a republish after a Redis restart, a partition changing hands).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from bot.storage.models import InboundRow
from bot.storage.store import SqlStore

__all__ = ["Claim", "claim_up_to"]

_IN = InboundRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Claim:
    """Rows this worker now owns, in order, and whether the target row is among them."""

    rows: list[tuple[Any, bool]]  # (row, resumed: an earlier attempt had started it)
    complete: bool


async def claim_up_to(
    store: SqlStore, conversation: str, up_to: int, me: str, live: Collection[str]
) -> Claim:
    """Claim the unanswered messages of ``conversation`` up to id ``up_to``, oldest first.

    Stops before a message another live worker is processing (it keeps the order); rows of a
    worker that is no longer alive are taken over.
    """
    async with store.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(_IN)
                .where(
                    _IN.c.conversation == conversation,
                    _IN.c.id <= up_to,
                    _IN.c.status.in_(("accepted", "processing")),
                )
                .order_by(_IN.c.id)
            )
        ).all()
    claimed: list[tuple[Any, bool]] = []
    for row in rows:
        resumed = row.status == "processing"
        if resumed and row.owner != me and row.owner in live:
            return Claim(claimed, False)
        async with store.engine.begin() as conn:
            won = await conn.execute(
                update(_IN)
                .where(
                    _IN.c.id == row.id,
                    _IN.c.status == row.status,
                    _IN.c.owner.is_not_distinct_from(row.owner),
                )
                .values(status="processing", owner=me)
            )
        if won.rowcount != 1:  # somebody else got there first
            return Claim(claimed, False)
        claimed.append((row, resumed))
    return Claim(claimed, True)
