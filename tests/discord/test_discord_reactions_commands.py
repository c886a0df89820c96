from __future__ import annotations

import asyncio

import pytest

from opencomputer.bot.connector import CommandSpec, ConnectorState
from opencomputer.bot.events import Address, ChatKind, Command, Reaction
from opencomputer.connectors.discord import DiscordConnector
from tests.discord import discord_payloads as p
from tests.discord.discord_helpers import Sink, make_connector
from tests.discord.fake_discord import FakeDiscord

CHANNEL = Address("discord", p.CHANNEL_ID)
SPECS = [
    CommandSpec("help", "Show what I can do."),
    CommandSpec("reset", "Start a new conversation.", aliases=("new",)),
    CommandSpec("prompt", "Manage prompt variants.", admin=True, args="list | show <id>"),
]


async def test_reaction_on_bot_reply_becomes_reaction(
    fake: FakeDiscord, connector: DiscordConnector, sink: Sink
):
    mid = await connector.send(CHANNEL, "an answer")
    await fake.dispatch(
        "MESSAGE_REACTION_ADD",
        p.reaction(message_id=mid, channel_id=p.CHANNEL_ID, emoji="👍", guild_id=p.GUILD_ID),
    )
    await fake.dispatch(
        "MESSAGE_REACTION_REMOVE",
        p.reaction(
            message_id=mid,
            channel_id=p.CHANNEL_ID,
            emoji="👍",
            guild_id=p.GUILD_ID,
            message_author_id=None,
        ),
    )
    added, removed = await sink.wait_for(Reaction, 2)
    assert (added.message_id, added.emoji, added.added) == (mid, "👍", True)
    assert added.chat.id == p.CHANNEL_ID and added.user.id == p.USER_ID
    assert added.user.name == "Alice"
    assert (removed.message_id, removed.emoji, removed.added) == (mid, "👍", False)
    assert added.event_id != removed.event_id


async def test_reactions_elsewhere_are_ignored(
    fake: FakeDiscord, connector: DiscordConnector, sink: Sink
):
    mid = await connector.send(CHANNEL, "ours")
    other = fake.new_id()
    await fake.dispatch(  # on someone else's message
        "MESSAGE_REACTION_ADD",
        p.reaction(
            message_id=other,
            channel_id=p.CHANNEL_ID,
            emoji="😂",
            guild_id=p.GUILD_ID,
            message_author_id=p.USER_ID,
        ),
    )
    await fake.dispatch(  # the bot's own reaction
        "MESSAGE_REACTION_ADD",
        p.reaction(
            message_id=mid,
            channel_id=p.CHANNEL_ID,
            emoji="✅",
            user_id=p.BOT_ID,
            guild_id=p.GUILD_ID,
        ),
    )
    await fake.dispatch(
        "MESSAGE_REACTION_ADD",
        p.reaction(message_id=mid, channel_id=p.CHANNEL_ID, emoji="👎", guild_id=p.GUILD_ID),
    )
    (only,) = await sink.wait_for(Reaction)
    assert only.emoji == "👎" and only.message_id == mid


async def test_reaction_in_thread_maps_to_parent(
    fake: FakeDiscord, connector: DiscordConnector, sink: Sink
):
    where = Address("discord", p.CHANNEL_ID, p.THREAD_ID)
    mid = await connector.send(where, "thread answer")
    await fake.dispatch(
        "MESSAGE_REACTION_ADD",
        p.reaction(message_id=mid, channel_id=p.THREAD_ID, emoji="👍", guild_id=p.GUILD_ID),
    )
    (reaction,) = await sink.wait_for(Reaction)
    assert reaction.address == where


async def test_dm_reaction(fake: FakeDiscord, connector: DiscordConnector, sink: Sink):
    dm = Address("discord", p.DM_CHANNEL_ID)
    mid = await connector.send(dm, "private answer")
    await fake.dispatch(
        "MESSAGE_REACTION_ADD", p.reaction(message_id=mid, channel_id=p.DM_CHANNEL_ID, emoji="❤️")
    )
    (reaction,) = await sink.wait_for(Reaction)
    assert reaction.chat.kind is ChatKind.DIRECT and reaction.address == dm
    assert reaction.user.id == p.USER_ID


async def test_commands_registered_globally(fake: FakeDiscord, connector: DiscordConnector):
    await connector.register_commands(SPECS)
    cmds = {c["name"]: c for c in fake.commands["global"]}
    assert sorted(cmds) == ["help", "new", "prompt", "reset"]
    assert cmds["help"]["description"] == "Show what I can do."
    assert cmds["help"]["default_member_permissions"] is None
    assert cmds["prompt"]["default_member_permissions"] == "8"  # administrator
    (option,) = cmds["prompt"]["options"]
    assert option["name"] == "args" and option["type"] == 3 and option["required"] is False
    assert option["description"] == "list | show <id>"
    (put,) = fake.calls("PUT", rf"/applications/{p.APP_ID}/commands")
    assert len(put.body) == 4
    sent = {c["name"]: c for c in put.body}
    assert int(sent["prompt"]["default_member_permissions"]) == 8


