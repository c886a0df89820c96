"""A DM with the bot on a real Synapse: message in, formatted reply, typing, edit, reactions."""

from __future__ import annotations

from typing import Any

from opencomputer.bot.connector import ConnectorState
from opencomputer.bot.events import ChatKind, Message, Reaction, User
from opencomputer.connectors.matrix.render import HTML_FORMAT
from tests.matrix.matrix_helpers import BotFactory, Human, Sink


def _is(event_id: str) -> Any:
    return lambda _room, e: e.get("event_id") == event_id


async def test_dm_message_reply_edit_and_reaction(
    make_bot: BotFactory, human: Human, sink: Sink
) -> None:
    bot = await make_bot()
    assert bot.state in {ConnectorState.STARTING, ConnectorState.CONNECTED}
    room = await human.create_room([bot.user_id], direct=True)
    await human.wait_membership(room, bot.user_id, "join")

    sent = await human.say(room, "hello **there**")
    msg: Message = await sink.wait_for(lambda e: isinstance(e, Message))
    assert msg.text == "hello **there**"
    assert msg.message_id == sent and msg.event_id == sent
    assert msg.chat.id == room and msg.chat.kind is ChatKind.DIRECT
    assert msg.user == User("matrix", human.user_id) and msg.addressed
    assert msg.thread_id is None and msg.reply_to is None
    assert bot.state is ConnectorState.CONNECTED

    await bot.typing(msg.address)
    await human.wait_typing(room, bot.user_id)

    (chunk,) = bot.render("Here is **bold**, `code` and a list:\n\n- one\n- two")
    reply_id = await bot.send(msg.address, chunk, reply_to=msg.message_id)
    reply = await human.wait_for(_is(reply_id))
    # The answer is there: no longer typing (long before the notice's 10 s would expire).
    await human.wait_typing(room, None, within=5)
    assert reply["sender"] == bot.user_id
    content = reply["content"]
    assert content["msgtype"] == "m.text"
    assert content["body"] == "Here is **bold**, `code` and a list:\n\n- one\n- two"
    assert content["format"] == HTML_FORMAT
    assert content["formatted_body"] == (
        "<p>Here is <strong>bold</strong>, <code>code</code> and a list:</p>\n"
        "<ul>\n<li>one</li>\n<li>two</li>\n</ul>"
    )
    assert "m.relates_to" not in content  # no reply quote in a DM

    await bot.edit(msg.address, reply_id, "Now **edited**")
    edit = await human.wait_for(
        lambda _r, e: e["content"].get("m.relates_to", {}).get("event_id") == reply_id
    )
    assert edit["content"]["m.relates_to"]["rel_type"] == "m.replace"
    assert edit["content"]["body"] == "* Now **edited**"
    assert edit["content"]["m.new_content"] == {
        "msgtype": "m.text",
        "body": "Now **edited**",
        "format": HTML_FORMAT,
        "formatted_body": "<p>Now <strong>edited</strong></p>",
    }

    # A reaction on the human's own message is not feedback for the bot: never emitted.
    await human.send(
        room,
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": sent, "key": "🎉"}},
        "m.reaction",
    )
    thumbs = await human.send(
        room,
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": reply_id, "key": "👍"}},
        "m.reaction",
    )
    added: Reaction = await sink.wait_for(lambda e: isinstance(e, Reaction))
    assert (added.message_id, added.emoji, added.added) == (reply_id, "👍", True)
    assert added.event_id == thumbs and added.user.id == human.user_id
    assert added.chat.id == room

    await human.client.room_redact(room, thumbs)
    removed: Reaction = await sink.wait_for(lambda e: isinstance(e, Reaction) and not e.added)
    assert (removed.message_id, removed.emoji, removed.user.id) == (reply_id, "👍", human.user_id)
    assert [e.emoji for e in sink.events if isinstance(e, Reaction)] == ["👍", "👍"]

    await bot.react(msg.address, msg.message_id, "👀")
    annotation = await human.wait_for(
        lambda _r, e: e["type"] == "m.reaction" and e["sender"] == bot.user_id
    )
    assert annotation["content"]["m.relates_to"] == {
        "rel_type": "m.annotation",
        "event_id": sent,
        "key": "👀",
    }
    # The bot's own events never come back as inbound events.
    assert [type(e).__name__ for e in sink.events] == ["Message", "Reaction", "Reaction"]
