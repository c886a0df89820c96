"""Variant selection off the database: a sticky turn issues no SQL; changes still arrive."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

from sqlalchemy import event

from opencomputer.bot.config import Settings
from opencomputer.bot.events import Message
from opencomputer.bot.feedback.cache import REFRESH_SECONDS, Assignment, Assignments, LiveVariants
from opencomputer.bot.feedback.repo import FeedbackRepo
from opencomputer.bot.feedback.service import FeedbackService
from opencomputer.bot.feedback.tuner import Tuner
from opencomputer.bot.hooks import hookimpl
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.harness import Harness

_FEEDBACK_TABLES = re.compile(
    r"\b(prompt_variants|prompt_assignments|prompt_tuning_events|feedback_votes"
    r"|feedback_notes|reply_failures)\b"
)


@contextmanager
def statements(h: Harness) -> Iterator[list[str]]:
    """Every SQL statement sent through the shared async engine while the block runs."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, sql: str, *_rest: Any) -> None:
        seen.append(sql)

    engine = h.app.store.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def spy_choose(h: Harness) -> list[list[str]]:
    """Answer ``oc_choose_prompt`` first, through the feedback selector: one list of the SQL
    it issued per turn."""
    inner = h.app.extras["feedback"].selector.choose
    per_turn: list[list[str]] = []

    class Spy:
        @hookimpl(tryfirst=True)
        async def oc_choose_prompt(self, message: Message) -> tuple[str | None, int | None]:
            with statements(h) as seen:
                out = await inner(message)
            per_turn.append(list(seen))
            return out  # type: ignore[no-any-return]

    h.app.hooks.register(Spy())
    return per_turn


async def served(h: Harness, user: str = "alice") -> int:
    await h.say("hi", user=user)
    reply = await h.app.store.reply_for_message("test", user, h.last_message_id)
    assert reply is not None
    return int(reply.variant_id)


async def test_a_conversation_with_a_variant_keeps_it_without_any_sql(
    harness: Harness, service: FeedbackService
) -> None:
    await service.tuner.add("Be brief.", actor="test:root")
    choose_sql = spy_choose(harness)
    first = await served(harness)
    # The assignment is written by the store's writer, not on the engine's second connection
    # (which would wait for the writer's lock in SQLite's busy handler).
    writes = [s for s in choose_sql[0] if s.startswith(("INSERT", "UPDATE"))]
    assert not [s for s in writes if "prompt_assignments" in s], choose_sql[0]
    assert (await service.repo.assignment("test:alice")) is not None
    with statements(harness) as turn_sql:
        later = [await served(harness) for _ in range(4)]  # sticky: 5 turns by default
    assert later == [first] * 4
    assert choose_sql[1:] == [[], [], [], []]
    # nor anything else of the feature (reply listener, failure guard, middleware) on a turn
    # without a reaction
    assert [s for s in turn_sql if _FEEDBACK_TABLES.search(s)] == []
    row = await service.repo.assignment("test:alice")
    assert row is not None
    assert (row.variant_id, row.turns) == (first, 1)  # the turn count lives in memory
    assert service.selector.assignments.get("test:alice") == Assignment(
        first, 0, 5, float(row.assigned_at)
    )


async def test_a_forgotten_assignment_is_read_back_once_and_kept(
    harness: Harness, service: FeedbackService
) -> None:
    await service.tuner.add("Be brief.", actor="test:root")
    service.selector.assignments.limit = 1
    choose_sql = spy_choose(harness)
    alice = await served(harness, "alice")
    await served(harness, "bob")  # alice's assignment drops out of memory
    assert service.selector.assignments.get("test:alice") is None
    assert await served(harness, "alice") == alice
    assert len(choose_sql[2]) == 1 and "FROM prompt_assignments" in choose_sql[2][0]


async def test_a_change_made_here_is_served_at_the_next_turn(
    harness: Harness, service: FeedbackService
) -> None:
    cand = int((await service.tuner.add("Be brief.", actor="test:root")).id)
    await served(harness)
    await service.tuner.pin(cand, actor="test:root")
    assert await served(harness) == cand
    await service.tuner.unpin(cand, actor="test:root")
    await service.tuner.retire(cand, actor="test:root")
    assert await served(harness) == 1


async def test_another_process_change_arrives_within_the_refresh_interval(
    harness: Harness, service: FeedbackService
) -> None:
    cand = int((await service.tuner.add("Be brief.", actor="test:root")).id)
    first = await served(harness)
    other = cand if first == 1 else 1
    elsewhere = Tuner(service.settings, FeedbackRepo(service.repo.engine))  # e.g. the CLI
    await elsewhere.pin(other, actor="cli")
    assert await served(harness) == first  # this process has not looked yet
    later = time.monotonic() + REFRESH_SECONDS + 0.1
    service.repo.live.clock = lambda: later
    assert await served(harness) == other


async def test_a_new_draw_reads_the_posteriors_again_only_after_a_vote(
    fb_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    async with Harness(fb_settings(OC_TUNING_STICKY_TURNS=1)) as h:  # every turn draws
        svc: FeedbackService = h.app.extras["feedback"]
        await svc.tuner.add("Be brief.", actor="test:root")
        choose_sql = spy_choose(h)
        for _ in range(3):
            await served(h)
        await h.react(h.last_message_id, "👍")
        await h.app.runtime.wait_idle()
        posts = await svc.repo.posteriors([1, 2])
        assert sum(p.up for p in posts.values()) == 1  # the vote is in
        await served(h)
        await served(h)
    reads = [sum("FROM feedback_votes" in sql for sql in turn) for turn in choose_sql]
    assert reads == [1, 0, 0, 1, 0]


async def test_live_variants_reload_once_and_drop_a_read_raced_by_a_change() -> None:
    gate = asyncio.Event()
    loads: list[int] = []
    row = SimpleNamespace(id=1, scope="global", scope_key="", status="active")

    async def load() -> list[Any]:
        loads.append(len(loads))
        await gate.wait()
        return [row]

    live = LiveVariants(load)
    readers = [asyncio.create_task(live.rows_for("test", "test:a")) for _ in range(3)]
    await asyncio.sleep(0)
    gate.set()
    assert [await r for r in readers] == [[row]] * 3
    assert len(loads) == 1  # concurrent turns share one read

    live.invalidate()
    gate.clear()
    first = asyncio.create_task(live.rows_for("test", "test:a"))
    await asyncio.sleep(0)
    live.invalidate()  # a local change while that read is in flight
    gate.set()
    assert await first == [row]
    await live.rows_for("test", "test:a")
    await live.rows_for("test", "test:a")
    assert len(loads) == 3  # the raced read was not kept; the one after it was


async def test_an_empty_snapshot_is_kept_too() -> None:
    calls: list[None] = []

    async def load() -> list[Any]:
        calls.append(None)
        return []

    live = LiveVariants(load)
    assert await live.rows_for("test", "test:a") == []
    assert await live.rows_for("test", "test:b") == []
    assert len(calls) == 1


def test_assignments_forget_the_least_recently_used() -> None:
    memo = Assignments(limit=2)
    memo.put("a", Assignment(1, 0, 1, 0.0))
    memo.put("b", Assignment(2, 0, 1, 0.0))
    assert memo.get("a") is not None  # a is now more recent than b
    memo.put("c", Assignment(3, 0, 1, 0.0))
    assert (memo.get("a"), memo.get("b"), len(memo)) == (Assignment(1, 0, 1, 0.0), None, 2)
