"""An event the runtime cannot store yet is held and offered again, never dropped (issue 19).

Discord's gateway has no acknowledgement: the connector itself must keep an event the runtime
refused (a full disk, storage unreachable, shutting down) and hand it over once it is taken,
in arrival order per chat, each once, with one log line per streak each way and bounded memory.
The real discord.py client runs against the fake gateway.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import pytest

from opencomputer.bot.events import Message
from opencomputer.bot.storage.disk import DiskFull
from opencomputer.connectors.discord import DiscordConnector
from tests.discord import discord_payloads as p
from tests.discord.discord_helpers import Event, Sink, make_connector
from tests.discord.fake_discord import FakeDiscord


class RefusingSink(Sink):
    """Refuses every event with ``refusal`` while it is set (what ``Runtime.emit`` raises)."""

    def __init__(self) -> None:
        super().__init__()
        self.refusal: Exception | None = None
        self.refused = 0

    async def __call__(self, event: Event) -> None:
        if self.refusal is not None:
            self.refused += 1
            raise self.refusal
        await super().__call__(event)


@pytest.fixture
def refusing() -> RefusingSink:
    return RefusingSink()


@pytest.fixture
async def conn(discord_env: None, refusing: RefusingSink) -> AsyncIterator[DiscordConnector]:
    connector = make_connector(refusing)
    await connector.start()
    try:
        await connector.wait_connected()
        yield connector
    finally:
        await connector.stop()


def _dm(fake: FakeDiscord, text: str) -> dict[str, Any]:
    return p.message(
        message_id=fake.new_id(), channel_id=p.DM_CHANNEL_ID, content=text, author=p.human_user()
    )


def _mention(fake: FakeDiscord, text: str) -> dict[str, Any]:
    return p.message(
        message_id=fake.new_id(),
        channel_id=p.CHANNEL_ID,
        guild_id=p.GUILD_ID,
        content=f"<@{p.BOT_ID}> {text}",
        author=p.human_user(),
        mentions=[p.bot_user()],
    )


async def _until(check: Any, within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not check():
            await asyncio.sleep(0.02)


@pytest.mark.parametrize(
    "refusal",
    [
        DiskFull("the disk is full"),
        sqlite3.OperationalError("database or disk is full"),
        sqlite3.OperationalError("database is locked"),
    ],
    ids=["disk-full", "sqlite-full", "storage-unreachable"],
)
async def test_refused_events_are_held_and_handed_over_in_order(
    fake: FakeDiscord,
    conn: DiscordConnector,
    refusing: RefusingSink,
    refusal: Exception,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "opencomputer.connectors.discord")
    refusing.refusal = refusal
    sent = [_dm(fake, "d1"), _mention(fake, "g1"), _dm(fake, "d2"), _mention(fake, "g2")]
    sent.append(_dm(fake, "d3"))
    for payload in sent:
        await fake.dispatch("MESSAGE_CREATE", payload)
    await _until(lambda: refusing.refused >= 4)  # offered again (backoff), still refused
    assert refusing.events == []

    refusing.refusal = None
    await refusing.wait_for(Message, 5, within=15)
    await _until(lambda: conn._in().held == 0)  # nothing left that could arrive twice
    texts = [e.text for e in refusing.of(Message)]
    assert sorted(texts) == ["d1", "d2", "d3", "g1", "g2"]  # each once
    assert [t for t in texts if t.startswith("d")] == ["d1", "d2", "d3"]  # order per chat
    assert [t for t in texts if t.startswith("g")] == ["g1", "g2"]
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("opencomputer.connectors.discord")
    ]
    assert len([x for x in lines if "did not take an event" in x]) == 1, lines
    assert len([x for x in lines if "takes events again" in x]) == 1, lines
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], lines

    await fake.dispatch("MESSAGE_CREATE", _dm(fake, "after"))  # the next one goes straight in
    await refusing.wait_for(Message, 6)


async def test_held_events_are_bounded(
    fake: FakeDiscord,
    conn: DiscordConnector,
    refusing: RefusingSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "opencomputer.connectors.discord")
    inbound = conn._in()
    inbound.hold_limit = 3
    refusing.refusal = DiskFull("the disk is full")
    for n in range(6):
        await fake.dispatch("MESSAGE_CREATE", _dm(fake, f"m{n}"))
    await _until(lambda: inbound.held + inbound.dropped == 6)
    assert (inbound.held, inbound.dropped) == (3, 3)
    drops = [r for r in caplog.records if "dropping new ones" in r.getMessage()]
    assert len(drops) == 1  # once per streak

    refusing.refusal = None
    await refusing.wait_for(Message, 3, within=15)
    assert [e.text for e in refusing.of(Message)] == ["m0", "m1", "m2"]
    await _until(lambda: inbound.held == 0)
    assert any("3 dropped" in r.getMessage() for r in caplog.records)


async def test_an_event_that_always_fails_is_not_retried_forever(
    fake: FakeDiscord, conn: DiscordConnector, refusing: RefusingSink
) -> None:
    """A bug, not a refusal: dropped with its traceback, the chat goes on."""
    refusing.refusal = ValueError("a handler bug")
    await fake.dispatch("MESSAGE_CREATE", _dm(fake, "bug"))
    await _until(lambda: refusing.refused == 1)
    refusing.refusal = None
    await fake.dispatch("MESSAGE_CREATE", _dm(fake, "next"))
    [event] = await refusing.wait_for(Message, 1)
    assert event.text == "next"
    assert refusing.refused == 1 and conn._in().held == 0
