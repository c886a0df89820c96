"""Outbound: what the connector sends to the Bot API, checked on the fake's side."""

from __future__ import annotations

import time

import pytest

from opencomputer.bot.connector import CommandSpec
from opencomputer.bot.events import Address
from opencomputer.bot.reply import ReplyStream
from opencomputer.connectors.telegram import TelegramConnector
from opencomputer.connectors.telegram.connector import api_base_url
from tests.telegram.fake_bot_api import FakeBotApi, validate_html

DM = Address("telegram", "42")
TOPIC = Address("telegram", "-200", "77")


async def test_send_posts_html_with_reply_and_topic(
    tg: FakeBotApi, connector: TelegramConnector
) -> None:
    [chunk] = connector.render("**Hi** <you> & `x`")
    mid = await connector.send(TOPIC, chunk, reply_to="555")
    [call] = tg.calls_to("sendMessage")
    assert call["text"] == "<b>Hi</b> &lt;you&gt; &amp; <code>x</code>"
    assert call["parse_mode"] == "HTML"
    assert call["chat_id"] == -200
    assert call["message_thread_id"] == 77
    assert call["reply_parameters"] == {"message_id": 555, "allow_sending_without_reply": True}
    assert tg.texts[(-200, int(mid))] == call["text"]


async def test_edit_replaces_text_and_unchanged_edit_is_harmless(
    tg: FakeBotApi, connector: TelegramConnector
) -> None:
    mid = await connector.send(DM, "draft")
    await connector.edit(DM, mid, "<b>final</b>")
    await connector.edit(DM, mid, "<b>final</b>")  # Telegram: "message is not modified"
    edits = tg.calls_to("editMessageText")
    assert [(c["chat_id"], c["message_id"], c["text"]) for c in edits] == [
        (42, int(mid), "<b>final</b>"),
        (42, int(mid), "<b>final</b>"),
    ]
    assert all(c["parse_mode"] == "HTML" for c in edits)
    assert tg.texts[(42, int(mid))] == "<b>final</b>"


async def test_rejected_markup_is_resent_as_plain_text(
    tg: FakeBotApi, connector: TelegramConnector
) -> None:
    tg.fail("sendMessage", status=400, description="Bad Request: can't parse entities: oops")
    await connector.send(DM, "<b>1 &lt; 2</b>")
    first, second = tg.calls_to("sendMessage")
    assert first["parse_mode"] == "HTML"
    assert "parse_mode" not in second.args and second["text"] == "1 < 2"


async def test_429_in_the_middle_of_a_stream_final_text_lands(
    tg: FakeBotApi, connector: TelegramConnector
) -> None:
    stream = ReplyStream(connector, DM, reply_to="9")
    await stream.token("Hello")
    await tg.wait_for("sendMessage")
    tg.fail("editMessageText", retry_after=1)  # the next edit is refused with 429
    started = time.monotonic()
    await stream.token(", **world**")
    ids = await stream.finish("Hello, **world**! Done.")
    assert time.monotonic() - started >= 0.9  # it waited retry_after before retrying
    [mid] = ids
    assert tg.texts[(42, int(mid))] == "Hello, <b>world</b>! Done."
    edits = tg.calls_to("editMessageText")
    assert edits[-1]["text"] == "Hello, <b>world</b>! Done."
    assert len(edits) >= 2  # the refused one and the retry


async def test_streamed_ten_thousand_characters_land_as_valid_chunks(
    tg: FakeBotApi, connector: TelegramConnector
) -> None:
    code = "\n".join(f"x_{i} = {i} & {i}" for i in range(200))
    answer = "Intro\n\n" + "lorem ipsum " * 460 + f"\n\n```python\n{code}\n```\n\n" + "end " * 300
    assert len(answer) >= 10_000
    stream = ReplyStream(connector, DM)
    for i in range(0, len(answer), 2000):
        await stream.token(answer[i : i + 2000])
    ids = await stream.finish(answer)
    assert len(ids) >= 3
    shown = [tg.texts[(42, int(mid))] for mid in ids]
    assert shown == connector.render(answer)
    assert all(len(t) <= 4096 for t in shown)
    visible = " ".join(validate_html(t) for t in shown)
    assert visible.count("x_199 = 199 & 199") == 1 and visible.count("lorem") == 460


async def test_typing_and_reaction(tg: FakeBotApi, connector: TelegramConnector) -> None:
    await connector.typing(TOPIC)
    await connector.react(DM, "1500", "👍")
    [action] = tg.calls_to("sendChatAction")
    assert (action["chat_id"], action["action"], action["message_thread_id"]) == (
        -200,
        "typing",
        77,
    )
    [reaction] = tg.calls_to("setMessageReaction")
    assert reaction["message_id"] == 1500
    assert reaction["reaction"] == [{"type": "emoji", "emoji": "👍"}]


async def test_commands_published_with_admin_scope(tg: FakeBotApi, tg_settings, sink) -> None:
    from tests.telegram.telegram_helpers import FAST

    settings = tg_settings(OC_ADMINS="telegram:7,slack:U1")
    conn = TelegramConnector(settings, sink, options=FAST)
    specs = [CommandSpec("help", "List commands."), CommandSpec("reset", "Start over.")]
    specs += [CommandSpec("prompt", "Tune prompts.", admin=True, args="<subcommand>")]
    specs += [CommandSpec(f"extra{i}", "More.") for i in range(120)]
    await conn.register_commands(specs)  # before start: published once connected
    await conn.start()
    try:
        await tg.wait_for("setMyCommands", count=2)
    finally:
        await conn.stop()
    public = tg.commands['{"type": "default"}']
    admin = tg.commands['{"chat_id": 7, "type": "chat"}']
    assert len(public) == 100 and len(admin) == 100
    assert public[:2] == [
        {"command": "help", "description": "List commands."},
        {"command": "reset", "description": "Start over."},
    ]
    assert "prompt" not in [c["command"] for c in public]
    assert admin[2] == {"command": "prompt", "description": "Tune prompts. <subcommand>"}


async def test_group_upgraded_to_supergroup_still_gets_the_message(
    tg: FakeBotApi, connector: TelegramConnector
) -> None:
    tg.fail(
        "sendMessage",
        status=400,
        description="Bad Request: group chat was upgraded to a supergroup chat",
        parameters={"migrate_to_chat_id": -1001234},
    )
    mid = await connector.send(Address("telegram", "-55"), "hello")
    old, new = tg.calls_to("sendMessage")
    assert (old["chat_id"], new["chat_id"]) == (-55, -1001234)
    assert tg.texts[(-1001234, int(mid))] == "hello"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://api.telegram.org/bot", "https://api.telegram.org/bot"),
        ("http://127.0.0.1:8081", "http://127.0.0.1:8081/bot"),
        ("http://127.0.0.1:8081/", "http://127.0.0.1:8081/bot"),
        ("http://proxy/tg/{token}/x", "http://proxy/tg/{token}/x"),
    ],
)
def test_base_url_normalised(given: str, expected: str) -> None:
    assert api_base_url(given) == expected


async def test_rejected_markup_on_edit_falls_back_to_plain_text(
    tg: FakeBotApi, connector: TelegramConnector
) -> None:
    mid = await connector.send(DM, "draft")
    tg.fail("editMessageText", status=400, description="Bad Request: can't parse entities: x")
    await connector.edit(DM, mid, "<b>a &amp; b</b>")
    first, second = tg.calls_to("editMessageText")
    assert first["parse_mode"] == "HTML" and "parse_mode" not in second.args
    assert tg.texts[(42, int(mid))] == "a & b"
