from __future__ import annotations

from opencomputer.bot.connector import ConnectorState
from opencomputer.bot.events import ChatKind, Message
from opencomputer.connectors.discord import DiscordConnector
from tests.discord import discord_payloads as p
from tests.discord.discord_helpers import Sink, make_connector
from tests.discord.fake_discord import FakeDiscord


async def test_connects_with_explicit_intents(fake: FakeDiscord, connector: DiscordConnector):
    assert connector.state is ConnectorState.CONNECTED
    assert len(fake.identifies) == 1
    intents = fake.identifies[0]["intents"]
    # guilds, guild messages, guild reactions, DMs, DM reactions, message content
    for bit in (0, 9, 10, 12, 13, 15):
        assert intents & (1 << bit), bit
    assert not intents & (1 << 1)  # no privileged members intent
    assert fake.calls("GET", "/users/@me") and fake.calls("GET", "/oauth2/applications/@me")
    assert fake.unexpected == []


async def test_dm_becomes_message(fake: FakeDiscord, connector: DiscordConnector, sink: Sink):
    msg = p.message(
        message_id=fake.new_id(),
        channel_id=p.DM_CHANNEL_ID,
        content="hello there",
        author=p.human_user(),
    )
    await fake.dispatch("MESSAGE_CREATE", msg)
    (event,) = await sink.wait_for(Message)
    assert event.text == "hello there"
    assert event.chat.id == p.DM_CHANNEL_ID and event.chat.kind is ChatKind.DIRECT
    assert event.user.id == p.USER_ID and event.user.name == "Alice"
    assert event.addressed and event.thread_id is None
    assert event.event_id == msg["id"] == event.message_id


def guild_msg(fake: FakeDiscord, content: str, **kw) -> dict:
    kw.setdefault("channel_id", p.CHANNEL_ID)
    return p.message(
        message_id=fake.new_id(),
        content=content,
        author=kw.pop("author", p.human_user()),
        guild_id=p.GUILD_ID,
        **kw,
    )


async def test_guild_mention_is_addressed_and_stripped(
    fake: FakeDiscord, connector: DiscordConnector, sink: Sink
):
    await fake.dispatch(
        "MESSAGE_CREATE",
        guild_msg(fake, f"<@{p.BOT_ID}> what is 2+2?", mentions=[p.bot_user()]),
    )
    (event,) = await sink.wait_for(Message)
    assert event.text == "what is 2+2?"
    assert event.addressed
    assert event.chat.id == p.CHANNEL_ID and event.chat.kind is ChatKind.GROUP
    assert event.chat.title == "chan-11"
    assert event.address.key == f"discord:{p.CHANNEL_ID}"


async def test_guild_chatter_is_not_addressed(
    fake: FakeDiscord, connector: DiscordConnector, sink: Sink
):
    await fake.dispatch("MESSAGE_CREATE", guild_msg(fake, "just talking among ourselves"))
    (event,) = await sink.wait_for(Message)
    assert event.text == "just talking among ourselves"
    assert event.addressed is False


async def test_group_trigger_always(fake: FakeDiscord, discord_env: None, sink: Sink, monkeypatch):

    monkeypatch.setenv("OC_GROUP_TRIGGER", "always")
    conn = make_connector(sink)
    await conn.start()
    try:
        await conn.wait_connected()
        await fake.dispatch("MESSAGE_CREATE", guild_msg(fake, "anyone?"))
        (event,) = await sink.wait_for(Message)
        assert event.addressed is True
    finally:
        await conn.stop()


async def test_reply_to_bot_is_addressed(
    fake: FakeDiscord, connector: DiscordConnector, sink: Sink
):
    from opencomputer.bot.events import Address

    ours = await connector.send(Address("discord", p.CHANNEL_ID), "I said something")
    bot_msg = fake.messages[ours]
    await fake.dispatch("MESSAGE_CREATE", guild_msg(fake, "tell me more", referenced=bot_msg))
    (event,) = await sink.wait_for(Message)
    assert event.addressed and event.reply_to == ours
    assert event.text == "tell me more"


async def test_thread_message_has_thread_id(
    fake: FakeDiscord, connector: DiscordConnector, sink: Sink
):
    await fake.dispatch(
        "MESSAGE_CREATE",
        guild_msg(
            fake, f"<@{p.BOT_ID}> in a thread", channel_id=p.THREAD_ID, mentions=[p.bot_user()]
        ),
    )
    (event,) = await sink.wait_for(Message)
    assert event.chat.id == p.CHANNEL_ID
    assert event.thread_id == p.THREAD_ID
    assert event.address.key == f"discord:{p.CHANNEL_ID}:{p.THREAD_ID}"


async def test_uncached_thread_parent_is_looked_up(
    fake: FakeDiscord, connector: DiscordConnector, sink: Sink
):
    # A thread created after GUILD_CREATE that the cache never saw: one REST lookup.
    fake.threads["1100000000000000099"] = p.CHANNEL_ID
    for text in ("first", "second"):
        await fake.dispatch(
            "MESSAGE_CREATE", guild_msg(fake, text, channel_id="1100000000000000099")
        )
    first, second = await sink.wait_for(Message, 2)
    assert [first.text, second.text] == ["first", "second"]
    assert first.thread_id == second.thread_id == "1100000000000000099"
    assert first.chat.id == second.chat.id == p.CHANNEL_ID
    assert len(fake.calls("GET", r"/channels/1100000000000000099")) == 1


