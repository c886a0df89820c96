"""Inbound: updates served by the fake Bot API become core events, via real polling."""

from __future__ import annotations

import asyncio

from opencomputer.bot.connector import ConnectorState
from opencomputer.bot.events import ChatKind, Command, Message, Reaction
from opencomputer.connectors.telegram import TelegramConnector
from tests.telegram.fake_bot_api import BOT_ID, FakeBotApi
from tests.telegram.telegram_helpers import Sink


async def test_private_message_becomes_addressed_message(
    tg: FakeBotApi, connector: TelegramConnector, sink: Sink
) -> None:
    msg = tg.message("hello <there>", chat_id=42, user_id=42)
    await tg.push(msg)
    [event] = await sink.wait(1)
    assert isinstance(event, Message)
    assert event.text == "hello <there>"
    assert event.platform == "telegram"
    assert event.chat.id == "42" and event.chat.kind is ChatKind.DIRECT
    assert event.user.id == "42" and event.user.name == "Alice"
    assert event.message_id == str(msg["message_id"])
    assert event.event_id == f"42:{msg['message_id']}"
    assert event.thread_id is None and event.addressed
    assert connector.state is ConnectorState.CONNECTED


async def test_polling_asks_for_reactions(tg: FakeBotApi, connector: TelegramConnector) -> None:
    [poll] = await tg.wait_for("getUpdates")
    assert set(poll["allowed_updates"]) >= {"message", "message_reaction"}
    assert [c.method for c in tg.calls[:2]] == ["getMe", "deleteWebhook"]


async def test_group_messages_are_addressed_only_by_mention_or_reply(
    tg: FakeBotApi, connector: TelegramConnector, sink: Sink
) -> None:
    await tg.push(tg.message("just chatting", chat_id=-100, kind="supergroup"))
    await tg.push(tg.message("@oc_test_bot what time is it?", chat_id=-100, kind="supergroup"))
    await tg.push(
        tg.message("and you?", chat_id=-100, kind="supergroup", reply_to=tg.bot_message(-100, 7))
    )
    await tg.push(tg.message("ask @someone_else", chat_id=-100, kind="supergroup"))
    events = await sink.wait(4)
    assert [(e.text, e.addressed) for e in events if isinstance(e, Message)] == [
        ("just chatting", False),
        ("what time is it?", True),
        ("and you?", True),
        ("ask @someone_else", False),
    ]
    assert events[2].reply_to == "7"  # type: ignore[union-attr]
    assert all(e.chat.kind is ChatKind.GROUP for e in events)


async def test_forum_topic_is_its_own_conversation(
    tg: FakeBotApi, connector: TelegramConnector, sink: Sink
) -> None:
    topic_root = {
        "message_id": 77,
        "date": 0,
        "chat": tg.chat(-200, "supergroup", is_forum=True),
        "from": tg.user(),
        "forum_topic_created": {"name": "ideas", "icon_color": 1},
    }
    await tg.push(
        tg.message("@oc_test_bot hi", chat_id=-200, kind="supergroup", thread_id=77,
                   reply_to=topic_root)
    )  # fmt: skip
    [event] = await sink.wait(1)
    assert isinstance(event, Message)
    assert event.thread_id == "77"
    assert event.address.key == "telegram:-200:77"
    assert event.reply_to is None  # the topic root is not a reply


async def test_own_messages_and_other_bots_commands_are_ignored(
    tg: FakeBotApi, connector: TelegramConnector, sink: Sink
) -> None:
    await tg.push(tg.message("I said this", from_user={**tg.bot_user}))
    await tg.push(tg.message("/help@another_bot", chat_id=-100, kind="group"))
    await tg.push(tg.message("last"))
    events = await sink.wait(1)
    await asyncio.sleep(0.05)
    assert [getattr(e, "text", None) for e in events] == ["last"]


async def test_commands_become_command_events(
    tg: FakeBotApi, connector: TelegramConnector, sink: Sink
) -> None:
    await tg.push(tg.message("/reset"))
    await tg.push(tg.message("/Model@oc_test_bot  qwen3:8b fast", chat_id=-100, kind="group"))
    first, second = await sink.wait(2)
    assert isinstance(first, Command) and (first.name, first.args) == ("reset", "")
    assert isinstance(second, Command) and (second.name, second.args) == ("model", "qwen3:8b fast")
    assert second.chat.id == "-100"


