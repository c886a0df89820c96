from __future__ import annotations

from typing import Any

import pytest

from opencomputer.bot.events import Address, ChatKind, Command, Message, Reaction
from opencomputer.connectors.slack.translate import (
    BotIdentity,
    clean_text,
    emoji_name,
    emoji_unicode,
    translate_command,
    translate_event,
)
from tests.slack.fake_slack_api import event_envelope

ME = BotIdentity(user_id="UBOT", bot_id="BBOT", team_id="T0001")


def _msg(**event: Any) -> dict[str, Any]:
    return event_envelope({"type": "message", "user": "U1", "ts": "100.1", **event})


def test_dm_becomes_addressed_direct_message() -> None:
    body = _msg(channel="D1", channel_type="im", text="hello &amp; bye")
    event = translate_event(body, ME)
    assert isinstance(event, Message)
    assert event.event_id == body["event_id"]
    assert event.chat.kind is ChatKind.DIRECT
    assert (event.text, event.message_id, event.addressed) == ("hello & bye", "100.1", True)
    assert event.address == Address("slack", "D1", None)


def test_dm_thread_reply_is_answered_in_thread() -> None:
    event = translate_event(_msg(channel="D1", channel_type="im", text="hi", thread_ts="99.0"), ME)
    assert isinstance(event, Message)
    assert event.address == Address("slack", "D1", "99.0")


def test_mention_strips_bot_and_keeps_thread() -> None:
    body = event_envelope(
        {
            "type": "app_mention",
            "user": "U1",
            "channel": "C1",
            "ts": "101.5",
            "thread_ts": "100.0",
            "text": "<@UBOT> what about <@U2|ann> in <#C9|general>, see <https://x.io|x>",
        }
    )
    event = translate_event(body, ME)
    assert isinstance(event, Message)
    assert event.text == "what about @ann in #general, see x (https://x.io)"
    assert event.chat.kind is ChatKind.GROUP and event.addressed
    assert event.address == Address("slack", "C1", "100.0")


@pytest.mark.parametrize(
    "event",
    [
        {"subtype": "bot_message", "bot_id": "B2", "text": "beep"},
        {"bot_id": "BBOT", "text": "my own"},
        {"user": "UBOT", "text": "my own"},
        {"subtype": "message_changed", "text": ""},
        {"subtype": "channel_join", "text": "joined"},
    ],
)
def test_bot_and_bookkeeping_messages_are_ignored(event: dict[str, Any]) -> None:
    assert translate_event(_msg(channel="D1", channel_type="im", **event), ME) is None


def test_channel_message_mentioning_bot_is_left_to_app_mention() -> None:
    body = _msg(channel="C1", channel_type="channel", text="<@UBOT> hi")
    assert translate_event(body, ME) is None


def test_channel_chatter_is_unaddressed_unless_in_bots_thread() -> None:
    plain = translate_event(_msg(channel="C1", channel_type="channel", text="hey all"), ME)
    assert isinstance(plain, Message) and not plain.addressed
    in_thread = _msg(channel="C1", channel_type="channel", text="and then?", thread_ts="50.0")
    known = translate_event(in_thread, ME, threads={("C1", "50.0")})
    assert isinstance(known, Message) and known.addressed
    assert known.address == Address("slack", "C1", "50.0")
    unknown = translate_event(in_thread, ME, threads=set())
    assert isinstance(unknown, Message) and not unknown.addressed
    parent = translate_event(
        _msg(channel="C1", channel_type="channel", thread_ts="7.0", parent_user_id="UBOT"), ME
    )
    assert isinstance(parent, Message) and parent.addressed


def test_reaction_on_bot_message_becomes_unicode_reaction() -> None:
    body = event_envelope(
        {
            "type": "reaction_added",
            "user": "U1",
            "reaction": "+1::skin-tone-3",
            "item_user": "UBOT",
            "item": {"type": "message", "channel": "C1", "ts": "200.2"},
            "event_ts": "201.0",
        }
    )
    event = translate_event(body, ME)
    assert isinstance(event, Reaction)
    assert (event.emoji, event.message_id, event.chat.id) == ("👍", "200.2", "C1")
    assert event.added
    removed = dict(body, event=dict(body["event"], type="reaction_removed", reaction="-1"))
    event = translate_event(removed, ME)
    assert isinstance(event, Reaction) and (event.emoji, event.added) == ("👎", False)


def test_reactions_elsewhere_are_ignored() -> None:
    base = {"type": "reaction_added", "user": "U1", "reaction": "+1", "item_user": "U2"}
    item = {"type": "message", "channel": "C1", "ts": "1.0"}
    assert translate_event(event_envelope({**base, "item": item}), ME) is None
    own = {**base, "user": "UBOT", "item_user": "UBOT", "item": item}
    assert translate_event(event_envelope(own), ME) is None
    file_item = {**base, "item_user": "UBOT", "item": {"type": "file", "file": "F1"}}
    assert translate_event(event_envelope(file_item), ME) is None


def test_emoji_tables() -> None:
    assert [emoji_unicode(n) for n in ("thumbsup", "-1", ":tada:", "custom_party")] == [
        "👍",
        "👎",
        "🎉",
        "custom_party",
    ]
    assert [emoji_name(e) for e in ("👍", "👀", ":eyes:", "custom")] == [
        "+1",
        "eyes",
        "eyes",
        "custom",
    ]


def test_slash_command_becomes_command() -> None:
    body = {
        "command": "/oc",
        "text": "Reset  now please",
        "user_id": "U1",
        "user_name": "ann",
        "channel_id": "D1",
        "channel_name": "directmessage",
        "trigger_id": "123.456.abc",
    }
    cmd = translate_command(body)
    assert isinstance(cmd, Command)
    assert (cmd.name, cmd.args, cmd.event_id) == ("reset", "now please", "cmd:123.456.abc")
    assert cmd.chat.kind is ChatKind.DIRECT and cmd.user.id == "U1"
    empty = translate_command({**body, "text": "", "channel_id": "C1", "channel_name": "x"})
    assert (empty.name, empty.chat.kind) == ("help", ChatKind.GROUP)


def test_clean_text_special_mentions() -> None:
    text = "<!here> <!subteam^S1|@devs> <@U2|@bob> <!channel>"
    assert clean_text(text) == "@here @devs @bob @channel"


def test_clean_text_keeps_plain_text() -> None:
    assert clean_text("<@UBOT>   hi  <mailto:a@b.c|a@b.c> <https://q.io>", "UBOT") == (
        "hi a@b.c https://q.io"
    )
