from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from opencomputer.bot.config import Settings
from opencomputer.bot.schedules.models import ScheduleRow
from opencomputer.bot.schedules.spec import (
    ScheduleError,
    describe_repeat,
    first_run,
    next_run,
    parse_repeat,
    parse_when,
)
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.harness import Harness
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


async def _by_hand(h: Harness) -> Any:
    """The app's scheduler with its background loop stopped, for a test that moves its clock
    and fires it itself: the loop's own start-up run would otherwise race the test's (it reads
    the moved clock too) and deliver the reminder in its own task, after the test looked."""
    scheduler = h.app.extras["scheduler"]
    await scheduler.stop()
    return scheduler


def _reminders(h: Harness) -> list[str]:
    """What the posted reminders show (posted as a placeholder, then edited: bot/reply.py)."""
    shown = [h.conn.messages[c.message_id] for c in h.conn.calls if c.action == "send"]
    return [text for text in shown if "Reminder" in text]


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
        assert h2.conn.messages[sent.message_id] == "⏰ Reminder: call mom"
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
        # as if made three weeks ago: the series starts then, its first run is long past
        three_weeks_ago = time.time() - 21 * 86400
        spec = parse_repeat("FREQ=WEEKLY;BYDAY=MO;BYHOUR=9", PARIS, now=three_weeks_ago)
        first = first_run(spec, PARIS, three_weeks_ago)
        async with h.app.store.engine.begin() as conn:
            await conn.execute(update(ScheduleRow.__table__).values(next_run=first, repeat=spec))

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
        assert "(repeats: FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0 from " in listing
        assert listing.endswith(" — reminder: water the plants")
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
        assert errors[1] == "error: bad cron spec '0 25 * * *': bad hour"
        assert errors[2].startswith("error: unknown time zone 'Mars/Base'")
        assert await h.app.extras["scheduler"].active() == []


def test_cron_and_rrule_in_a_time_zone_across_daylight_saving() -> None:
    # Every day at 09:00 Paris: 08:00 UTC in winter, 07:00 UTC in summer.
    march = datetime(2026, 3, 27, 12, tzinfo=UTC).timestamp()
    first = next_run("0 9 * * *", PARIS, march)
    assert first is not None
    second = next_run("0 9 * * *", PARIS, first)
    assert second is not None
    assert datetime.fromtimestamp(first, UTC).hour == 8
    assert datetime.fromtimestamp(second, UTC).hour == 7  # clocks went forward on the 29th
    # the same through an RRULE, whose start is in winter
    daily = parse_repeat("FREQ=DAILY", PARIS, now=march)
    assert [datetime.fromtimestamp(t, UTC).hour for t in _runs(daily, PARIS, march, 3)] == [
        8,  # Saturday 28 March, winter time
        7,  # Sunday 29 March: clocks went forward at 02:00, still 09:00 in Paris
        7,
    ]
    assert parse_repeat("*/15 8-17 * * 1-5") == "*/15 8-17 * * 1-5"
    sunday = next_run("0 12 1 * 0", "UTC", datetime(2026, 11, 21, tzinfo=UTC).timestamp())
    assert sunday is not None  # the 1st of the month OR a Sunday, as cron has it
    assert datetime.fromtimestamp(sunday, UTC).date().isoformat() == "2026-11-22"
    assert (
        parse_when("2026-11-22T09:00", "America/New_York")
        == datetime(2026, 11, 22, 14, tzinfo=UTC).timestamp()
    )


def _runs(spec: str, tz: str, start: float, limit: int = 50) -> list[float]:
    """Every run of ``spec`` from ``start`` on (at most ``limit``), as the scheduler walks it."""
    runs: list[float] = []
    moment = first_run(spec, tz, start)
    while moment is not None and len(runs) < limit:
        runs.append(moment)
        moment = next_run(spec, tz, moment)
    return runs


def _days(runs: list[float], tz: str = PARIS) -> list[str]:
    return [datetime.fromtimestamp(t, ZoneInfo(tz)).strftime("%a %Y-%m-%d %H:%M") for t in runs]


FRIDAY = datetime(2026, 11, 20, 10, 30, tzinfo=ZoneInfo(PARIS)).timestamp()


