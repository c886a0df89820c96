"""Wire schedules into the app: table, scheduler task, ``schedule`` tool, ``/schedules``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select, update

from opencomputer.bot.commands import CommandContext, CommandRouter
from opencomputer.bot.events import ChatKind
from opencomputer.bot.hooks import DataRights, hookimpl
from opencomputer.bot.memory.tools import person_of_turn
from opencomputer.bot.schedules.models import ScheduleRow
from opencomputer.bot.schedules.scheduler import Scheduler
from opencomputer.bot.schedules.spec import (
    ScheduleError,
    describe_repeat,
    first_run,
    parse_repeat,
    parse_when,
    zone,
)
from opencomputer.bot.storage.models import InboundRow
from opencomputer.bot.tools import ToolError, tool
from opencomputer.graphs.agent.state import current_turn

__all__ = ["setup_schedules"]

logger = logging.getLogger(__name__)

_SCHED = ScheduleRow.__table__  # type: ignore[attr-defined]
_IN = InboundRow.__table__  # type: ignore[attr-defined]


async def chat_kind(app: Any, conversation: str) -> str:
    """The kind of chat (direct, group...) of a conversation, from its newest message.

    A scheduled task is emitted as a message of that chat, so access rules see it as they saw
    the request that made it.
    """
    async with app.store.engine.connect() as conn:
        kind = await conn.scalar(
            select(_IN.c.chat_kind)
            .where(_IN.c.conversation == conversation)
            .order_by(_IN.c.id.desc())
            .limit(1)
        )
    return str(kind or "direct")


PRIVATE_SCHEDULES = "Your schedules are private: ask me in a direct message."
OTHER_SCHEDULES = "Your other schedules are private: ask me in a direct message."


def _shown_in(row: Any, event: Any) -> bool:
    """Whether a schedule may be listed where ``event`` came from: all in a DM, else its own."""
    if event.chat.kind == ChatKind.DIRECT:
        return True
    return (row.platform, row.chat_id) == (event.chat.platform, event.chat.id)


def describe(row: Any) -> str:
    """One line for ``/schedules``: id, next time in the user's zone, repeat, text."""
    when = datetime.fromtimestamp(row.next_run, zone(row.tz)).strftime("%a %Y-%m-%d %H:%M %Z")
    repeat = f" (repeats: {describe_repeat(row.repeat)})" if row.repeat else ""
    kind = "task" if row.action == "run" else "reminder"
    return f"#{row.id} {when}{repeat} — {kind}: {row.text}"


class _Jobs:
    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    @hookimpl
    def oc_ready(self) -> Awaitable[None]:
        """After recovery, with connectors up: a task due now may emit right away."""
        return self.scheduler.start()


