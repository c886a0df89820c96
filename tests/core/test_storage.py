"""The repository on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from opencomputer.bot.config import Settings
from opencomputer.bot.events import Address, Chat, Message, Reaction, User
from opencomputer.bot.storage import SqlStore
from opencomputer.bot.storage.store import ReplyMeta
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.harness import Harness
from opencomputer.bot.testing.services import ServiceUnavailable, postgres_database

IN_CI = bool(os.environ.get("CI"))


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlStore]:
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / 'oc.db'}"
        else:
            try:
                url = await stack.enter_async_context(postgres_database())
            except ServiceUnavailable as exc:
                if IN_CI:
                    pytest.fail(f"{exc} (mandatory in CI)")
                pytest.skip(str(exc))
        s = SqlStore(url)
        await s.start()
        yield s
        await s.stop()


def _msg(event_id: str, text: str = "hi") -> Message:
    return Message(
        platform="tg",
        event_id=event_id,
        chat=Chat("tg", "c1"),
        user=User("tg", "u1"),
        text=text,
        message_id=f"m-{event_id}",
    )


async def test_inbound_is_deduplicated_by_platform_event(store: SqlStore) -> None:
    first = await store.accept_inbound(_msg("1"))
    assert first is not None
    assert await store.accept_inbound(_msg("1")) is None
    assert (await store.accept_inbound(_msg("2")) or 0) > first
    assert [r.event_id for r in await store.unfinished_inbound()] == ["1", "2"]
    await store.mark_inbound(first, "answered")
    assert [r.event_id for r in await store.unfinished_inbound()] == ["2"]
    assert await store.count_inbound() == 2


async def test_outbox_and_reactions(store: SqlStore) -> None:
    inbound = await store.accept_inbound(_msg("1"))
    address = Address("tg", "c1")
    reply = await store.record_reply(inbound, address, "hello", ReplyMeta(model="m", variant_id=3))
    assert [r.id for r in await store.pending_replies()] == [reply]
    await store.mark_reply_sent(reply, address, ["100", "101"])
    assert await store.pending_replies() == []
    found = await store.reply_for_message("tg", "c1", "101")
    assert found is not None and found.id == reply and found.variant_id == 3
    assert (await store.last_reply("tg:c1")).message_id == "101"
    react = Reaction(
        platform="tg",
        event_id="r1",
        chat=Chat("tg", "c1"),
        user=User("tg", "u9"),
        message_id="100",
        emoji="👍",
    )
    assert await store.record_reaction(react) == reply
    assert await store.record_reaction(react) == reply  # the same vote twice stays one row
    assert [(r.emoji, r.user_id) for r in await store.reactions_for_reply(reply)] == [("👍", "u9")]
    removed = Reaction(
        platform="tg",
        event_id="r2",
        chat=Chat("tg", "c1"),
        user=User("tg", "u9"),
        message_id="100",
        emoji="👍",
        added=False,
    )
    await store.record_reaction(removed)
    assert list(await store.reactions_for_reply(reply)) == []
    other = Reaction(
        platform="tg",
        event_id="r3",
        chat=Chat("tg", "c1"),
        user=User("tg", "u9"),
        message_id="999",
        emoji="👍",
    )
    assert await store.record_reaction(other) is None


async def test_epochs(store: SqlStore) -> None:
    assert await store.epoch("tg:c1") == 0
    assert await store.reset("tg:c1") == 1
    assert await store.reset("tg:c1") == 2
    fresh = SqlStore(store.url)
    await fresh.start()
    assert await fresh.epoch("tg:c1") == 2
    await fresh.stop()


async def test_full_turns_on_postgresql(
    postgres_url: str, make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    """Storage and graph checkpoints both on PostgreSQL; memory survives a restart."""
    settings = make_settings(OC_DATABASE_URL=postgres_url)
    assert settings.is_postgres
    fake_ollama.call_tool("calculate", expression="6*7")
    fake_ollama.reply("42")
    async with Harness(settings) as h:
        assert await h.say("what is 6*7") == "42"
    async with Harness(settings) as h:
        assert await h.say("and again?") == "echo: and again?"
    roles = [m["role"] for m in fake_ollama.chats[-1]["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user"]