def test_rrule_count_until_ordinals_and_interval_follow_rfc_5545() -> None:
    count = parse_repeat("FREQ=DAILY;COUNT=3;BYHOUR=8", PARIS, now=FRIDAY)
    assert _days(_runs(count, PARIS, FRIDAY)) == [
        "Sat 2026-11-21 08:00",
        "Sun 2026-11-22 08:00",
        "Mon 2026-11-23 08:00",
    ]
    # COUNT counts from the series' start: asked again later, the same three and no more
    assert next_run(count, PARIS, FRIDAY + 30 * 86400) is None
    # UNTIL in UTC, and a bare date meaning that whole day (local)
    until_utc = parse_repeat("FREQ=DAILY;UNTIL=20261122T080000Z", PARIS, now=FRIDAY)
    assert _days(_runs(until_utc, PARIS, FRIDAY)) == [
        "Sat 2026-11-21 09:00",
        "Sun 2026-11-22 09:00",
    ]
    until_day = parse_repeat("FREQ=DAILY;UNTIL=20261122;BYHOUR=23", PARIS, now=FRIDAY)
    assert _days(_runs(until_day, PARIS, FRIDAY)) == [
        "Fri 2026-11-20 23:00",
        "Sat 2026-11-21 23:00",
        "Sun 2026-11-22 23:00",
    ]
    first_monday = parse_repeat("FREQ=MONTHLY;BYDAY=1MO;BYHOUR=9", PARIS, now=FRIDAY)
    runs = _runs(first_monday, PARIS, FRIDAY, limit=12)
    assert len(runs) == 12
    for moment in (datetime.fromtimestamp(t, ZoneInfo(PARIS)) for t in runs):
        assert (moment.weekday(), moment.day <= 7, moment.hour) == (0, True, 9)
    assert _days(runs[:2]) == ["Mon 2026-12-07 09:00", "Mon 2027-01-04 09:00"]
    fortnightly = parse_repeat("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO;BYHOUR=9", PARIS, now=FRIDAY)
    assert _days(_runs(fortnightly, PARIS, FRIDAY, limit=3)) == [
        "Mon 2026-11-30 09:00",
        "Mon 2026-12-14 09:00",
        "Mon 2026-12-28 09:00",
    ]
    # a start given by the user (`when`) anchors the series and its time of day
    anchored = parse_repeat("FREQ=DAILY;COUNT=2", PARIS, start=FRIDAY + 86400)
    assert _days(_runs(anchored, PARIS, FRIDAY)) == ["Sat 2026-11-21 10:30", "Sun 2026-11-22 10:30"]
    assert describe_repeat(count) == "FREQ=DAILY;COUNT=3;BYHOUR=8;BYMINUTE=0 from 2026-11-20 10:30"


def test_cron_names_nth_weekday_and_nicknames() -> None:
    assert _days(_runs(parse_repeat("0 9 * * MON"), PARIS, FRIDAY, limit=2)) == [
        "Mon 2026-11-23 09:00",
        "Mon 2026-11-30 09:00",
    ]
    assert _days(_runs(parse_repeat("0 9 * * 1#1"), PARIS, FRIDAY, limit=3)) == [
        "Mon 2026-12-07 09:00",
        "Mon 2027-01-04 09:00",
        "Mon 2027-02-01 09:00",
    ]
    daily = parse_repeat("@daily")
    assert daily == "0 0 * * *"
    assert _days(_runs(daily, PARIS, FRIDAY, limit=2)) == [
        "Sat 2026-11-21 00:00",
        "Sun 2026-11-22 00:00",
    ]
    assert parse_repeat("0 9 * * 7") == "0 9 * * 7"  # Sunday as 7: older stored specs stay valid
    with pytest.raises(ScheduleError, match=r"^bad cron spec '0 0 30 2 \*': bad day-of-month$"):
        parse_repeat("0 0 30 2 *")  # never fires: refused up front, not a hang later


