"""The SQLite writer: checkpoints deferred into a turn's transaction, and a write-ahead log that
the writer checkpoints itself, between transactions, bounded under continuous load.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint

from opencomputer.bot.events import Address, Chat, Message, User
from opencomputer.bot.storage import SqlStore
from opencomputer.bot.storage import writer as writer_module
from opencomputer.bot.storage.store import ReplyMeta
from opencomputer.bot.storage.writer import SqliteWriter
from opencomputer.graphs.agent.checkpointer import open_checkpointer
from opencomputer.graphs.agent.sqlite_saver import WriterSaver

CONFIG: Any = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    s = SqlStore(f"sqlite:///{tmp_path / 'oc.db'}")
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


@pytest.fixture
async def saver(store: SqlStore) -> AsyncIterator[WriterSaver]:
    async with open_checkpointer(store.url, store.writer) as found:
        assert isinstance(found, WriterSaver)
        yield found


def _writer(store: SqlStore) -> SqliteWriter:
    assert store.writer is not None
    return store.writer


def _msg(event_id: str) -> Message:
    return Message(
        platform="tg", event_id=event_id, chat=Chat("tg", "c1"), user=User("tg", "u1"), text="hi"
    )


def _stored_checkpoints(tmp_path: Path) -> int:
    """What another connection sees in the checkpoints' file (committed rows only)."""
    with contextlib.closing(sqlite3.connect(tmp_path / "oc-checkpoints.db")) as conn:
        return int(conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0])


async def until(what: str, check: Callable[[], bool], timeout: float = 10) -> None:
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_a_checkpoint_is_committed_with_the_turns_reply(
    store: SqlStore, saver: WriterSaver, tmp_path: Path
) -> None:
    inbound = await store.accept_inbound(_msg("1"))
    await saver.aput(CONFIG, empty_checkpoint(), {}, {})
    assert _stored_checkpoints(tmp_path) == 0  # deferred: no commit of its own
    assert await saver.aget_tuple(CONFIG) is not None  # yet this process reads it
    await store.record_reply(inbound, Address("tg", "c1"), "hello", ReplyMeta())
    assert _stored_checkpoints(tmp_path) == 1  # one transaction with the outbox row


async def test_a_read_through_the_writer_commits_what_is_deferred_first(
    store: SqlStore, saver: WriterSaver, tmp_path: Path
) -> None:
    await saver.aput(CONFIG, empty_checkpoint(), {}, {})
    saver.latest.drop(("t", ""))  # not from memory: from the file
    found = await saver.aget_tuple(CONFIG)
    assert found is not None and _stored_checkpoints(tmp_path) == 1


async def test_a_failing_transaction_keeps_the_deferred_checkpoint(
    store: SqlStore, saver: WriterSaver, tmp_path: Path
) -> None:
    assert await store.accept_inbound(_msg("1")) is not None
    await saver.aput(CONFIG, empty_checkpoint(), {}, {})
    assert await store.accept_inbound(_msg("1")) is None  # a duplicate: its insert fails
    assert _stored_checkpoints(tmp_path) == 1  # the checkpoint went in all the same
    assert [r.event_id for r in await store.unfinished_inbound()] == ["1"]


async def test_an_unjoined_checkpoint_is_committed_by_the_timer(
    store: SqlStore, saver: WriterSaver, tmp_path: Path
) -> None:
    await saver.aput(CONFIG, empty_checkpoint(), {}, {})
    await until("the deferred checkpoint", lambda: _stored_checkpoints(tmp_path) == 1)


async def test_closing_the_store_writes_what_is_deferred(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'oc.db'}")
    await store.start()
    async with open_checkpointer(store.url, store.writer) as saver:
        await saver.aput(CONFIG, empty_checkpoint(), {}, {})
    await store.stop()
    assert _stored_checkpoints(tmp_path) == 1


async def test_the_writer_never_lets_sqlite_checkpoint_inside_a_commit(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "_IDLE_COMMITS", 1)
    writer = _writer(store)
    assert await store.accept_inbound(_msg("1")) is not None
    auto = await writer.read(lambda tx: tx.conn.execute("PRAGMA wal_autocheckpoint").fetchone())
    assert auto[0] == 0
    before = writer.checkpoints
    await until("a checkpoint once idle", lambda: writer.checkpoints > before)


async def test_the_log_stays_bounded_under_continuous_writes(
    store: SqlStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never idle (always a transaction waiting): the log is checkpointed every
    ``_MAX_COMMITS`` commits all the same, so it is reused instead of growing.
    """
    monkeypatch.setattr(writer_module, "_MAX_COMMITS", 20)
    writer = _writer(store)
    wal = tmp_path / "oc.db-wal"
    sizes: list[int] = []
    for batch in range(15):  # 600 commits, 40 in flight at a time
        ids = [f"{batch}-{i}" for i in range(40)]
        await asyncio.gather(*(store.accept_inbound(_msg(e)) for e in ids))
        sizes.append(wal.stat().st_size)
    # One every 20 commits as the loop sees them; on a busy machine up to the 40 in flight
    # commit between two looks (14 seen under load), so at least one per 80.
    assert writer.checkpoints >= 600 // 80
    # Once the first checkpoints ran, the log is rewound and reused: it stops growing.
    assert max(sizes) <= 2 * sizes[2], sizes
    assert await store.count_inbound() == 600
