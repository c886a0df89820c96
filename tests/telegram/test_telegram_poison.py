"""Poison updates: one odd update is quarantined, the offset moves past it, other chats go on.

Each test pushes the attack through the fake Bot API (real getUpdates, real python-telegram-bot)
into a sink that stores through the real ``SqlStore`` (SQLite), then a normal message in
another chat, which must come through within a few seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from opencomputer.bot.config import Settings
from opencomputer.bot.events import Command, Message, Reaction
from opencomputer.bot.storage.store import SqlStore
from opencomputer.connectors.telegram import TelegramConnector
from tests.telegram.fake_bot_api import FakeBotApi
from tests.telegram.telegram_helpers import FAST

LONE = "\ud800"


class StoringSink:
    """An ``emit`` that stores like the runtime does (real SQLite), and records what it took."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.events: list[Message | Reaction | Command] = []
        self.calls = 0
        self.refuse: Callable[[Message | Reaction | Command], Exception | None] = lambda e: None
        self._changed = asyncio.Condition()

    async def __call__(self, event: Message | Reaction | Command) -> None:
        self.calls += 1
        if (exc := self.refuse(event)) is not None:
            raise exc
        if isinstance(event, Message):
            await self.store.accept_inbound(event)
        elif isinstance(event, Reaction):
            await self.store.record_reaction(event)
        self.events.append(event)
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, pred: Callable[[Message | Reaction | Command], bool]) -> Any:
        async with asyncio.timeout(5), self._changed:
            await self._changed.wait_for(lambda: any(pred(e) for e in self.events))
        return next(e for e in self.events if pred(e))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    db = SqlStore(f"sqlite:///{tmp_path / 'oc.db'}")
    await db.start()
    yield db
    await db.stop()


@pytest.fixture
async def polling(
    tg_settings: Callable[..., Settings], store: SqlStore
) -> AsyncIterator[tuple[TelegramConnector, StoringSink]]:
    sink = StoringSink(store)
    conn = TelegramConnector(tg_settings(), sink, options=FAST)
    await conn.start()
    async with asyncio.timeout(5):
        await conn.connected.wait()
    yield conn, sink
    await conn.stop()


def _text(event: Any) -> str:
    return getattr(event, "text", "")


async def _next_message_goes_through(tg: FakeBotApi, sink: StoringSink) -> None:
    """A normal message in another chat arrives within 5 s (the stream was not stopped)."""
    await tg.push(tg.message("are you there?", chat_id=777, user_id=777))
    await sink.wait_for(lambda e: _text(e) == "are you there?")


async def _offset_past(tg: FakeBotApi, update_id: int) -> None:
    """The bot confirmed the update to Telegram (a later getUpdates offset is above it)."""
    async with asyncio.timeout(5):
        while not any(int(c.get("offset") or 0) > update_id for c in tg.calls_to("getUpdates")):
            await asyncio.sleep(0.02)


async def test_lone_surrogate_text_is_stored_cleaned_and_input_goes_on(
    tg: FakeBotApi, polling: tuple[TelegramConnector, StoringSink]
) -> None:
    _conn, sink = polling
    msg = tg.message("placeholder", chat_id=-41, user_id=41, kind="group")
    msg["text"] = f"@oc_test_bot broken {LONE} text, **bold**"
    msg["entities"] = [{"type": "mention", "offset": 0, "length": 12}]  # in UTF-16 units
    msg["from"]["first_name"] = f"Eve{LONE}"
    msg["chat"]["first_name"] = f"Eve{LONE}"
    await tg.push(msg)
    await _next_message_goes_through(tg, sink)
    event = await sink.wait_for(lambda e: _text(e).startswith("broken"))
    assert event.text == "broken \ufffd text, **bold**" and event.addressed  # mention parsed
    assert event.user.name == "Eve\ufffd"
    rows = await sink.store.unfinished_inbound()
    assert [r.text for r in rows if r.chat_id == "-41"] == ["broken \ufffd text, **bold**"]


