"""The scheduler: one task that sleeps until the next schedule is due, then fires it.

Firing is exactly-once across restarts:

* a reminder advances its schedule and records its text in the reply outbox in one
  transaction, then sends it (the runtime re-sends outbox rows a crash left pending);
* a task is emitted as an inbound message whose event id names the schedule and the
  occurrence, so the runtime's dedupe drops a second firing of the same occurrence.

Runs missed while the server was down are not dropped: each overdue schedule fires once at
start-up, saying it is late (and how many recurring runs were missed), then moves on to its
next future time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import func, insert, select, update

from opencomputer.bot.events import Address, Chat, ChatKind, Message, User
from opencomputer.bot.schedules.models import ScheduleRow
from opencomputer.bot.schedules.spec import catch_up, zone
from opencomputer.bot.storage.models import ReplyRow

__all__ = ["Scheduler"]

logger = logging.getLogger(__name__)

_SCHED = ScheduleRow.__table__  # type: ignore[attr-defined]
_REPLY = ReplyRow.__table__  # type: ignore[attr-defined]


class Scheduler:
    """Fires due schedules through the runtime; ``start``/``stop`` bound its task."""

    def __init__(
        self, runtime: Any, *, grace: float = 60.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.runtime = runtime
        self.grace = grace  # later than this at start-up counts as missed
        self.clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.fired: list[tuple[int, float]] = []  # (schedule id, occurrence) in this process
        self.announce: Callable[[], Awaitable[None]] | None = None
        """Tells the process whose scheduler runs (a gateway) that schedules changed."""

    @property
    def engine(self) -> Any:
        """The database engine the runtime's store uses."""
        return self.runtime.store.engine

    async def start(self) -> None:
        """Start firing (missed runs first)."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="scheduler")

    async def stop(self) -> None:
        """Stop the task; schedules stay in the database for the next start."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake(self) -> None:
        """Re-read the schedules (one was added or cancelled)."""
        self._wake.set()

    async def woken(self) -> None:
        """:meth:`wake`, for another process's announcement."""
        self.wake()

    async def _changed(self) -> None:
        self.wake()
        if self.announce is not None:  # added on a worker: the gateway's scheduler must know
            await self.announce()

    async def add(self, values: dict[str, Any]) -> int:
        """Store a new schedule and wake the loop."""
        async with self.engine.begin() as conn:
            result = await conn.execute(insert(_SCHED).values(**values))
        await self._changed()
        return int(result.inserted_primary_key[0])

    async def cancel(self, person: str, schedule_id: int) -> bool:
        """Cancel one of the person's active schedules."""
        async with self.engine.begin() as conn:
            changed = await conn.execute(
                update(_SCHED)
                .where(
                    _SCHED.c.id == schedule_id,
                    _SCHED.c.person == person,
                    _SCHED.c.status == "active",
                )
                .values(status="cancelled")
            )
        await self._changed()
        return bool(changed.rowcount)

    async def active(self, person: str | None = None) -> list[Any]:
        """Active schedules (of one person), soonest first."""
        query = select(_SCHED).where(_SCHED.c.status == "active").order_by(_SCHED.c.next_run)
        if person is not None:
            query = query.where(_SCHED.c.person == person)
        async with self.engine.connect() as conn:
            return list(await conn.execute(query))

    # --- the loop ----------------------------------------------------------------------
    async def _loop(self) -> None:
        try:
            await self.run_due(startup=True)
        except Exception:
            logger.exception("catching up missed schedules failed")
        while True:
            self._wake.clear()
            soonest = await self._soonest()
            delay = 60.0 if soonest is None else min(60.0, max(0.0, soonest - self.clock()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            try:
                await self.run_due()
            except Exception:
                logger.exception("firing schedules failed; retrying in a minute at most")

    async def _soonest(self) -> float | None:
        async with self.engine.connect() as conn:
            value = await conn.scalar(
                select(func.min(_SCHED.c.next_run)).where(_SCHED.c.status == "active")
            )
        return float(value) if value is not None else None

    async def run_due(self, *, startup: bool = False) -> int:
        """Fire every schedule due now; at start-up, overdue ones are reported as missed."""
        now = self.clock()
        count = 0
        async with self.engine.connect() as conn:
            due = list(
                await conn.execute(
                    select(_SCHED)
                    .where(_SCHED.c.status == "active", _SCHED.c.next_run <= now)
                    .order_by(_SCHED.c.next_run)
                )
            )
        for row in due:
            missed = startup and now - row.next_run > self.grace
            await self._fire(row, now, missed)
            count += 1
        return count

    async def _fire(self, row: Any, now: float, missed: bool) -> None:
        occurrence = float(row.next_run)
        skipped = 0
        following: float | None = None
        if row.repeat:  # count the runs lost while down; fire only once; None: series over
            following, skipped = catch_up(row.repeat, row.tz, occurrence, now)
        note = ""
        if missed:
            when = datetime.fromtimestamp(occurrence, zone(row.tz)).strftime("%a %d %b %H:%M %Z")
            note = f" (this was due {when}, while I was offline"
            note += f"; {skipped + 1} runs were missed)" if skipped else ")"
        advance = {
            "next_run": following if following is not None else occurrence,
            "status": "active" if following is not None else "done",
            "last_run": now,
            "runs": row.runs + 1,
        }
        address = Address(row.platform, row.chat_id, row.thread_id)
        if row.action == "run":
            await self._run_task(row, occurrence, note)
            async with self.engine.begin() as conn:
                await conn.execute(update(_SCHED).where(_SCHED.c.id == row.id).values(**advance))
        else:
            text = f"⏰ Reminder: {row.text}{note}"
            async with self.engine.begin() as conn:
                claimed = await conn.execute(
                    update(_SCHED)
                    .where(
                        _SCHED.c.id == row.id,
                        _SCHED.c.next_run == occurrence,
                        _SCHED.c.status == "active",
                    )
                    .values(**advance)
                )
                if not claimed.rowcount:
                    return  # another process fired it
                result = await conn.execute(
                    insert(_REPLY).values(
                        conversation=address.key,
                        platform=row.platform,
                        chat_id=row.chat_id,
                        thread_id=row.thread_id,
                        text=text,
                        status="pending",
                        run_id=f"schedule:{row.id}",
                        created_at=now,
                    )
                )
            await self._deliver(int(result.inserted_primary_key[0]), address, text)
        self.fired.append((int(row.id), occurrence))
        logger.info("schedule %s fired (%s)%s", row.id, row.action, " late" if missed else "")

    async def _deliver(self, reply_id: int, address: Address, text: str) -> None:
        """Send an outbox row through the runtime (a worker relays it to its gateway)."""
        row = SimpleNamespace(
            id=reply_id,
            platform=address.platform,
            chat_id=address.chat_id,
            thread_id=address.thread_id,
            text=text,
            inbound_id=None,
        )
        try:
            await self.runtime.deliver_reply(row)
        except Exception as exc:  # stays pending; the next start re-sends it
            logger.warning("could not deliver reminder %s yet: %s", reply_id, exc)

    async def _run_task(self, row: Any, occurrence: float, note: str) -> None:
        user = User(row.platform, row.user_id, row.user_name)
        msg = Message(
            platform=row.platform,
            event_id=f"schedule-{row.id}-{int(occurrence)}",
            chat=Chat(row.platform, row.chat_id, ChatKind(row.chat_kind)),
            user=user,
            text=f"(Scheduled task{note}) {row.text}",
            thread_id=row.thread_id,
            addressed=True,
        )
        await self.runtime.emit(msg)