@pytest.mark.parametrize(
    ("spec", "line"),
    [
        ("0 25 * * *", "bad cron spec '0 25 * * *': bad hour"),
        (
            "0 9 * * * *",  # croniter would read a sixth field as seconds: a reminder a second
            "bad cron spec '0 9 * * * *': give 5 fields (minute hour day month weekday) like "
            "'0 9 * * MON', or @hourly/@daily/@weekly/@monthly/@yearly",
        ),
        (
            "FREQ=SECONDLY",
            "bad RRULE 'FREQ=SECONDLY': FREQ must be one of YEARLY, MONTHLY, "
            "WEEKLY, DAILY, HOURLY, MINUTELY",
        ),
        ("FREQ=DAILY;BYDAY=XX", "bad RRULE 'FREQ=DAILY;BYDAY=XX': invalid 'BYDAY': XX"),
        ("FREQ=DAILY;FOO=1", "bad RRULE 'FREQ=DAILY;FOO=1': unknown parameter 'FOO'"),
        (
            "FREQ=DAILY;COUNT=3;UNTIL=20261201",
            "bad RRULE 'FREQ=DAILY;COUNT=3;UNTIL=20261201': give COUNT or UNTIL, not both",
        ),
        (
            "FREQ=DAILY;UNTIL=2026",
            "bad RRULE UNTIL '2026': give a date like 20261231 or 20261231T090000Z",
        ),
        (
            "DTSTART:20200101T000000\nRRULE:FREQ=DAILY",
            "give the start of a repeat as `when`, not as an RRULE DTSTART",
        ),
        ("FREQ=DAILY;BYMONTHDAY=" + ",".join(["1"] * 120), None),
    ],
)
def test_a_bad_repeat_spec_is_one_clear_line(spec: str, line: str | None) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_repeat(spec, PARIS, now=FRIDAY)
    message = str(caught.value)
    assert "\n" not in message
    if line is not None:
        assert message == line
    else:  # longer than the column holds: refused before PostgreSQL would
        assert message.endswith("characters)") and "too long" in message


async def test_count_3_fires_three_times_across_restarts_then_stops(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    """COUNT is honoured from the stored DTSTART: no counter column, restarts in between."""
    settings = make_settings(**open_settings(OC_TIMEZONE=PARIS))
    start = time.time()
    async with Harness(settings) as h:
        fake_ollama.call_tool("schedule", what="stretch", repeat="FREQ=DAILY;COUNT=3")
        fake_ollama.reply("Three days.")
        await h.say("remind me to stretch each day, three times")
        assert (
            "repeating FREQ=DAILY;COUNT=3;BYHOUR=9;BYMINUTE=0 from "
            in (fake_ollama.chats[-1]["messages"][-1]["content"])
        )
        [row] = await _all_schedules(h)
    expected = _runs(row.repeat, PARIS, start)
    assert len(expected) == 3 and row.next_run == expected[0]

    fired: list[str] = []
    for n, moment in enumerate(expected):  # one process per day, each fires its day's run
        async with Harness(settings) as hn:
            _restarted(hn, 100 * (n + 1))
            scheduler = await _by_hand(hn)
            scheduler.clock = lambda m=moment: m + 1.0
            assert await scheduler.run_due() == 1
            fired += _reminders(hn)
            assert await scheduler.run_due() == 0  # the same run never fires twice
            [row] = await _all_schedules(hn)
            assert row.runs == n + 1
    assert fired == ["⏰ Reminder: stretch"] * 3
    assert (row.status, row.next_run) == ("done", expected[-1])

    async with Harness(settings) as last:  # a week later: over, nothing fires
        _restarted(last, 900)
        scheduler = await _by_hand(last)
        scheduler.clock = lambda: expected[-1] + 7 * 86400
        assert await scheduler.run_due(startup=True) == 0
        assert _reminders(last) == []
        assert await last.command("schedules") == "You have no reminders or scheduled tasks."


async def test_runs_missed_past_until_are_reported_and_the_series_ends(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    settings = make_settings(**open_settings(OC_TIMEZONE=PARIS))
    async with Harness(settings) as h:
        fake_ollama.call_tool("schedule", what="pills", repeat="FREQ=DAILY;COUNT=10;BYHOUR=20")
        fake_ollama.reply("OK.")
        await h.say("pills at 8pm for ten days")
        [row] = await _all_schedules(h)
    runs = _runs(row.repeat, PARIS, row.next_run)
    assert len(runs) == 10
    async with Harness(settings) as h2:  # down for the whole series: one late notice, done
        _restarted(h2, 100)
        scheduler = await _by_hand(h2)
        scheduler.clock = lambda: runs[-1] + 3600
        assert await scheduler.run_due(startup=True) == 1
        [text] = _reminders(h2)
        assert text.endswith("while I was offline; 10 runs were missed)")
        [row] = await _all_schedules(h2)
        assert row.status == "done"
