"""A person's notes asked for in a group chat, where everyone reads the answer.

Before, ``/notes`` and the ``list_notes`` tool answered in a group with every note the person
had saved in private: the plugin was handed the chat's address only, which cannot tell a DM
from a group. Attacks: the owner (or a stranger) asks in the group by command and through the
model; numbered note tools echo a note's text; another member reads someone else's list. The
rule under test is the memories' one: in a group only notes made in that group are shown.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.harness import Harness
from tests.plugins.conftest import enable_dir_plugins, make_plugin
from tests.security.privacy_kit import (  # noqa: F401  (bot is a fixture)
    ADMIN,
    GROUP,
    STRANGER,
    VICTIM,
    bot,
    everything_sent_to_model,
    privacy_settings,
    sent_to,
)

LOCKER = "LOCKER-4471 is the code of my locker"
CLINIC = "clinic appointment about the biopsy results"
PROJECTOR = "bring the projector to the lobby meeting"
PRIVATE = "Your notes are private: ask me in a direct message."
OTHERS_PRIVATE = "Your other notes are private: ask me in a direct message."


async def _model_turn(
    h: Harness, fake: FakeOllama, tool: str, arguments: dict[str, Any], **where: Any
) -> str:
    """One turn in which the model calls ``tool``; returns what the tool gave the model."""
    fake.call_tool(tool, **arguments)
    fake.reply("ok")
    answer = await h.say(f"please use {tool}", **where)
    if "needs your approval" in answer:  # the turn read outside content (a note, a group)
        group = where.get("group", False)  # in a group an admin decides, in a DM the person
        approver = ADMIN if group else where["user"]
        answer = await h.command("approve", user=approver, chat=where.get("chat"), group=group)
    assert answer == "ok"
    last = fake.chats[-1]["messages"][-1]  # the conversation keeps earlier turns' results
    assert last["role"] == "tool", last
    return str(last["content"])


async def _dm_notes(h: Harness, fake: FakeOllama) -> None:
    """The victim saves two private notes in her DM, through the model."""
    assert await _model_turn(h, fake, "add_note", {"text": LOCKER}, user=VICTIM) == (
        "Saved as note 1."
    )
    saved = await _model_turn(h, fake, "add_note", {"text": CLINIC, "todo": True}, user=VICTIM)
    assert saved == "Saved as note 2."


def _leaked(text: str) -> bool:
    return "LOCKER-4471" in text or "biopsy" in text


async def test_dm_notes_never_reach_a_group_by_command_or_tool(
    bot: Harness,  # noqa: F811  (the fixture)
    fake_ollama: FakeOllama,
) -> None:
    await _dm_notes(bot, fake_ollama)
    before = len(fake_ollama.chats)
    in_group = {"user": VICTIM, "chat": GROUP, "group": True}

    # The owner herself asks in the group: the command and the model's tool both refuse.
    assert await bot.command("notes", **in_group) == PRIVATE
    assert await _model_turn(bot, fake_ollama, "list_notes", {}, **in_group) == PRIVATE
    # The numbered tools would echo a note's text ("Done: ...", "Deleted: ..."): they see
    # only the group's notes, so number 1 does not exist here, and nothing is changed.
    for name in ("complete_note", "delete_note"):
        result = await _model_turn(bot, fake_ollama, name, {"number": 1}, **in_group)
        assert result == "error: there is no note number 1 here (there are 0)", result

    # A stranger in the same group gets his own (empty) list, never hers.
    mallory = {"user": STRANGER, "chat": GROUP, "group": True}
    assert await bot.command("notes", **mallory) == "No notes yet."
    assert await _model_turn(bot, fake_ollama, "list_notes", {}, **mallory) == "No notes yet."
    for name in ("complete_note", "delete_note"):
        result = await _model_turn(bot, fake_ollama, name, {"number": 1}, **mallory)
        assert result == "error: there is no note number 1 (there are 0)", result
    # ...and not in his own DM either.
    assert await bot.command("notes", user=STRANGER) == "No notes yet."

    assert not _leaked(sent_to(bot, GROUP))
    assert not _leaked(everything_sent_to_model(fake_ollama, since=before))

    # In her DM everything still works, untouched by the attempts above.
    assert await bot.command("notes", user=VICTIM) == f"1. {LOCKER}\n2. [ ] {CLINIC}"
    listed = await _model_turn(bot, fake_ollama, "list_notes", {}, user=VICTIM)
    assert listed == f"1. {LOCKER}\n2. [ ] {CLINIC}"
    done = await _model_turn(bot, fake_ollama, "complete_note", {"number": 2}, user=VICTIM)
    assert done == f"Done: {CLINIC}"
    assert await bot.command("notes", user=VICTIM) == f"1. {LOCKER}\n2. [x] {CLINIC}"


async def test_group_notes_stay_in_their_group_and_dm_shows_all(
    bot: Harness,  # noqa: F811  (the fixture)
    fake_ollama: FakeOllama,
) -> None:
    await _dm_notes(bot, fake_ollama)
    in_group = {"user": VICTIM, "chat": GROUP, "group": True}
    saved = await _model_turn(bot, fake_ollama, "add_note", {"text": PROJECTOR}, **in_group)
    assert saved == "Saved as note 1."  # its number in this group's list, not her third

    # In the group: only the note made there, numbered from 1, and one line about the rest.
    assert await bot.command("notes", **in_group) == f"1. {PROJECTOR}\n{OTHERS_PRIVATE}"
    # Any thread of the same group is the same place.
    assert await _model_turn(bot, fake_ollama, "list_notes", {}, thread="t1", **in_group) == (
        f"1. {PROJECTOR}\n{OTHERS_PRIVATE}"
    )
    # Number 1 in the group is the group's note, not her first private one.
    done = await _model_turn(bot, fake_ollama, "complete_note", {"number": 1}, **in_group)
    assert done == f"Done: {PROJECTOR}"
    # Another group sees none of them.
    office = {"user": VICTIM, "chat": "office", "group": True}
    assert await bot.command("notes", **office) == PRIVATE
    assert not _leaked(sent_to(bot, GROUP) + sent_to(bot, "office"))
    assert PROJECTOR not in sent_to(bot, "office")

    # Her DM shows everything, wherever it was made.
    assert await bot.command("notes", user=VICTIM) == (
        f"1. {LOCKER}\n2. [ ] {CLINIC}\n3. [x] {PROJECTOR}"
    )
    deleted = await _model_turn(bot, fake_ollama, "delete_note", {"number": 1}, user=VICTIM)
    assert deleted == f"Deleted: {LOCKER}"
    assert await bot.command("notes", **in_group) == f"1. [x] {PROJECTOR}\n{OTHERS_PRIVATE}"


async def test_notes_saved_before_they_had_an_origin_count_as_private(
    bot: Harness,  # noqa: F811  (the fixture)
) -> None:
    from opencomputer.bot.plugins.api import KeyValueStore

    store = KeyValueStore(bot.app.settings.data_dir / "plugins" / "notes" / "kv.sqlite3")
    old = {"text": LOCKER, "todo": False, "done": False, "at": 1.0}
    await store.set(f"notes:test:{VICTIM}", [old])
    store.close()
    assert await bot.command("notes", user=VICTIM, chat=GROUP, group=True) == PRIVATE
    assert await bot.command("notes", user=VICTIM) == f"1. {LOCKER}"


WHERE = '''
from opencomputer.bot.plugins.api import PluginContext, command, tool

@tool
async def where(ctx: PluginContext) -> str:
    """Say where the call was made."""
    return f"{ctx.chat_kind}|{ctx.private}|{ctx.chat}"

@command("where")
async def where_command(args: str, ctx: PluginContext) -> str:
    """Say where the command was run."""
    return f"{ctx.chat_kind}|{ctx.private}|{ctx.chat}"
'''


@pytest.mark.parametrize("group", [True, False])
async def test_a_third_party_plugin_is_told_the_chat_kind(
    make_settings: Any, fake_ollama: FakeOllama, tmp_path: Any, group: bool
) -> None:
    plugins = tmp_path / "user-plugins"
    make_plugin(
        plugins,
        "whereami",
        WHERE,
        tools=[{"name": "where", "effects": [], "trusted_output": True}],
        commands=[{"name": "where"}],
    )
    settings = privacy_settings(make_settings, OC_PLUGIN_DIRS=str(plugins))
    async with Harness(settings) as h:
        await enable_dir_plugins(h)
        chat = GROUP if group else VICTIM
        expected = f"group|False|test:{chat}" if group else f"direct|True|test:{chat}"
        assert await h.command("where", user=VICTIM, chat=chat, group=group) == expected
        where = {"user": VICTIM, "chat": chat, "group": group}
        assert await _model_turn(h, fake_ollama, "where", {}, **where) == expected


async def test_dm_reminders_stay_out_of_a_group_listing(
    bot: Harness,  # noqa: F811  (the fixture)
    fake_ollama: FakeOllama,
) -> None:
    """``/schedules`` had the same leak: every reminder of the person, listed in the group."""
    when = (datetime.now(UTC) + timedelta(days=2)).replace(tzinfo=None).isoformat("T", "minutes")
    dm = await _model_turn(
        bot, fake_ollama, "schedule", {"what": LOCKER, "when": when, "timezone": "UTC"}, user=VICTIM
    )
    assert dm.startswith("scheduled #1:"), dm
    in_group = {"user": VICTIM, "chat": GROUP, "group": True}
    arguments = {"what": PROJECTOR, "when": when, "timezone": "UTC"}
    made_here = await _model_turn(bot, fake_ollama, "schedule", arguments, **in_group)
    assert made_here.startswith("scheduled #2:"), made_here

    listed = await bot.command("schedules", **in_group)
    assert "#2" in listed and PROJECTOR in listed and "#1" not in listed, listed
    assert listed.endswith("\nYour other schedules are private: ask me in a direct message.")
    assert await bot.command("schedules", **{**in_group, "chat": "office"}) == (
        "Your schedules are private: ask me in a direct message."
    )
    # A private schedule cannot be cancelled from a group either (its id is no secret).
    assert await bot.command("schedules", "cancel 1", **in_group) == (
        "You have no active schedule #1 here."
    )
    assert not _leaked(sent_to(bot, GROUP) + sent_to(bot, "office"))
    assert await bot.command("schedules", user=STRANGER, chat=GROUP, group=True) == (
        "You have no reminders or scheduled tasks."
    )

    in_dm = await bot.command("schedules", user=VICTIM)  # her DM: both, still active
    assert LOCKER in in_dm and PROJECTOR in in_dm, in_dm
    assert await bot.command("schedules", "cancel 1", user=VICTIM) == "Cancelled #1."
