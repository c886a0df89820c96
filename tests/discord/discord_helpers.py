"""Helpers and fixtures: a fake Discord on loopback and a real DiscordConnector pointed at it.

Imported by name from the tests (``conftest`` is ambiguous when the whole suite runs).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from opencomputer.bot.config import Settings
from opencomputer.bot.events import Command, Message, Reaction
from opencomputer.connectors.discord import DiscordConnector
from opencomputer.connectors.discord.gateway import ReconnectPolicy
from tests.discord.fake_discord import FakeDiscord

Event = Message | Reaction | Command


class Sink:
    """The simplest ``emit``: a list, plus a way to wait for what arrives."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Condition()
        self.on_event: Callable[[Event], Any] | None = None

    async def __call__(self, event: Event) -> None:
        self.events.append(event)
        if self.on_event is not None:
            await self.on_event(event)
        async with self._changed:
            self._changed.notify_all()

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def wait_for(self, kind: type, count: int = 1, within: float = 5.0) -> list[Any]:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: len(self.of(kind)) >= count)
        return self.of(kind)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(heartbeat_interval=0.25) as server:
        yield server


@pytest.fixture
def discord_env(fake: FakeDiscord, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_BOT_TOKEN", fake.token)
    monkeypatch.setenv("DISCORD_API_BASE_URL", fake.api_url)
    monkeypatch.setenv("DISCORD_GATEWAY_URL", fake.gateway_url)


@pytest.fixture
def sink() -> Sink:
    return Sink()


def make_connector(sink: Sink, **kw: Any) -> DiscordConnector:
    kw.setdefault("guild_ready_timeout", 0.05)
    kw.setdefault("identify_delay", 0.0)
    kw.setdefault("defer_after", 2.0)  # as in production; deferral tests pass their own
    kw.setdefault("reconnect", ReconnectPolicy(base=0.01, cap=0.05, stable_after=60))
    return DiscordConnector(Settings(_env_file=None), sink, **kw)  # type: ignore[call-arg]


@pytest.fixture
async def connector(discord_env: None, sink: Sink) -> AsyncIterator[DiscordConnector]:
    conn = make_connector(sink)
    await conn.start()
    try:
        await conn.wait_connected()
        yield conn
    finally:
        await conn.stop()
