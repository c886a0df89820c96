"""Connection failures, backoff and state; webhook mode with its secret token."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from opencomputer.bot.connector import ConnectorState
from opencomputer.bot.events import Message
from opencomputer.connectors.telegram import TelegramConnector
from tests.telegram.fake_bot_api import FakeBotApi
from tests.telegram.telegram_helpers import FAST, Sink

WEBHOOK_SECRET = "s3cret-token_for-tests"


async def _until(predicate, within: float = 5.0) -> None:
    """Wait for a state change (states are plain attributes, not events)."""
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_bad_token_fails_with_one_clear_line_and_keeps_retrying(
    tg: FakeBotApi, tg_settings, sink: Sink, caplog: pytest.LogCaptureFixture
) -> None:
    bad = "999:wrong-token-value"
    conn = TelegramConnector(tg_settings(TELEGRAM_BOT_TOKEN=bad), sink, options=FAST)
    caplog.set_level(logging.DEBUG, logger="opencomputer.connectors.telegram")
    await conn.start()  # returns at once: the server must not wait for Telegram
    try:
        await tg.wait_for("getMe", count=3)  # retried, with backoff
        assert conn.state is ConnectorState.FAILED
    finally:
        await conn.stop()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "rejected TELEGRAM_BOT_TOKEN" in errors[0].getMessage()
    assert "\n" not in errors[0].getMessage() and errors[0].exc_info is None
    assert all(bad not in r.getMessage() for r in caplog.records)
    assert conn.state is ConnectorState.STOPPED


async def test_unreachable_api_reconnects_when_it_comes_back(
    tg_settings, sink: Sink, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conn = TelegramConnector(
        tg_settings(TELEGRAM_BASE_URL=f"http://127.0.0.1:{port}/bot"), sink, options=FAST
    )
    await conn.start()
    try:
        await _until(lambda: conn.state is ConnectorState.RECONNECTING)
    finally:
        await conn.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cannot reach" in warnings[0]


async def test_network_error_while_polling_recovers(
    tg: FakeBotApi, connector: TelegramConnector, sink: Sink
) -> None:
    tg.fail("getUpdates", status=502, description="Bad Gateway", times=2)
    await tg.push(tg.message("after the outage"))
    [event] = await sink.wait(1)
    assert isinstance(event, Message) and event.text == "after the outage"
    assert connector.state is ConnectorState.CONNECTED


@pytest.fixture
async def webhook(
    tg: FakeBotApi, tg_settings, sink: Sink
) -> AsyncIterator[tuple[str, TelegramConnector]]:
    settings = tg_settings(
        TELEGRAM_WEBHOOK_URL="https://bot.example.org/hooks/telegram",
        TELEGRAM_WEBHOOK_SECRET=WEBHOOK_SECRET,
    )
    conn = TelegramConnector(settings, sink, options=FAST)
    app = web.Application()
    app.add_routes(conn.routes())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    await conn.start()
    async with asyncio.timeout(5):
        await conn.connected.wait()
    yield f"http://127.0.0.1:{port}/hooks/telegram", conn
    await conn.stop()
    await runner.cleanup()


async def test_webhook_registered_with_secret_and_reactions(
    tg: FakeBotApi, webhook: tuple[str, TelegramConnector]
) -> None:
    [call] = tg.calls_to("setWebhook")
    assert call["url"] == "https://bot.example.org/hooks/telegram"
    assert call["secret_token"] == WEBHOOK_SECRET
    assert "message_reaction" in call["allowed_updates"]
    assert tg.calls_to("getUpdates") == []


async def test_webhook_rejects_wrong_secret(
    tg: FakeBotApi, webhook: tuple[str, TelegramConnector], sink: Sink
) -> None:
    url, _conn = webhook
    update = {"update_id": 1, "message": tg.message("forged")}
    assert (await tg.post_webhook(url, update, secret="wrong"))[0] == 401
    assert (await tg.post_webhook(url, update, secret=""))[0] == 401
    await asyncio.sleep(0.05)
    assert sink.events == []


async def test_webhook_delivers_once_even_when_redelivered(
    tg: FakeBotApi, webhook: tuple[str, TelegramConnector], sink: Sink
) -> None:
    url, _conn = webhook
    update = {"update_id": 2, "message": tg.message("via webhook")}
    assert (await tg.post_webhook(url, update))[0] == 200
    assert (await tg.post_webhook(url, update))[0] == 200  # Telegram retried
    await asyncio.sleep(0.05)
    assert [e.text for e in sink.events] == ["via webhook"]  # type: ignore[union-attr]


async def test_webhook_asks_telegram_to_retry_when_runtime_refuses(
    tg: FakeBotApi, webhook: tuple[str, TelegramConnector], sink: Sink
) -> None:
    url, _conn = webhook
    update = {"update_id": 3, "message": tg.message("later please")}
    sink.fail = RuntimeError("shutting down")
    assert (await tg.post_webhook(url, update))[0] == 503
    sink.fail = None
    assert (await tg.post_webhook(url, update))[0] == 200
    assert [e.text for e in sink.events] == ["later please"]  # type: ignore[union-attr]


async def test_another_poller_is_reported_once_and_outlasted(
    tg: FakeBotApi, connector: TelegramConnector, sink: Sink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="opencomputer.connectors.telegram")
    conflict = "Conflict: terminated by other getUpdates request"
    polls = len(tg.calls_to("getUpdates"))
    tg.fail("getUpdates", status=409, description=conflict, times=3)
    await tg.wait_for("getUpdates", count=polls + 4)  # the three refused, then a good one
    assert tg.failures[-1].times == 0
    await tg.push(tg.message("still here"))
    [event] = await sink.wait(1)
    assert isinstance(event, Message) and event.text == "still here"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "another process uses this bot token" in errors[0]
    assert connector.state is ConnectorState.CONNECTED