async def test_long_message_split_by_telegram_is_joined(
    tg: FakeBotApi, connector: TelegramConnector, sink: Sink
) -> None:
    part1, part2 = "a" * 4096, "the end of my question"
    await tg.push(tg.message(part1))
    second = tg.message(part2)
    await tg.push(second)
    await tg.push(tg.message("separate", chat_id=43, user_id=43))
    events = await sink.wait(2)
    await asyncio.sleep(connector.options.join_window + 0.1)
    texts = sorted(e.text for e in sink.events if isinstance(e, Message))
    assert texts == sorted([part1 + "\n" + part2, "separate"])
    joined = next(e for e in events if isinstance(e, Message) and e.text.startswith("a"))
    assert joined.message_id == str(second["message_id"])  # answered below the last part


async def test_long_message_alone_is_emitted_after_the_window(
    tg: FakeBotApi, connector: TelegramConnector, sink: Sink
) -> None:
    await tg.push(tg.message("b" * 4000))
    [event] = await sink.wait(1)
    assert isinstance(event, Message) and event.text == "b" * 4000


async def test_redelivered_update_is_emitted_once(
    tg: FakeBotApi, connector: TelegramConnector, sink: Sink
) -> None:
    update_id = await tg.push(tg.message("once"))
    await sink.wait(1)
    await tg.redeliver(update_id)
    await tg.push(tg.message("twice"))
    await sink.wait(2)
    await asyncio.sleep(0.05)
    assert [e.text for e in sink.events if isinstance(e, Message)] == ["once", "twice"]


async def test_reactions_become_reaction_events(
    tg: FakeBotApi, connector: TelegramConnector, sink: Sink
) -> None:
    await tg.push(tg.reaction(42, 1500, new=["👍"]), kind="message_reaction")
    await tg.push(tg.reaction(42, 1500, old=["👍"], new=["🔥"]), kind="message_reaction")
    events = await sink.wait(3)
    assert all(isinstance(e, Reaction) for e in events)
    assert [(e.emoji, e.added, e.message_id) for e in events] == [  # type: ignore[union-attr]
        ("👍", True, "1500"),
        ("👍", False, "1500"),
        ("🔥", True, "1500"),
    ]
    assert len({e.event_id for e in events}) == 3


async def test_restart_resumes_after_the_last_handled_update(
    tg: FakeBotApi, tg_settings, sink: Sink
) -> None:
    from tests.telegram.telegram_helpers import FAST

    first = TelegramConnector(tg_settings(), sink, options=FAST)
    await first.start()
    done = await tg.push(tg.message("before restart"))
    await sink.wait(1)
    await first.stop()  # its last poll had not confirmed `done` to Telegram yet
    assert any(u["update_id"] == done for u in tg.updates)
    await tg.push(tg.message("while down"))

    polls_before = len(tg.calls_to("getUpdates"))
    second = TelegramConnector(tg_settings(), sink, options=FAST)
    await second.start()
    try:
        await sink.wait(2)
        await asyncio.sleep(0.05)
    finally:
        await second.stop()
    assert [e.text for e in sink.events] == ["before restart", "while down"]  # type: ignore[union-attr]
    assert tg.calls_to("getUpdates")[polls_before]["offset"] == done + 1


async def test_emit_failure_keeps_the_update_for_later(
    tg: FakeBotApi, connector: TelegramConnector, sink: Sink
) -> None:
    sink.fail = RuntimeError("runtime is starting")
    await tg.push(tg.message("keep me"))
    await tg.wait_for("getUpdates", lambda c: True, count=3)
    assert sink.events == []
    sink.fail = None
    [event] = await sink.wait(1)
    assert event.text == "keep me"  # type: ignore[union-attr]
    assert connector.state is ConnectorState.CONNECTED


async def test_bot_id_is_not_a_user(connector: TelegramConnector) -> None:
    assert connector.me is not None and connector.me.id == BOT_ID


async def test_command_after_a_held_part_comes_after_it(
    tg: FakeBotApi, connector: TelegramConnector, sink: Sink
) -> None:
    await tg.push(tg.message("c" * 4000))
    await tg.push(tg.message("/retry"))
    first, second = await sink.wait(2)
    assert isinstance(first, Message) and first.text == "c" * 4000
    assert isinstance(second, Command) and second.name == "retry"


async def test_stop_hands_over_a_held_message(
    tg: FakeBotApi, connector: TelegramConnector, sink: Sink
) -> None:
    await tg.push(tg.message("d" * 4000))
    await tg.push(tg.message("marker", chat_id=43, user_id=43))
    await sink.wait(1)  # the marker came through, so the long one is being held
    assert connector.joiner.holding == 1
    await connector.stop()
    assert sorted(e.text for e in sink.events) == ["d" * 4000, "marker"]  # type: ignore[union-attr]
    assert connector.joiner.holding == 0
