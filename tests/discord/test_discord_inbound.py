from __future__ import annotations

import discord_payloads as p
from conftest import Sink
from fake_discord import FakeDiscord

from bot.connector import ConnectorState
from bot.events import ChatKind, Message
from connectors.discord import DiscordConnector


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
