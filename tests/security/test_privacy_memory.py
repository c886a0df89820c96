"""A stranger in a group chat tries to read what a person told the bot in private.

Attacks: the private commands asked in a group (their answers would be read by everyone
there); the model's prompt in a group turn (a DM memory recalled into it would be repeated to
the group); a memory store from before memories had an origin.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select, text

from opencomputer.bot.config import Settings
from opencomputer.bot.identity import LinkCodeRow
from opencomputer.bot.memory.models import MemoryRow
from opencomputer.bot.storage.engine import create_engine
from opencomputer.bot.storage.migrate import upgrade
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.harness import Harness
from tests.legacy_store import strip_to_legacy
from tests.memory.helpers import system_prompt
from tests.security.privacy_kit import (  # noqa: F401  (bot is a fixture)
    ADMIN,
    CODE,
    GROUP,
    STRANGER,
    VICTIM,
    bot,
    everything_sent_to_model,
    privacy_settings,
    sent_to,
    topic_embedding,
)

SECRET = "Their salary is 91234 a year at the bank"
GROUP_FACT = "Their favourite pizza is margherita"


async def _remember(h: Harness, fake: FakeOllama, fact: str, **where: Any) -> None:
    fake.call_tool("remember", fact=fact)
    fake.reply("Noted.")
    answer = await h.say(f"please remember: {fact}", user=VICTIM, **where)
    if "needs your approval" in answer:  # a group turn read outside content: an owner says yes
        answer = await h.command("approve", user=ADMIN, chat=where.get("chat"), group=True)
    assert answer == "Noted."
    assert fake.chats[-1]["messages"][-1]["content"].startswith("remembered (memory")


@pytest.mark.parametrize("command", ["link", "memory", "export", "forget", "unlink"])
async def test_private_commands_in_a_group_reveal_nothing(
    bot: Harness,  # noqa: F811  (the fixture)
    fake_ollama: FakeOllama,
    command: str,
) -> None:
    await bot.command("memory", f"add {SECRET}", user=VICTIM)  # in her DM
    for args in ("", "list", "confirm", "add stolen fact"):
        answer = await bot.command(command, args, user=VICTIM, chat=GROUP, group=True)
        assert answer == f"/{command} works only in a direct message: send it to me privately."
    seen = sent_to(bot, GROUP)
    assert "91234" not in seen and CODE.search(seen) is None and "```json" not in seen
    async with bot.app.store.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(LinkCodeRow)) == 0
        texts = [r[0] for r in await conn.execute(select(MemoryRow.text))]  # type: ignore[call-overload]
    assert texts == [SECRET]  # nothing added from the group, nothing forgotten
    # In her DM the same commands work.
    assert "91234" in await bot.command("memory", user=VICTIM)


@pytest.mark.parametrize("backend", ["sqlite-vec", "exact"])
async def test_dm_memory_never_reaches_a_group_prompt(
    make_settings: Any, fake_ollama: FakeOllama, backend: str
) -> None:
    fake_ollama.embedder = topic_embedding
    async with Harness(privacy_settings(make_settings, OC_MEMORY_BACKEND=backend)) as h:
        assert h.app.extras["memory"].index.name == backend
        await _remember(h, fake_ollama, SECRET)  # told in her DM
        # Many private memories on the same topic as the group's: they must not crowd it out.
        for n in range(8):
            await h.command("memory", f"add Their pizza order number {n} is private", user=VICTIM)
        await _remember(h, fake_ollama, GROUP_FACT, chat=GROUP, group=True)

        # The stranger asks in the group what she earns, naming every private topic.
        before = len(fake_ollama.chats)
        fake_ollama.reply("I can't say.")
        await h.say("what is alice's salary at the bank?", user=STRANGER, chat=GROUP, group=True)
        # She herself asks in the group: still her DM memories stay out of the group turn.
        for question in ("how much money do I earn?", "what pizza do I like for dinner?"):
            fake_ollama.reply("ok")
            await h.say(question, user=VICTIM, chat=GROUP, group=True)
        group_turns = everything_sent_to_model(fake_ollama, since=before)
        assert "91234" not in group_turns and "order number" not in group_turns
        # A group memory comes back in its own group (the private ones did not crowd it out)...
        assert GROUP_FACT in system_prompt(fake_ollama.chats[-1])
        # ...in any thread of that group...
        fake_ollama.reply("ok")
        await h.say("pizza for dinner?", user=VICTIM, chat=GROUP, group=True, thread="t1")
        assert GROUP_FACT in system_prompt(fake_ollama.chats[-1])
        assert "91234" not in system_prompt(fake_ollama.chats[-1])
        # ...but not in another group, and a DM memory not there either.
        fake_ollama.reply("ok")
        await h.say("what pizza do I like? my salary?", user=VICTIM, chat="office", group=True)
        assert GROUP_FACT not in system_prompt(fake_ollama.chats[-1])
        assert "91234" not in system_prompt(fake_ollama.chats[-1])
        # Positive control: in her DM the private memory is recalled.
        fake_ollama.reply("ok")
        await h.say("how much money do I earn?", user=VICTIM)
        assert SECRET in system_prompt(fake_ollama.chats[-1])
        assert "91234" not in sent_to(h, GROUP) + sent_to(h, "office")
        # Her export says where each memory was learned.
        exported = await h.command("export", user=VICTIM)
        assert (
            '"learned_in": "direct"' in exported and '"learned_in": "group test:lobby"' in exported
        )


async def test_memories_from_before_the_origin_column_count_as_private(
    make_settings: Any, fake_ollama: FakeOllama
) -> None:
    await _older_store_reads_as_private(privacy_settings(make_settings), fake_ollama)


@pytest.mark.postgres
async def test_older_store_on_postgresql_gets_the_columns_and_reads_as_private(
    make_settings: Any, fake_ollama: FakeOllama, postgres_url: str
) -> None:
    settings = privacy_settings(make_settings, OC_DATABASE_URL=postgres_url)
    await _older_store_reads_as_private(settings, fake_ollama)


async def _older_store_reads_as_private(settings: Settings, fake_ollama: FakeOllama) -> None:
    fake_ollama.embedder = topic_embedding
    async with Harness(settings) as h:
        await _remember(h, fake_ollama, SECRET, chat=GROUP, group=True)  # even from a group
    # Turn the store into one an older release made: no origin columns, no new link columns,
    # no migrations yet.
    engine = create_engine(settings.resolved_database_url)
    async with engine.begin() as conn:
        for table, column in [
            ("memories", "origin"),
            ("memories", "origin_chat"),
            ("identity_link_codes", "joiner_key"),
            ("identity_link_codes", "address"),
        ]:
            await conn.execute(text(f"ALTER TABLE {table} DROP COLUMN {column}"))
        await strip_to_legacy(conn)  # what later revisions added, and the revision stamp
    await engine.dispose()
    if settings.database_url:  # a configured database: `opencomputer db upgrade` migrates it
        await upgrade(settings.resolved_database_url)  # (the embedded default does it at start)

    async with Harness(settings) as h:  # starts on the upgraded store
        fake_ollama.reply("ok")
        await h.say("what do I earn at the bank?", user=VICTIM, chat=GROUP, group=True)
        assert "91234" not in system_prompt(fake_ollama.chats[-1])  # unknown origin: private
        fake_ollama.reply("ok")
        await h.say("what do I earn at the bank?", user=VICTIM)
        assert SECRET in system_prompt(fake_ollama.chats[-1])
        assert CODE.search(await h.command("link", user=VICTIM)) is not None