async def test_lone_surrogate_reaction_is_taken_cleaned(
    tg: FakeBotApi, polling: tuple[TelegramConnector, StoringSink]
) -> None:
    _conn, sink = polling
    await tg.push(tg.reaction(43, 5, new=[LONE, "👍"]), kind="message_reaction")
    await _next_message_goes_through(tg, sink)
    emojis = sorted(e.emoji for e in sink.events if isinstance(e, Reaction))
    assert emojis == ["\ufffd", "👍"]


@pytest.mark.parametrize(
    "breakage",
    [
        pytest.param(lambda m: m.update(date="yesterday"), id="date-not-a-number"),
        pytest.param(lambda m: m.update({"from": 42}), id="from-not-an-object"),
        pytest.param(lambda m: m.update(chat=["x"]), id="chat-a-list"),
        pytest.param(lambda m: m.update(entities=[{"type": "bold"}]), id="entity-no-offset"),
    ],
)
async def test_unparseable_update_is_quarantined_and_confirmed(
    tg: FakeBotApi,
    polling: tuple[TelegramConnector, StoringSink],
    breakage: Callable[[dict[str, Any]], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn, sink = polling
    bad = tg.message("you cannot parse me", chat_id=44, user_id=44)
    breakage(bad)
    uid = await tg.push(bad)
    await _next_message_goes_through(tg, sink)
    await _offset_past(tg, uid)
    [held] = conn.quarantine.entries()
    assert held["key"] == str(uid) and held["raw"]["message"] == bad  # raw payload kept whole
    assert "cannot parse" in held["reason"]
    lines = [r for r in caplog.records if "quarantined" in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is None  # reported once, one line
    assert not any(r.levelno >= logging.CRITICAL for r in caplog.records)


async def test_wrong_types_that_parse_but_do_not_translate_are_quarantined(
    tg: FakeBotApi, polling: tuple[TelegramConnector, StoringSink]
) -> None:
    conn, sink = polling
    bad = tg.message("x", chat_id=45, user_id=45)
    bad["text"] = {"not": "a string"}
    uid = await tg.push(bad)
    await _next_message_goes_through(tg, sink)
    await _offset_past(tg, uid)
    assert [h["key"] for h in conn.quarantine.entries()] == [str(uid)]
    assert not any(e.chat.id == "45" for e in sink.events)


async def test_update_without_id_and_non_object_do_not_stop_input(
    tg: FakeBotApi, polling: tuple[TelegramConnector, StoringSink]
) -> None:
    conn, sink = polling
    tg.updates.append({"update_id": "seven", "message": tg.message("no id")})
    await _next_message_goes_through(tg, sink)
    assert [h["raw"]["update_id"] for h in conn.quarantine.entries()] == ["seven"]


async def test_update_the_runtime_keeps_refusing_is_quarantined_after_three_tries(
    tg: FakeBotApi, polling: tuple[TelegramConnector, StoringSink]
) -> None:
    conn, sink = polling
    tries: list[str] = []

    def refuse(event: Message | Reaction | Command) -> Exception | None:
        if event.chat.id == "46":
            tries.append(event.event_id)
            return ValueError("this one always breaks a handler")
        return None

    sink.refuse = refuse
    uid = await tg.push(tg.message("poison", chat_id=46, user_id=46))
    await _next_message_goes_through(tg, sink)
    await _offset_past(tg, uid)
    assert len(tries) == 3  # bounded: tried three times, then kept aside
    [held] = conn.quarantine.entries()
    assert held["key"] == str(uid) and "not taken 3 times" in held["reason"]
    assert held["raw"]["message"]["text"] == "poison"


async def test_shutdown_refusal_is_never_quarantined(
    tg: FakeBotApi, polling: tuple[TelegramConnector, StoringSink]
) -> None:
    from opencomputer.bot.connector import RuntimeStopped

    conn, sink = polling
    refusals = 0

    def refuse(event: Message | Reaction | Command) -> Exception | None:
        nonlocal refusals
        if refusals < 6:
            refusals += 1
            return RuntimeStopped("stopping")
        return None

    sink.refuse = refuse
    await tg.push(tg.message("keep me", chat_id=47, user_id=47))
    await sink.wait_for(lambda e: _text(e) == "keep me")
    assert refusals == 6 and conn.quarantine.entries() == []


async def test_quarantine_file_is_owner_only(
    tg: FakeBotApi, polling: tuple[TelegramConnector, StoringSink]
) -> None:
    conn, sink = polling
    bad = tg.message("secret words", chat_id=48, user_id=48)
    bad["date"] = "never"
    await tg.push(bad)
    await _next_message_goes_through(tg, sink)
    assert conn.quarantine.path.stat().st_mode & 0o777 == 0o600
    assert conn.quarantine.path.parent.stat().st_mode & 0o777 == 0o700


async def test_webhook_junk_and_unparseable_updates_are_acknowledged_and_kept(
    tg: FakeBotApi, tg_settings: Callable[..., Settings], store: SqlStore
) -> None:
    from aiohttp import ClientSession, web

    sink = StoringSink(store)
    settings = tg_settings(
        TELEGRAM_WEBHOOK_URL="https://bot.example.org/hooks/telegram",
        TELEGRAM_WEBHOOK_SECRET="s3cret-token",
    )
    conn = TelegramConnector(settings, sink, options=FAST)
    app = web.Application()
    app.add_routes(conn.routes())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}/hooks/telegram"
    await conn.start()
    try:
        async with asyncio.timeout(5):
            await conn.connected.wait()
        headers = {"X-Telegram-Bot-Api-Secret-Token": "s3cret-token"}
        async with ClientSession() as http:
            for body in (b"\xff\xfe not json", b'{"update_id": 9, "message": {"date": "x"}}'):
                async with http.post(url, data=body, headers=headers) as resp:
                    assert resp.status == 200  # acknowledged: Telegram stops re-sending it
        good = {"update_id": 10, "message": tg.message(f"fine {LONE}", chat_id=49)}
        assert (await tg.post_webhook(url, good, secret="s3cret-token"))[0] == 200
        event = await sink.wait_for(lambda e: _text(e).startswith("fine"))
        assert event.text == "fine \ufffd"
        assert sorted(h["key"] for h in conn.quarantine.entries()) == ["9", "webhook-body"]
    finally:
        await conn.stop()
        await runner.cleanup()


async def test_through_the_app_poison_never_delays_the_next_chat(
    tg: FakeBotApi, fake_ollama: Any, make_settings: Callable[..., Settings]
) -> None:
    """The real App (runtime, SQLite, fake Ollama): a lone-surrogate message, an unparseable
    update and a wrong-typed one come first; a message in another chat is answered within 5 s.
    """
    from tests.telegram.test_telegram_e2e import running

    settings = make_settings(TELEGRAM_BOT_TOKEN=tg.token, TELEGRAM_BASE_URL=tg.base_url)
    async with running(settings) as app:
        odd = tg.message("x", chat_id=61, user_id=61)
        odd["text"] = f"lone {LONE} surrogate"
        broken = tg.message("x", chat_id=62, user_id=62)
        broken["date"] = "yesterday"
        typed = tg.message("x", chat_id=63, user_id=63)
        typed["text"] = ["not", "text"]
        for update in (odd, broken, typed):
            await tg.push(update)
        await tg.push(tg.message("hello there", chat_id=64, user_id=64))
        await tg.wait_for("sendMessage", lambda c: c["chat_id"] == 64, within=5)
        await tg.wait_for("sendMessage", lambda c: c["chat_id"] == 61, within=5)
        await app.runtime.wait_idle()
        conn = app.connectors[0]
        assert isinstance(conn, TelegramConnector)
        held = sorted(h["raw"]["message"]["chat"]["id"] for h in conn.quarantine.entries())
        assert held == [62, 63]
    final = {k: v for k, v in tg.texts.items() if k[0] == 64}
    assert any("hello there" in v for v in final.values())  # the echo model answered
