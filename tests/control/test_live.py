"""The control room's live stream: every page hears of its changes (plugins, people, schedules,
conversations, prompts, the audit log, besides approvals and the overview), and a page that
reconnects with ``Last-Event-ID`` gets exactly what it missed, or ``reload`` when the buffer
cannot say.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from opencomputer.bot.config import Settings
from opencomputer.bot.control.live import Event, LiveFeed
from opencomputer.bot.testing import FakeOllama

from .kit import ADMIN, Served, browser, control_settings, logged_in, served

pytestmark = pytest.mark.timeout(30)

KINDS = [
    "approvals",
    "overview",
    "plugins",
    "people",
    "schedules",
    "conversations",
    "prompts",
    "audit",
]


@dataclass
class Stream:
    """An open ``/ui/api/events`` as an EventSource reads it: (id, event, data) in order."""

    response: aiohttp.ClientResponse
    events: list[tuple[str, str, Any]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def read(self) -> None:
        eid, kind, data = "", "message", ""
        async for raw in self.response.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("id: "):
                eid = line[4:]
            elif line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data += line[6:]
            elif not line and data:
                self.events.append((eid, kind, json.loads(data)))
                self.changed.set()
                eid, kind, data = "", "message", ""

    async def until(self, check: Callable[[tuple[str, str, Any]], bool]) -> tuple[str, str, Any]:
        """The first event (already read or coming) for which ``check`` is true."""
        async with asyncio.timeout(10):
            while True:
                for event in self.events:
                    if check(event):
                        return event
                self.changed.clear()
                await self.changed.wait()


@asynccontextmanager
async def stream(
    h: Served, http: aiohttp.ClientSession, last: str | None = None
) -> AsyncIterator[Stream]:
    headers = {"Last-Event-ID": last} if last is not None else {}
    async with http.get(f"{h.base}/ui/api/events", headers=headers) as r:
        assert r.status == 200 and r.headers["Content-Type"] == "text/event-stream"
        s = Stream(r)
        task = asyncio.create_task(s.read())
        try:
            yield s
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def feed_of(h: Served) -> LiveFeed:
    """The running control room's feed (registered on the seam as ``control``)."""
    feed: LiveFeed = h.app.hooks.pm.get_plugin("control").api.feed
    return feed


async def test_plugins_people_schedules_and_conversations_are_pushed(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    async with served(control_settings(make_settings)) as h, browser() as http:
        await logged_in(h, http)
        async with stream(h, http) as s:
            await s.until(lambda e: e[1] == "audit")
            first = next(e for e in s.events if e[1] == "conversations")
            audited = next(e for e in s.events if e[1] == "audit")[2]["seq"]
            assert [e[1] for e in s.events] == KINDS  # every page's data once, in order
            assert all(e[0] for e in s.events)  # each with an id to resume from

            # a plugin switched off elsewhere (chat, CLI): the plugins page hears of it
            await h.app.extras["plugins"].enablement.set("calculator", False)
            await s.until(
                lambda e: (
                    e[1] == "plugins"
                    and any(p["name"] == "calculator" and not p["enabled"] for p in e[2]["plugins"])
                )
            )

            # a stranger's first message is a pairing request on the people page
            await h.say("hello?", user="carol")
            _, _, people = await s.until(lambda e: e[1] == "people" and len(e[2]["pairing"]) == 1)
            assert people["pairing"][0]["user"] == "test:carol"

            # a reminder made in a chat appears on the schedules page
            schedule_id = await h.app.extras["scheduler"].add(
                {
                    "person": "test:alice",
                    "platform": "test",
                    "chat_id": "alice",
                    "user_id": "alice",
                    "user_name": "Alice",
                    "text": "water the plants",
                    "next_run": time.time() + 3600,
                }
            )
            _, _, schedules = await s.until(lambda e: e[1] == "schedules" and e[2]["schedules"])
            assert [x["id"] for x in schedules["schedules"]] == [schedule_id]

            # a conversation moves: a message and its answer
            await h.command("allow", "test:alice", user=ADMIN)
            fake_ollama.reply("Hello Alice.")
            assert await h.say("hi there") == "Hello Alice."
            _, _, moved = await s.until(
                lambda e: e[1] == "conversations" and e[2]["message"] > first[2]["message"]
            )
            assert any(r[1] == "test:alice" for r in moved["replies"])
            # a prompt variant added in chat: the prompts page hears of it, and the audit log
            assert "Added #2" in await h.command("prompt", "add --name=brief Be brief.", user=ADMIN)
            await s.until(lambda e: e[1] == "prompts" and [2, "candidate"] in e[2]["variants"])
            await s.until(lambda e: e[1] == "audit" and e[2]["seq"] > audited)
            ids = [int(e[0].split("-")[1]) for e in s.events]
            assert ids == sorted(ids) and len(set(ids)) == len(ids)


async def test_a_reconnecting_page_gets_what_it_missed_or_reload(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    async with served(control_settings(make_settings)) as h, browser() as http:
        await logged_in(h, http)
        feed = feed_of(h)
        async with stream(h, http) as s:
            await s.until(lambda e: e[1] == "audit")
            last = s.events[-1][0]
        # the page is gone (a phone asleep); meanwhile a plugin is switched off
        seq = feed.seq
        await h.app.extras["plugins"].enablement.set("calculator", False)
        await feed.wait(seq, 10)
        assert feed.seq == seq + 1  # recorded while nobody listened (the watcher lingers)
        async with stream(h, http, last) as s:
            eid, kind, data = await s.until(lambda e: True)
            assert (eid, kind) == (f"{feed.epoch}-{seq + 1}", "plugins")  # only what it missed
            assert any(p["name"] == "calculator" and not p["enabled"] for p in data["plugins"])
            await h.app.extras["plugins"].enablement.set("calculator", True)
            await s.until(lambda e: e[1] == "plugins" and e[0] == f"{feed.epoch}-{seq + 2}")
            assert [e[1] for e in s.events] == ["plugins", "plugins"]  # no snapshot resent

        # an id from another epoch (a restart, another process) or garbage: reload, then all
        other = "ffffffff" if feed.epoch != "ffffffff" else "00000000"
        for stale in (f"{other}-1", "nonsense"):
            async with stream(h, http, stale) as s:
                await s.until(lambda e: e[1] == "audit")
                assert s.events[0] == ("", "reload", {})
                assert [e[1] for e in s.events] == ["reload", *KINDS]


async def test_the_buffer_is_bounded_and_an_old_id_means_reload() -> None:
    state = {"n": 0}

    async def counter() -> dict[str, Any]:
        return {"n": state["n"]}

    feed = LiveFeed({"count": counter}, asyncio.Event(), size=3, poll=3600)
    await feed.join()
    start = f"{feed.epoch}-{feed.seq}"
    for n in range(1, 6):
        state["n"] = n
        await feed.look()
    assert [e.seq for e in feed.events] == [4, 5, 6]
    assert feed.since(start) is None  # events 2 and 3 are gone: the page must reload
    assert feed.since(f"{feed.epoch}-3") == list(feed.events)  # 4, 5, 6: all still there
    assert feed.since(f"{feed.epoch}-6") == []
    assert feed.since(f"{feed.epoch}-7") is None  # from the future: another watcher's
    assert feed.snapshot() == [Event(6, "count", '{"n":5}')]
    await feed.look()  # nothing changed: nothing recorded
    assert feed.seq == 6
    feed.leave()
    await feed.stop()
