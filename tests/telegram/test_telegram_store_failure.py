"""An update the runtime cannot store is not confirmed to Telegram (issue 19).

``getUpdates`` with ``offset = last + 1`` confirms every update below it, so while the runtime
refuses an update (a full disk: ``DiskFull``, or SQLite's own "database or disk is full") the
offset must stay on it, however long the streak; it is never quarantined (the disk, not the
update, is at fault); and once storage is back it is taken once, without waiting for a long
backoff to run out.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from opencomputer.bot.config import Settings
from opencomputer.bot.events import Command, Message, Reaction
from opencomputer.bot.storage import SqlStore
from opencomputer.bot.storage.disk import DiskFull
from opencomputer.connectors.telegram import TelegramConnector
from tests.telegram.fake_bot_api import FakeBotApi
from tests.telegram.telegram_helpers import FAST


class RefusingSink:
    """Stores like the runtime does (real SQLite) unless ``refusal`` is set."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.refusal: Exception | None = None
        self.refused = 0
        self.events: list[Message | Reaction | Command] = []

    async def __call__(self, event: Message | Reaction | Command) -> None:
        if self.refusal is not None:
            self.refused += 1
            raise self.refusal
        if isinstance(event, Message):
            await self.store.accept_inbound(event)
        self.events.append(event)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    db = SqlStore(f"sqlite:///{tmp_path / 'oc.db'}")
    await db.start()
    yield db
    await db.stop()


async def _until(check: Callable[[], bool], within: float = 20.0) -> None:
    async with asyncio.timeout(within):
        while not check():
            await asyncio.sleep(0.02)


@pytest.mark.parametrize(
    "refusal",
    [DiskFull("the disk is full"), sqlite3.OperationalError("database or disk is full")],
    ids=["disk-full", "sqlite-full"],
)
async def test_refused_update_keeps_the_offset_and_is_taken_once_soon_after(
    tg: FakeBotApi,
    tg_settings: Callable[..., Settings],
    store: SqlStore,
    refusal: Exception,
) -> None:
    # Production-like backoff (doubling, capped at two minutes) with a short handover cap.
    options = dataclasses.replace(FAST, retry_base=0.05, retry_cap=120.0, handover_cap=0.3)
    sink = RefusingSink(store)
    conn = TelegramConnector(tg_settings(), sink, options=options)
    await conn.start()
    try:
        async with asyncio.timeout(5):
            await conn.connected.wait()
        sink.refusal = refusal
        uid = await tg.push(tg.message("keep me", chat_id=61, user_id=61))
        other = await tg.push(tg.message("me too", chat_id=62, user_id=62))
        polls = len(tg.calls_to("getUpdates"))
        await _until(lambda: sink.refused >= 10)  # uncapped, the 10th wait would be ~25 s
        asked: list[Any] = [c.get("offset") for c in tg.calls_to("getUpdates")[polls:]]
        assert asked and all(int(o or 0) <= uid for o in asked), asked  # never confirmed
        assert conn.quarantine.entries() == []

        sink.refusal = None
        freed = time.monotonic()
        await _until(lambda: len(sink.events) == 2, within=5)
        taken_after = time.monotonic() - freed
        assert [getattr(e, "text", "") for e in sink.events] == ["keep me", "me too"]
        await tg.wait_for("getUpdates", lambda c: int(c.get("offset") or 0) == other + 1)
        assert await store.count_inbound() == 2  # each stored once
        assert taken_after < 2.0, taken_after
    finally:
        await conn.stop()


async def test_held_long_message_refused_on_a_full_disk_logs_once_and_is_taken_once(
    tg: FakeBotApi,
    tg_settings: Callable[..., Settings],
    store: SqlStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A near-limit message waits in the joiner for its continuation, then is refused."""
    caplog.set_level(logging.INFO, "opencomputer.connectors.telegram")
    options = dataclasses.replace(FAST, join_window=0.1)
    sink = RefusingSink(store)
    conn = TelegramConnector(tg_settings(), sink, options=options)
    await conn.start()
    try:
        async with asyncio.timeout(5):
            await conn.connected.wait()
        sink.refusal = DiskFull("the disk is full")
        await tg.push(tg.message("b" * 4000, chat_id=63, user_id=63))
        await _until(lambda: sink.refused >= 5)  # offered again after each window
        sink.refusal = None
        await _until(lambda: len(sink.events) == 1)
        assert await store.count_inbound() == 1
        await _until(lambda: any("again" in r.getMessage() for r in _joiner(caplog)))
    finally:
        await conn.stop()
    errors = [r for r in _joiner(caplog) if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]  # one line for the streak


def _joiner(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "opencomputer.connectors.telegram.joiner"]