async def test_own_and_bot_messages_are_ignored(
    fake: FakeDiscord, connector: DiscordConnector, sink: Sink
):
    other_bot = p.user(p.OTHER_BOT_ID, "otherbot", bot=True)
    await fake.dispatch("MESSAGE_CREATE", guild_msg(fake, "mine", author=p.bot_user()))
    await fake.dispatch("MESSAGE_CREATE", guild_msg(fake, "a bot's", author=other_bot))
    notice = guild_msg(fake, "")
    notice["type"] = 6  # "pinned a message"
    await fake.dispatch("MESSAGE_CREATE", notice)
    await fake.dispatch("MESSAGE_CREATE", guild_msg(fake, "a person's"))
    (event,) = await sink.wait_for(Message)
    assert event.text == "a person's"
    assert [e.text for e in sink.of(Message)] == ["a person's"]


async def test_order_is_kept(fake: FakeDiscord, connector: DiscordConnector, sink: Sink):
    for i in range(30):
        await fake.dispatch(
            "MESSAGE_CREATE",
            p.message(
                message_id=fake.new_id(),
                channel_id=p.DM_CHANNEL_ID,
                content=f"m{i}",
                author=p.human_user(),
            ),
        )
    events = await sink.wait_for(Message, 30)
    assert [e.text for e in events] == [f"m{i}" for i in range(30)]


async def test_typed_command_becomes_command(
    fake: FakeDiscord, connector: DiscordConnector, sink: Sink
):
    from opencomputer.bot.events import Command

    await fake.dispatch(
        "MESSAGE_CREATE",
        p.message(
            message_id=fake.new_id(),
            channel_id=p.DM_CHANNEL_ID,
            content="/reset  now please",
            author=p.human_user(),
        ),
    )
    await fake.dispatch(  # unaddressed in a guild: maybe meant for another bot
        "MESSAGE_CREATE", guild_msg(fake, "/roll 2d6")
    )
    await fake.dispatch(
        "MESSAGE_CREATE",
        guild_msg(fake, f"<@{p.BOT_ID}> /help", mentions=[p.bot_user()]),
    )
    await fake.dispatch(  # a path is not a command
        "MESSAGE_CREATE",
        p.message(
            message_id=fake.new_id(),
            channel_id=p.DM_CHANNEL_ID,
            content="/etc/hosts is odd",
            author=p.human_user(),
        ),
    )
    await sink.wait_for(Message, 2)
    reset, helped = sink.of(Command)
    assert (reset.name, reset.args, reset.chat.id) == ("reset", "now please", p.DM_CHANNEL_ID)
    assert (helped.name, helped.args, helped.chat.id) == ("help", "", p.CHANNEL_ID)
    assert [m.text for m in sink.of(Message)] == ["/roll 2d6", "/etc/hosts is odd"]


async def test_a_replayed_message_is_emitted_once(
    fake: FakeDiscord, connector: DiscordConnector, sink: Sink
):
    msg = p.message(
        message_id=fake.new_id(), channel_id=p.DM_CHANNEL_ID, content="once", author=p.human_user()
    )
    await fake.dispatch("MESSAGE_CREATE", msg)
    await fake.dispatch("MESSAGE_CREATE", msg)  # as after a resume with a stale sequence
    await fake.dispatch(
        "MESSAGE_CREATE",
        p.message(
            message_id=fake.new_id(),
            channel_id=p.DM_CHANNEL_ID,
            content="then this",
            author=p.human_user(),
        ),
    )
    await sink.wait_for(Message, 2)
    assert [e.text for e in sink.of(Message)] == ["once", "then this"]


async def test_message_from_an_uncached_guild_is_a_group_message(
    fake: FakeDiscord, connector: DiscordConnector, sink: Sink
):
    # A guild that was unavailable at READY: the cache has neither guild nor channel.
    fake.guilds["1100000000000000090"] = ["1100000000000000091"]
    msg = p.message(
        message_id=fake.new_id(),
        channel_id="1100000000000000091",
        guild_id="1100000000000000090",
        content=f"<@{p.BOT_ID}> hello from afar",
        author=p.human_user(),
        mentions=[p.bot_user()],
    )
    await fake.dispatch("MESSAGE_CREATE", msg)
    (event,) = await sink.wait_for(Message)
    assert event.chat.kind is ChatKind.GROUP and event.chat.id == "1100000000000000091"
    assert event.thread_id is None and event.addressed
    assert event.text == "hello from afar"


async def test_chatter_in_an_uncached_guild_is_not_addressed(
    fake: FakeDiscord, connector: DiscordConnector, sink: Sink
):
    fake.guilds["1100000000000000090"] = ["1100000000000000091"]
    msg = p.message(
        message_id=fake.new_id(),
        channel_id="1100000000000000091",
        guild_id="1100000000000000090",
        content="people talking",
        author=p.human_user(),
    )
    await fake.dispatch("MESSAGE_CREATE", msg)
    (event,) = await sink.wait_for(Message)
    assert event.chat.kind is ChatKind.GROUP and event.addressed is False
