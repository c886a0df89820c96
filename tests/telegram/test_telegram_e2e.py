"""End to end through the real App: fake Bot API in, fake Ollama behind, payloads checked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from opencomputer.bot.app import App
from opencomputer.bot.config import Settings
from opencomputer.bot.testing import FakeOllama
from opencomputer.connectors.telegram import TelegramConnector
from tests.telegram.fake_bot_api import FakeBotApi, validate_html
from tests.telegram.telegram_helpers import FAST


@asynccontextmanager
async def running(settings: Settings, http: bool = False) -> AsyncIterator[App]:
    """The whole app with a Telegram connector (fast timings) wired to the runtime."""
    app = App(settings)
    await app.start(lambda s, rt: [TelegramConnector(s, rt.emit, options=FAST)], http=http)
    conn = app.connectors[0]
    assert isinstance(conn, TelegramConnector)
    async with asyncio.timeout(5):
        await conn.connected.wait()
    try:
        yield app
    finally:
        await app.stop()


def _answer() -> str:
    code = "\n".join(f"    total += values[{i}]  # <{i}> & more" for i in range(120))
    return (
        "## Summary\n\nHere is **the answer**, with `inline <code>` and a [link](https://x.org).\n\n"
        + "\n\n".join(f"Point {i}: " + "details & caveats " * 25 for i in range(12))
        + f"\n\n```python\ndef add(values):\n    total = 0\n{code}\n    return total\n```\n\n"
        + "That is all."
    )


async def _reply_done(tg: FakeBotApi, app: App, sends: int = 1) -> None:
    await tg.wait_for("sendMessage", count=sends)
    await app.runtime.wait_idle()


async def test_message_in_streamed_split_formatted_reply_out_and_reaction_stored(
    tg: FakeBotApi, fake_ollama: FakeOllama, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(TELEGRAM_BOT_TOKEN=tg.token, TELEGRAM_BASE_URL=tg.base_url)
    answer = _answer()
    assert len(answer) > 10_000
    fake_ollama.reply(answer, chunks=40, delay=0.0)
    async with running(settings) as app:
        conn = app.connectors[0]
        question = tg.message(
            "@oc_test_bot sum them up", chat_id=-300, kind="supergroup", thread_id=9
        )
        tg.fail("editMessageText", retry_after=1)  # a 429 in the middle of the stream
        await tg.push(question)
        await _reply_done(tg, app, sends=3)

        expected = conn.render(answer)
        assert len(expected) >= 3
        sends = tg.calls_to("sendMessage")
        assert all(c["chat_id"] == -300 and c["message_thread_id"] == 9 for c in sends)
        assert sends[0]["reply_parameters"]["message_id"] == question["message_id"]
        assert all("reply_parameters" not in c.args for c in sends[1:])
        ids = [(-300, int(m)) for m in sorted(int(k[1]) for k in tg.texts if k[0] == -300)]
        assert [tg.texts[k] for k in ids] == expected  # what the chat finally shows
        for text in expected:
            assert len(text) <= 4096 and validate_html(text)
        assert '<pre><code class="language-python">def add(values):' in expected[-2]
        assert expected[-1].startswith('<pre><code class="language-python">    total +=')
        assert expected[-1].endswith("    return total</code></pre>\n\nThat is all.")
        assert any(c.method == "editMessageText" for c in tg.calls)  # it streamed by editing
        assert tg.failures[0].times == 0  # the 429 was served, and survived
        assert tg.calls_to("sendChatAction")[0]["action"] == "typing"
        # The model saw the question without the mention.
        assert fake_ollama.chats[-1]["messages"][-1]["content"] == "sum them up"

        # 👍 on the first reply message becomes a stored Reaction linked to the reply.
        first_id = ids[0][1]
        uid = await tg.push(tg.reaction(-300, first_id, new=["👍"]), kind="message_reaction")
        await tg.wait_for("getUpdates", lambda c: c.get("offset") == uid + 1)
        reply = await app.store.reply_for_message("telegram", "-300", str(first_id))
        assert reply is not None and reply.text == answer
        [stored] = await app.store.reactions_for_reply(int(reply.id))
        assert (stored.emoji, stored.user_id, stored.message_id) == ("👍", "42", str(first_id))


async def test_restart_mid_conversation_answers_each_message_once(
    tg: FakeBotApi, fake_ollama: FakeOllama, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(TELEGRAM_BOT_TOKEN=tg.token, TELEGRAM_BASE_URL=tg.base_url)
    async with running(settings) as app:
        first = await tg.push(tg.message("first question"))
        await _reply_done(tg, app)
    await tg.push(tg.message("second question"))  # arrives while the bot is down
    polls = len(tg.calls_to("getUpdates"))
    async with running(settings) as app:
        await _reply_done(tg, app, sends=2)
        await asyncio.sleep(0.2)  # a replay of the first update would show up by now
        await app.runtime.wait_idle()
    sent = [validate_html(text) for text in tg.shown()]
    assert sent == ["echo: first question", "echo: second question"]
    assert len(tg.calls_to("sendMessage")) == 2  # each answer posted once
    assert tg.calls_to("getUpdates")[polls]["offset"] == first + 1  # resumed, not replayed


async def test_redelivered_webhook_update_answered_once_across_restart(
    tg: FakeBotApi, fake_ollama: FakeOllama, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        TELEGRAM_BOT_TOKEN=tg.token,
        TELEGRAM_BASE_URL=tg.base_url,
        TELEGRAM_WEBHOOK_URL="https://bot.example.org/telegram",
        TELEGRAM_WEBHOOK_SECRET="hook-secret",
    )
    update: dict[str, Any] = {"update_id": 777, "message": tg.message("only once")}
    for _run in range(2):  # the second process gets the same update again
        async with running(settings, http=True) as app:
            assert app.http is not None
            url = f"http://127.0.0.1:{app.http.port}/telegram"
            status, _ = await tg.post_webhook(url, update)
            assert status == 200
            await asyncio.sleep(0.1)
            await app.runtime.wait_idle()
            async with aiohttp.ClientSession() as http:  # forged: no secret token
                async with http.post(url, json={"update_id": 778}) as resp:
                    assert resp.status == 401
    assert [validate_html(text) for text in tg.shown()] == ["echo: only once"]
    assert len(tg.calls_to("sendMessage")) == 1


async def test_group_policy_and_commands(
    tg: FakeBotApi, fake_ollama: FakeOllama, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(TELEGRAM_BOT_TOKEN=tg.token, TELEGRAM_BASE_URL=tg.base_url)
    async with running(settings) as app:
        await tg.push(tg.message("people talking", chat_id=-500, kind="group"))
        await tg.push(tg.message("/help@oc_test_bot", chat_id=-500, kind="group"))
        await _reply_done(tg, app)
        await tg.push(tg.message("@oc_test_bot hello", chat_id=-500, kind="group"))
        await _reply_done(tg, app, sends=2)
    help_text, answer = (validate_html(text) for text in tg.shown())
    assert "/reset" in help_text and "/help" in help_text
    assert answer == "echo: hello"  # the unaddressed message got no answer
    assert [m["content"] for m in fake_ollama.chats[-1]["messages"] if m["role"] == "user"] == [
        "hello"
    ]
    published = tg.commands['{"type": "default"}']
    assert {"command": "help", "description": "List the commands you can use."} in published
