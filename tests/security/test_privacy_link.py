"""A stranger tries to become the victim through ``/link``: the whole hijack chain.

Before: ``/link`` in a group showed the code to everyone; redeeming it made the stranger the
victim's person at once, with her memories, ``/export``, ``/forget`` and her pending
approvals. Now every step must fail: no code in the group, a leaked code only *asks* the
victim, and until she confirms the stranger gets nothing. Wrong codes are audited and
throttled.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from opencomputer.bot.identity import LinkCodeRow
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.harness import Harness
from tests.memory.helpers import system_prompt
from tests.security.privacy_kit import (  # noqa: F401  (bot is a fixture)
    ADMIN,
    CODE,
    GROUP,
    STRANGER,
    VICTIM,
    actions,
    add_wipe_tool,
    bot,
    sent_to,
)

SECRET = "Their doctor's diagnosis is XQ-7781"


async def _code(h: Harness) -> str:
    answer = await h.command("link", user=VICTIM)  # in her DM
    found = CODE.search(answer)
    assert found is not None, answer
    return found.group(0)


async def _victim_with_data(h: Harness, fake: FakeOllama, ran: list[str]) -> str:
    """The victim's memory and a pending dangerous action; returns the approval id."""
    assert await h.command("memory", f"add {SECRET}", user=VICTIM) == "Remembered #1."
    add_wipe_tool(h, ran)
    fake.call_tool("wipe", path="/home/alice")
    question = await h.say("tidy my home folder", user=VICTIM)
    found = re.search(r"/approve (\d+)", question)
    assert found is not None, question
    return found.group(1)


async def test_link_hijack_chain_gives_a_stranger_nothing(
    bot: Harness,  # noqa: F811  (the fixture)
    fake_ollama: FakeOllama,
) -> None:
    ran: list[str] = []
    approval = await _victim_with_data(bot, fake_ollama, ran)

    # 1. The victim asks for a code in a group: nobody there sees one, and none is made.
    in_group = await bot.command("link", user=VICTIM, chat=GROUP, group=True)
    assert CODE.search(in_group) is None and "direct message" in in_group
    async with bot.app.store.engine.connect() as conn:
        assert (await conn.execute(select(LinkCodeRow.code))).first() is None  # type: ignore[call-overload]

    # 2. The code leaks anyway (she pasted it somewhere): the stranger redeems it in a DM.
    code = await _code(bot)
    asked = await bot.command("link", code, user=STRANGER)
    assert "asked the account that made this code to confirm" in asked
    assert f"test:{VICTIM}" not in asked  # whose code it was stays unknown to him
    question = sent_to(bot, VICTIM).rsplit("Your link code is", 1)[-1]
    assert "Mallory (test:mallory, on test)" in question and "/link deny" in question
    assert await bot.app.runtime.person_of(bot_user(STRANGER)) == f"test:{STRANGER}"

    # 3. Without her yes he gets nothing of hers.
    assert "XQ-7781" not in await bot.command("memory", user=STRANGER)
    assert "XQ-7781" not in await bot.command("export", user=STRANGER)
    fake_ollama.reply("No idea.")
    await bot.say("what did my doctor say about my health?", user=STRANGER)
    assert "XQ-7781" not in system_prompt(fake_ollama.chats[-1])
    await bot.command("forget", user=STRANGER)
    await bot.command("forget", "confirm", user=STRANGER)
    assert "XQ-7781" in await bot.command("memory", user=VICTIM)  # not forgotten
    refused = await bot.command("approve", approval, user=STRANGER)
    assert "Only the person who asked" in refused
    await bot.react(_question_id(bot), "👍", user=STRANGER, chat=VICTIM)
    await bot.app.runtime.wait_idle()
    assert ran == []
    row = await bot.app.extras["admin"].approvals.get(int(approval))
    assert row.status == "pending"

    # His /forget withdrew his own request; nothing is left for her to confirm by mistake.
    assert "No account is waiting" in await bot.command("link", "confirm", user=VICTIM)
    assert await bot.app.runtime.person_of(bot_user(STRANGER)) == f"test:{STRANGER}"

    # 4. A second leak: she refuses; the spent code cannot be tried again.
    code = await _code(bot)
    assert "asked the account" in await bot.command("link", code, user=STRANGER)
    assert "Refused: test:mallory" in await bot.command("link", "deny", user=VICTIM)
    assert "not confirmed" in sent_to(bot, STRANGER)
    assert "unknown, expired or already used" in await bot.command("link", code, user=STRANGER)
    assert await bot.app.runtime.person_of(bot_user(STRANGER)) == f"test:{STRANGER}"
    assert "XQ-7781" not in sent_to(bot, STRANGER) + sent_to(bot, GROUP)
    assert await actions(bot, f"test:{STRANGER}") == [
        "identity.link_requested",
        "data.export",
        "data.forget",
        "approval.denied",
        "approval.denied",
        "identity.link_requested",
        "identity.link_guess",
    ]
    assert await actions(bot, f"test:{VICTIM}") == ["approval.requested", "identity.link_denied"]

    # Positive control: her own second account, confirmed by her, does become her.
    asked = await bot.command("link", await _code(bot), user="alice_phone")
    assert "asked the account" in asked
    assert "Alice_Phone (test:alice_phone, on test)" in sent_to(bot, VICTIM)
    assert "Linked: this account and test:alice_phone" in await bot.command(
        "link", "confirm", user=VICTIM
    )
    assert "XQ-7781" in await bot.command("memory", user="alice_phone")
    # Even linked, another account cannot decide an approval the first one asked for.
    assert "Only the person who asked" in await bot.command("approve", approval, user="alice_phone")
    fake_ollama.reply("Wiped.")
    assert await bot.command("approve", approval, user=VICTIM) == "Wiped."
    assert ran == ["/home/alice"]