async def test_commands_registered_per_guild(
    fake: FakeDiscord, discord_env: None, sink: Sink, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("DISCORD_GUILD_IDS", f"{p.GUILD_ID}")
    conn = make_connector(sink)
    await conn.register_commands(SPECS)  # before start: published once ready
    await conn.start()
    try:
        await conn.wait_connected()
        await fake.wait_until(lambda: p.GUILD_ID in fake.commands)
        assert sorted(c["name"] for c in fake.commands[p.GUILD_ID]) == [
            "help",
            "new",
            "prompt",
            "reset",
        ]
        assert "global" not in fake.commands
        await fake.slash("reset", channel_id=p.CHANNEL_ID)
        (cmd,) = await sink.wait_for(Command)
        assert cmd.name == "reset"
    finally:
        await conn.stop()


async def test_slash_command_answered_in_time(
    fake: FakeDiscord, connector: DiscordConnector, sink: Sink
):
    await connector.register_commands(SPECS)

    async def answer(event):
        if isinstance(event, Command):
            mid = await connector.send(
                event.address, f"/{event.name} {event.args}: ok", reply_to=event.message_id
            )
            await connector.edit(event.address, mid, f"/{event.name} {event.args}: done")

    sink.on_event = answer
    iid = await fake.slash("prompt", args="list", admin=True)
    (cmd,) = await sink.wait_for(Command)
    assert (cmd.name, cmd.args, cmd.message_id) == ("prompt", "list", iid)
    assert cmd.chat.id == p.CHANNEL_ID and cmd.user.id == p.USER_ID
    await fake.wait_until(lambda: any(m.get("edits") for m in fake.messages.values()))
    (callback,) = fake.interaction_responses
    assert callback["type"] == 4  # answered directly, no defer needed
    assert callback["data"]["content"] == "/prompt list: ok"
    assert callback["data"]["allowed_mentions"]["parse"] == []  # answers never ping
    (msg,) = fake.bot_messages(p.CHANNEL_ID)
    assert msg["content"] == "/prompt list: done"
    assert fake.calls("PATCH", rf"/webhooks/{p.APP_ID}/.+/messages/@original")
    assert fake.unexpected == []


async def test_slow_slash_command_is_deferred(fake: FakeDiscord, discord_env: None, sink: Sink):
    connector = make_connector(sink, defer_after=0.1)
    await connector.start()
    try:
        await connector.wait_connected()
        await _slow_command(fake, connector, sink)
    finally:
        await connector.stop()


async def _slow_command(fake: FakeDiscord, connector: DiscordConnector, sink: Sink) -> None:
    await connector.register_commands(SPECS)
    await fake.slash("help", guild_id=None, channel_id=p.DM_CHANNEL_ID)
    (cmd,) = await sink.wait_for(Command)
    assert cmd.chat.kind is ChatKind.DIRECT and cmd.args == ""
    await fake.wait_until(lambda: len(fake.interaction_responses) == 1)
    assert fake.interaction_responses[0]["type"] == 5  # deferred: "thinking..."
    mid = await connector.send(cmd.address, "Here is the help text.", reply_to=cmd.message_id)
    msg = fake.messages[mid]
    assert msg["content"] == "Here is the help text."
    assert msg["channel_id"] == p.DM_CHANNEL_ID
    # the placeholder became the answer: nothing else was posted
    assert len(fake.bot_messages()) == 1
    assert not fake.calls("POST", r"/channels/\d+/messages")


async def test_second_chunk_of_command_reply_goes_to_channel(
    fake: FakeDiscord, connector: DiscordConnector, sink: Sink
):
    await connector.register_commands(SPECS)
    await fake.slash("help")
    (cmd,) = await sink.wait_for(Command)
    first = await connector.send(cmd.address, "part 1", reply_to=cmd.message_id)
    second = await connector.send(cmd.address, "part 2")
    assert [fake.messages[first]["content"], fake.messages[second]["content"]] == [
        "part 1",
        "part 2",
    ]
    assert len(fake.calls("POST", rf"/channels/{p.CHANNEL_ID}/messages")) == 1
    await asyncio.sleep(0)


async def test_unanswered_deferred_command_leaves_no_placeholder(
    fake: FakeDiscord, discord_env: None, sink: Sink
):
    conn = make_connector(sink, defer_after=0.05, interaction_lifetime=0.3)
    await conn.start()
    try:
        await conn.wait_connected()
        await conn.register_commands(SPECS)
        await fake.slash("help")
        await sink.wait_for(Command)
        await fake.wait_until(lambda: len(fake.interaction_responses) == 1)
        assert fake.interaction_responses[0]["type"] == 5
        await fake.wait_until(lambda: len(fake.deleted) == 1, within=3)
        assert fake.bot_messages() == []
    finally:
        await conn.stop()


async def test_other_replies_do_not_take_the_interaction(
    fake: FakeDiscord, connector: DiscordConnector, sink: Sink
):
    await connector.register_commands(SPECS)
    await fake.slash("help")
    (cmd,) = await sink.wait_for(Command)
    posted = await connector.send(cmd.address, "an unrelated turn's reply", reply_to=None)
    answer = await connector.send(cmd.address, "help text", reply_to=cmd.message_id)
    assert fake.messages[posted]["interaction_token"] is None
    assert fake.messages[answer]["interaction_token"] is not None
    assert fake.interaction_responses[0]["data"]["content"] == "help text"


async def test_slash_command_before_ready_after_a_restart(
    fake: FakeDiscord, discord_env: None, sink: Sink
):
    first = make_connector(sink)
    await first.start()
    await first.wait_connected()
    await first.register_commands(SPECS)
    await first.stop()
    # Discord keeps the commands; the next run gets an interaction while the guild cache is
    # still filling (before on_ready and before it published anything itself).
    second = make_connector(sink, guild_ready_timeout=2.0)
    await second.register_commands(SPECS)
    await second.start()
    try:
        await second.wait_state(ConnectorState.CONNECTED)
        assert not second.client.is_ready()
        await fake.slash("reset")
        (cmd,) = await sink.wait_for(Command)
        assert cmd.name == "reset"
        assert not second.client.is_ready()
    finally:
        await second.stop()
