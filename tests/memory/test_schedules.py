from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from bot.config import Settings
from bot.schedules.models import ScheduleRow
from bot.schedules.spec import Cron, ScheduleError, next_run, parse_repeat, parse_when
from bot.testing import FakeOllama
from bot.testing.harness import Harness
from tests.memory.helpers import open_settings, until

PARIS = "Europe/Paris"


def _restarted(h: Harness, start: int) -> Harness:
    """The recording connector numbers messages from m1 in every process; a real platform
    never reuses ids, so a restarted harness continues the numbering."""
    h.conn._ids = itertools.count(start)
    return h


async def _all_schedules(h: Harness) -> list[Any]:
    async with h.app.store.engine.connect() as conn:
        return list(await conn.execute(select(ScheduleRow.__table__)))


def _reminders(h: Harness) -> list[str]:
    return [c.text for c in h.conn.calls if c.action == "send" and "Reminder" in c.text]


async def test_reminder_made_before_a_restart_fires_once_on_time_after_it(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    # alice owns the bot: in a group, a stranger's request to schedule would ask for approval
    settings = make_settings(**open_settings(OC_ADMINS="test:alice"))
    due = datetime.now(ZoneInfo(PARIS)) + timedelta(seconds=4)
    local = due.replace(tzinfo=None).isoformat(timespec="milliseconds")
    async with Harness(settings) as h:
        fake_ollama.call_tool("schedule", what="call mom", when=local, timezone=PARIS)
        fake_ollama.reply("I'll remind you.")
        assert await h.say("remind me in a moment to call mom", chat="family", group=True) == (
            "I'll remind you."
        )
        assert fake_ollama.chats[-1]["messages"][-1]["content"].startswith("scheduled #1: first at")
        assert "#1" in await h.command("schedules")
    assert time.time() < due.timestamp()  # the server was down before it was due

    async with Harness(settings) as h2:
        _restarted(h2, 100)
        await until(lambda: bool(_reminders(h2)), limit=10)
        fired_at = time.time()
        [sent] = [c for c in h2.conn.calls if c.action == "send"]
        assert sent.text == "⏰ Reminder: call mom"
        assert sent.address.chat_id == "family"
        assert due.timestamp() <= fired_at < due.timestamp() + 2.0
        assert await h2.command("schedules") == "You have no reminders or scheduled tasks."
        [row] = [r for r in await _all_schedules(h2)]
        assert (row.chat_kind, row.status, row.runs) == ("group", "done", 1)

    async with Harness(settings) as h3:  # a third start does not repeat it
        _restarted(h3, 200)
        await h3.app.extras["scheduler"].run_due(startup=True)
        assert _reminders(h3) == []


async def test_runs_missed_while_down_are_reported_once_then_the_schedule_goes_on(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    settings = make_settings(**open_settings(OC_TIMEZONE=PARIS))
    async with Harness(settings) as h:
        fake_ollama.call_tool(
            "schedule", what="water the plants", repeat="FREQ=WEEKLY;BYDAY=MO;BYHOUR=9"
        )
        fake_ollama.reply("Every Monday at 9.")
        await h.say("every Monday at 9 remind me to water the plants")
        three_weeks_ago = time.time() - 21 * 86400
        first = next_run("0 9 * * 1", PARIS, three_weeks_ago)
        async with h.app.store.engine.begin() as conn:
            await conn.execute(update(ScheduleRow.__table__).values(next_run=first))

    async with Harness(settings) as h2:
        _restarted(h2, 100)
        await until(lambda: bool(_reminders(h2)))
        [text] = _reminders(h2)
        assert text.startswith("⏰ Reminder: water the plants (this was due Mon ")
        assert "while I was offline; 3 runs were missed)" in text
        [row] = await h2.app.extras["scheduler"].active()
        assert row.next_run > time.time()
        assert (
            datetime.fromtimestamp(row.next_run, ZoneInfo(PARIS)).strftime("%a %H:%M")
            == "Mon 09:00"
        )
        assert await h2.app.extras["scheduler"].run_due(startup=True) == 0

    async with Harness(settings) as h3:
        _restarted(h3, 200)
        await h3.app.extras["scheduler"].run_due(startup=True)
        assert _reminders(h3) == []
        listing = await h3.command("schedules")
        assert "(repeats: 0 9 * * 1) — reminder: water the plants" in listing
        assert await h3.command("schedules", "cancel 1", user="mallory") == (
            "You have no active schedule #1."
        )
        assert await h3.command("schedules", "cancel 1") == "Cancelled #1."
        assert await h3.command("schedules") == "You have no reminders or scheduled tasks."


async def test_a_scheduled_task_runs_the_agent_and_answers_in_the_chat(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    settings = make_settings(**open_settings())
    async with Harness(settings) as h:
        soon = (datetime.now(UTC) + timedelta(seconds=0.3)).isoformat()
        fake_ollama.call_tool("schedule", what="tell me a fun fact", when=soon, action="run")
        fake_ollama.reply("Scheduled.")
        await h.say("in a moment, tell me a fun fact")
        fake_ollama.reply("Octopuses have three hearts.")
        await until(lambda: "Octopuses have three hearts." in h.conn.messages.values())
        assert fake_ollama.chats[-1]["messages"][-1]["content"] == (
            "(Scheduled task) tell me a fun fact"
        )
        scheduler = h.app.extras["scheduler"]
        # The answer can land before the scheduler records the run (it emits first): wait.
        await until(lambda: bool(scheduler.fired))
        assert len(scheduler.fired) == 1
        assert await scheduler.active() == []


async def test_schedule_tool_rejects_bad_input(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    async with Harness(make_settings(**open_settings())) as h:
        fake_ollama.call_tool("schedule", what="x", when="2001-01-01T09:00")
        fake_ollama.call_tool("schedule", what="x", repeat="0 25 * * *")
        fake_ollama.call_tool("schedule", what="x", when="2030-01-01T09:00", timezone="Mars/Base")
        fake_ollama.reply("Sorry.")
        await h.say("remind me")
        errors = [m["content"] for m in fake_ollama.chats[-1]["messages"] if m["role"] == "tool"]
        assert errors[0] == "error: 2001-01-01T09:00 is in the past"
        assert errors[1].startswith("error: bad cron field")
        assert errors[2].startswith("error: unknown time zone 'Mars/Base'")
        assert await h.app.extras["scheduler"].active() == []


def test_cron_and_rrule_in_a_time_zone_across_daylight_saving() -> None:
    # Every day at 09:00 Paris: 08:00 UTC in winter, 07:00 UTC in summer.
    march = datetime(2026, 3, 27, 12, tzinfo=UTC).timestamp()
    first = next_run("0 9 * * *", PARIS, march)
    second = next_run("0 9 * * *", PARIS, first)
    assert datetime.fromtimestamp(first, UTC).hour == 8
    assert datetime.fromtimestamp(second, UTC).hour == 7  # clocks went forward on the 29th
    assert parse_repeat("FREQ=WEEKLY;BYDAY=MO,FR;BYHOUR=18;BYMINUTE=30") == "30 18 * * 1,5"
    assert parse_repeat("*/15 8-17 * * 1-5") == "*/15 8-17 * * 1-5"
    cron = Cron.parse("0 12 1 * 0")  # the 1st of the month OR a Sunday, as cron has it
    sunday = next_run("0 12 1 * 0", "UTC", datetime(2026, 11, 21, tzinfo=UTC).timestamp())
    assert datetime.fromtimestamp(sunday, UTC).date().isoformat() == "2026-11-22"
    assert cron.minutes == {0}
    assert (
        parse_when("2026-11-22T09:00", "America/New_York")
        == datetime(2026, 11, 22, 14, tzinfo=UTC).timestamp()
    )
    with pytest.raises(ScheduleError):
        parse_repeat("FREQ=WEEKLY;INTERVAL=2")
    with pytest.raises(ScheduleError):
        Cron.parse("61 * * * *")