def bot_user(name: str) -> Any:
    from opencomputer.bot.events import User

    return User("test", name)


def _question_id(h: Harness) -> str:
    """The message id of the approval question in the victim's DM."""
    return next(
        c.message_id
        for c in h.conn.calls
        if c.action == "send"
        and c.address.chat_id == VICTIM
        and "/approve" in h.conn.messages[c.message_id]  # posted as a placeholder, then edited
    )


async def test_wrong_codes_are_audited_and_throttled(
    bot: Harness,  # noqa: F811  (the fixture)
) -> None:
    code = await _code(bot)
    wrong = [("ABCDEFGH", "QRSTUVWX", "23456789", "HJKLMNPQ", "ZZZZZZZZ")]
    for guess in wrong[0]:
        assert "unknown" in await bot.command("link", guess, user=STRANGER)
    # Out of guesses: even the right code is not looked at.
    assert "Too many wrong link codes" in await bot.command("link", code, user=STRANGER)
    assert await actions(bot, f"test:{STRANGER}") == ["identity.link_guess"] * 5 + [
        "identity.link_throttled"
    ]
    assert "Someone used your link code" not in sent_to(bot, VICTIM)
    # The code is still unused: her own account can redeem it.
    assert "asked the account" in await bot.command("link", code, user="alice_phone")

    # Many accounts together meet the shared limit (a guesser with a botnet of accounts).
    identity = bot.app.extras["admin"].identity
    for n in range(identity.guesses_total):
        if identity.throttled(f"test:sock{n}"):
            break
        await bot.command("link", "ABCDEFGH", user=f"sock{n}")
    assert identity.throttled("test:someone_new")
    assert "Too many wrong" in await bot.command("link", "ABCDEFGH", user="fresh")


async def test_codes_are_single_use_and_expire(
    bot: Harness,  # noqa: F811  (the fixture)
) -> None:
    code = await _code(bot)
    assert "asked the account" in await bot.command("link", code, user="alice_phone")
    assert "unknown, expired" in await bot.command("link", code, user=STRANGER)
    identity = bot.app.extras["admin"].identity
    identity.code_ttl = -1  # every code and question made from now on is already expired
    code = await _code(bot)
    assert "unknown, expired" in await bot.command("link", code, user="alice_phone")
    identity.code_ttl = 600.0
    await _code(bot)  # a new code drops the open question
    assert "No account is waiting" in await bot.command("link", "confirm", user=VICTIM)
    assert "own code" in await bot.command("link", await _code(bot), user=VICTIM)
    assert ADMIN not in sent_to(bot, VICTIM)
