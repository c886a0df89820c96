"""Claiming stored messages on PostgreSQL: the one-statement path for a new message, and the
full transaction for everything else (older messages waiting, another worker's turn, a race).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event, select

from opencomputer.bot.events import Chat, Message, User
from opencomputer.bot.scale.claims import claim_up_to
from opencomputer.bot.storage.models import InboundRow
from opencomputer.bot.storage.store import SqlStore

_IN = InboundRow.__table__  # type: ignore[attr-defined]


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[SqlStore]:
    s = SqlStore(postgres_url)
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


async def _accept(store: SqlStore, n: int, chat: str = "c") -> int:
    msg = Message(
        platform="test",
        event_id=f"e{n}",
        chat=Chat("test", chat),
        user=User("test", chat),
        text=f"m{n}",
        message_id=f"m{n}",
    )
    iid = await store.accept_inbound(msg)
    assert iid is not None
    return iid


async def _status(store: SqlStore, iid: int) -> tuple[str, str | None]:
    async with store.engine.connect() as conn:
        row = (await conn.execute(select(_IN.c.status, _IN.c.owner).where(_IN.c.id == iid))).one()
    return str(row.status), row.owner


def _count_statements(store: SqlStore) -> list[str]:
    seen: list[str] = []

    def note(*args: Any) -> None:
        seen.append(str(args[2]).split()[0])

    event.listen(store.engine.sync_engine, "before_cursor_execute", note)
    return seen


async def test_a_new_message_is_claimed_in_one_statement(store: SqlStore) -> None:
    iid = await _accept(store, 1)
    seen = _count_statements(store)
    claim = await claim_up_to(store, "test:c", iid, "w1", 10.0)
    assert seen == ["UPDATE"]  # no SELECT, no transaction around it
    assert claim.complete and [int(r.id) for r, _ in claim.rows] == [iid]
    assert claim.rows[0][1] is False  # not resumed: a first attempt
    assert await _status(store, iid) == ("processing", "w1")


async def test_older_waiting_messages_are_claimed_first_in_order(store: SqlStore) -> None:
    first, second = await _accept(store, 1), await _accept(store, 2)
    claim = await claim_up_to(store, "test:c", second, "w1", 10.0)
    assert claim.complete and [int(r.id) for r, _ in claim.rows] == [first, second]
    assert await _status(store, first) == ("processing", "w1")


async def test_another_workers_live_turn_keeps_the_order(store: SqlStore) -> None:
    first, second = await _accept(store, 1), await _accept(store, 2)
    assert (await claim_up_to(store, "test:c", first, "w1", 10.0)).complete
    claim = await claim_up_to(store, "test:c", second, "w2", 10.0)
    assert not claim.complete and claim.rows == []
    assert await _status(store, second) == ("accepted", None)  # untouched: waits its turn


async def test_two_workers_racing_for_one_message_one_wins(store: SqlStore) -> None:
    for n in range(10):
        iid = await _accept(store, n, chat=f"r{n}")
        claims = await asyncio.gather(
            claim_up_to(store, f"test:r{n}", iid, "w1", 10.0),
            claim_up_to(store, f"test:r{n}", iid, "w2", 10.0),
        )
        winners = [c for c in claims if c.rows]
        assert len(winners) == 1, claims
        owner = "w1" if winners[0] is claims[0] else "w2"
        assert await _status(store, iid) == ("processing", owner)