async def setup_schedules(app: Any) -> None:
    """Feature entry point (``schedules``): the scheduler, the ``schedule`` tool, commands."""
    runtime = app.runtime
    scheduler = Scheduler(runtime)
    app.extras["scheduler"] = scheduler
    default_tz = app.settings.timezone
    if app.role != "worker":  # one scheduler per deployment: the gateway's (or run/chat's)
        app.hooks.register(_Jobs(scheduler), "schedules")  # starts after recovery (oc_ready)
        app.on_stop.append(scheduler.stop)
    if app.changes is not None:  # a schedule made on a worker wakes the gateway's scheduler
        scheduler.announce = app.changes.watch("schedules", scheduler.woken)

    # schedule: it runs later on its own (a "run" task acts with no one watching)
    @tool(effects=["schedule"], trusted_output=True)
    async def schedule(
        what: str,
        when: str = "",
        repeat: str = "",
        timezone: str = "",
        action: Literal["remind", "run"] = "remind",
    ) -> str:
        """Schedule a reminder or a task for the user, delivered later in this chat.

        Args:
            what: The reminder text, or the task to carry out then (e.g. "send me the weather").
            when: For a one-off: local date and time in ISO 8601, e.g. "2026-11-22T09:00".
            repeat: For a repeating schedule: cron "minute hour day month weekday" (e.g.
                "0 9 * * MON" is every Monday at 09:00, "0 9 * * 1#1" the first Monday of
                each month, "@daily" midnight) or an RRULE like
                "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0" (COUNT=3 or UNTIL=20261231 to
                stop, INTERVAL=2 for every other week, BYDAY=1MO for the first Monday). An
                RRULE series starts at `when` if given, else now.
            timezone: The user's IANA time zone, e.g. "Europe/Paris".
            action: "remind" sends the text as a reminder; "run" has you do the task then.
        """
        ctx = current_turn()
        if ctx.address is None or ctx.user is None:
            raise ToolError("schedules need a chat to deliver to")
        tz = timezone.strip() or default_tz
        now = scheduler.clock()
        try:
            zone(tz)
            if repeat.strip():
                start = parse_when(when, tz) if when.strip() else None
                spec = parse_repeat(repeat, tz, start=start, now=now)
                # the first run matching the spec, not the given start if it does not match
                soonest = first_run(spec, tz, max(start if start is not None else now, now))
                if soonest is None:
                    raise ScheduleError(f"{repeat.strip()} never fires after now")
                first = soonest
            elif when.strip():
                spec, first = "", parse_when(when, tz)
                if first < now - 60:
                    raise ScheduleError(f"{when} is in the past")
            else:
                raise ScheduleError("give `when` (a one-off) or `repeat` (a repeating schedule)")
        except ScheduleError as exc:
            raise ToolError(str(exc)) from exc
        person = await person_of_turn(ctx)
        schedule_id = await scheduler.add(
            {
                "person": person,
                "platform": ctx.address.platform,
                "chat_id": ctx.address.chat_id,
                "chat_kind": await chat_kind(app, ctx.address.key),
                "thread_id": ctx.address.thread_id,
                "user_id": ctx.user.id,
                "user_name": ctx.user.name,
                "action": action,
                "text": what.strip(),
                "repeat": spec,
                "tz": tz,
                "next_run": first,
                "created_at": now,
            }
        )
        local = datetime.fromtimestamp(first, zone(tz)).strftime("%a %Y-%m-%d %H:%M %Z")
        return f"scheduled #{schedule_id}: first at {local}" + (
            f", repeating {describe_repeat(spec)}" if spec else ""
        )

    app.tools.add(schedule, plugin="core")

    router: CommandRouter = app.commands

    @router.command("schedules", args="[cancel <id>]", aliases=("reminders",))
    async def schedules(ctx: CommandContext) -> str:
        """List your reminders and scheduled tasks, or cancel one.

        In a group only the schedules made in that group are listed or cancelled (they are
        delivered there anyway); the others stay private, as memories and notes do.
        """
        person = await ctx.runtime.person_of(ctx.event.user)
        mine = await scheduler.active(person)
        rows = [r for r in mine if _shown_in(r, ctx.event)]
        hidden = len(rows) < len(mine)
        verb, _, rest = ctx.args.strip().partition(" ")
        if verb.lower() in ("cancel", "delete", "rm"):
            ident = rest.strip().lstrip("#")
            if not ident.isdigit():
                return "Usage: /schedules cancel <id>"
            shown = any(r.id == int(ident) for r in rows)
            ok = shown and await scheduler.cancel(person, int(ident))
            where = " here" if hidden else ""
            return f"Cancelled #{ident}." if ok else f"You have no active schedule #{ident}{where}."
        if not rows:
            return PRIVATE_SCHEDULES if hidden else "You have no reminders or scheduled tasks."
        listed = "Your schedules:\n" + "\n".join(describe(r) for r in rows)
        return listed + (f"\n{OTHER_SCHEDULES}" if hidden else "")

    async def forget_schedules(person: str, _accounts: list[str]) -> str:
        async with app.store.engine.begin() as conn:
            gone = await conn.execute(
                update(_SCHED)
                .where(_SCHED.c.person == person, _SCHED.c.status == "active")
                .values(status="cancelled", text="")
            )
        scheduler.wake()
        return f"{gone.rowcount} schedules" if gone.rowcount else ""

    async def export_schedules(person: str, _accounts: list[str]) -> dict[str, Any]:
        rows = await scheduler.active(person)
        return {
            "schedules": [
                {"id": r.id, "text": r.text, "repeat": r.repeat, "tz": r.tz, "next_run": r.next_run}
                for r in rows
            ]
        }

    app.hooks.register(DataRights(forget_schedules, export_schedules), "schedules-data")
