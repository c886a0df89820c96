"""Fixtures and helpers for the Telegram tests: the fake Bot API, a list sink, a connector."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from opencomputer.bot.config import Settings, load_settings
from opencomputer.bot.events import Command, Message, Reaction
from opencomputer.connectors.telegram import TelegramConnector, TelegramOptions
from opencomputer.connectors.telegram.limiter import LimiterConfig
from tests.telegram.fake_bot_api import FakeBotApi

FAST_LIMITS = LimiterConfig(
    chat_interval=0.01, chat_burst=5, group_interval=0.01, group_burst=5, global_rate=1000
)
FAST = TelegramOptions(
    poll_timeout=1, join_window=0.5, retry_base=0.05, retry_cap=0.2, limits=FAST_LIMITS
)


@pytest.fixture(autouse=True)
def _ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opt in to PTB 23's timedelta periods: PTB 22 warns on int ones (warnings are errors)."""
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
async def tg() -> AsyncIterator[FakeBotApi]:
    """The fake Bot API on a free loopback port."""
    async with FakeBotApi() as fake:
        yield fake


@pytest.fixture
def tg_settings(tg: FakeBotApi, tmp_path: Path) -> Callable[..., Settings]:
    """Settings pointing the connector at the fake, with a fresh data directory."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "TELEGRAM_BOT_TOKEN": tg.token,
            "TELEGRAM_BASE_URL": tg.base_url,
            "OC_DATA_DIR": tmp_path / "data",
        }
        values.update(overrides)
        return load_settings(**values)

    return make


class Sink:
    """An ``emit`` that appends to a list; ``wait`` awaits a number of events."""

    def __init__(self) -> None:
        self.events: list[Message | Reaction | Command] = []
        self._changed = asyncio.Condition()
        self.fail: Exception | None = None

    async def __call__(self, event: Message | Reaction | Command) -> None:
        if self.fail is not None:
            raise self.fail
        self.events.append(event)
        async with self._changed:
            self._changed.notify_all()

    async def wait(self, count: int = 1, within: float = 5.0) -> list[Message | Reaction | Command]:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: len(self.events) >= count)
        return self.events


@pytest.fixture
def sink() -> Sink:
    """A list-appending inbound sink."""
    return Sink()


@pytest.fixture
async def connector(
    tg_settings: Callable[..., Settings], sink: Sink
) -> AsyncIterator[TelegramConnector]:
    """A started, connected polling connector."""
    conn = TelegramConnector(tg_settings(), sink, options=FAST)
    await conn.start()
    async with asyncio.timeout(5):
        await conn.connected.wait()
    yield conn
    await conn.stop()
