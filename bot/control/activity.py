"""Turns and errors per minute over the last hour, for the overview's charts.

Computed from the database rather than sampled from the metrics registry: the inbound and
reply rows already carry timestamps, so the numbers survive a restart, count every process of
a scale-out deployment (a registry is per process), and need no background job. A *turn* is a
reply the agent recorded (``replies.created_at``, an apology for a failed turn included); an
*error* is a reply that carries a failure (model, input, crash) or could not be delivered, or
a message marked failed that no such reply stands for (counted once, not twice).

The time columns have no index, so the rows are read newest first by primary key (ids grow
with time) in chunks, stopping at the first chunk that reaches past the hour: the cost follows
the last hour's traffic, not the table's size.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlalchemy import func, select

from opencomputer.bot.control.auth import Admin
from opencomputer.bot.control.web import ControlWeb, ok
from opencomputer.bot.storage.models import InboundRow, ReplyRow

if TYPE_CHECKING:
    from opencomputer.bot.features import Host

__all__ = ["MINUTES", "ActivityChart"]

_IN = InboundRow.__table__  # type: ignore[attr-defined]
_REPLY = ReplyRow.__table__  # type: ignore[attr-defined]
MINUTES = 60
"""How many one-minute buckets the chart shows (the last hour)."""
CHUNK = 2000
"""Rows read per step back in time."""


async def since(
    conn: Any, table: Any, at: Any, start: float, *columns: Any, chunk: int = CHUNK
) -> list[Any]:
    """Rows of ``table`` whose time column ``at`` is at least ``start``, read back by id."""
    top = await conn.scalar(select(func.max(table.c.id)))
    found: list[Any] = []
    while top is not None and top > 0:
        rows = list(
            await conn.execute(
                select(table.c.id, at, *columns)
                .where(table.c.id > top - chunk, table.c.id <= top)
                .order_by(table.c.id.desc())
            )
        )
        found += [row for row in rows if row[1] >= start]
        if not rows or min(row[1] for row in rows) < start:
            break
        top -= chunk
    return found


class ActivityChart:
    """``GET /ui/api/activity``: ``{"start", "step", "turns": [..], "errors": [..]}``."""

    def __init__(self, app: Host, web_: ControlWeb) -> None:
        self.app = app
        self.web = web_

    def routes(self) -> list[web.RouteDef]:
        """One guarded read-only route."""
        return [web.get("/ui/api/activity", self.web.guard(self.activity))]

    async def series(self, now: float | None = None) -> dict[str, object]:
        """Counts per minute, oldest first; the last bucket is the minute now running."""
        now = time.time() if now is None else now
        end = (int(now) // 60 + 1) * 60
        start = end - MINUTES * 60
        turns, errors = [0] * MINUTES, [0] * MINUTES
        async with self.app.store.engine.connect() as conn:
            replies = await since(
                conn,
                _REPLY,
                _REPLY.c.created_at,
                start,
                _REPLY.c.failure,
                _REPLY.c.status,
                _REPLY.c.inbound_id,
            )
            counted: set[int] = set()  # messages whose failure a reply already stands for
            for r in replies:
                slot = int((r.created_at - start) // 60)
                failed = r.failure is not None or r.status == "failed"
                if failed and r.inbound_id is not None:
                    counted.add(int(r.inbound_id))
                if 0 <= slot < MINUTES:
                    turns[slot] += 1
                    errors[slot] += failed
            messages = await since(conn, _IN, _IN.c.received_at, start, _IN.c.status)
            for message in messages:
                slot = int((message.received_at - start) // 60)
                if message.status != "failed" or int(message.id) in counted:
                    continue
                if 0 <= slot < MINUTES:
                    errors[slot] += 1
        return {"start": start, "step": 60, "turns": turns, "errors": errors}

    async def activity(self, _request: web.Request, _admin: Admin) -> web.StreamResponse:
        """The chart data."""
        return ok(await self.series())
