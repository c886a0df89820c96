"""Pairing, admin-only commands, command scopes and a reaction approval over the Telegram fake."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from opencomputer.bot.app import App
from opencomputer.bot.config import Settings
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.tools import Tool
from opencomputer.connectors.telegram import TelegramConnector
from tests.telegram.fake_bot_api import FakeBotApi, validate_html
from tests.telegram.telegram_helpers import FAST

ADMIN_ID = 1
USER_ID = 42


@pytest.fixture(autouse=True)
def _ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # PTB 22 warns on int periods otherwise


@pytest.fixture
async def tg() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as fake:
        yield fake


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[App]:
    app = App(settings)
    await app.start(lambda s, rt: [TelegramConnector(s, rt.emit, options=FAST)], http=False)
    conn = app.connectors[0]
    assert isinstance(conn, TelegramConnector)
    async with asyncio.timeout(5):
        await conn.connected.wait()
    try:
        yield app
    finally:
        await app.stop()


async def _say(tg: FakeBotApi, app: App, text: str, user_id: int, sends: int = 1) -> list[str]:
    """Push a private message, wait for ``sends`` new messages, return their texts."""
    before = len(tg.calls_to("sendMessage"))
    shown = len(tg.shown())
    await tg.push(tg.message(text, chat_id=user_id, user_id=user_id))
    await tg.wait_for("sendMessage", count=before + sends)
    await app.runtime.wait_idle()
    return [validate_html(text) for text in tg.shown()[shown:]]  # answers are edited in


async def test_pairing_scopes_and_reaction_approval_on_telegram(
    tg: FakeBotApi, fake_ollama: FakeOllama, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        TELEGRAM_BOT_TOKEN=tg.token,
        TELEGRAM_BASE_URL=tg.base_url,
        OC_DM_POLICY="pairing",
        OC_ADMINS=f"telegram:{ADMIN_ID}",
    )
    async with running(settings) as app:
        # Native menus: admin commands only in the admin's private-chat scope. The connector
        # publishes them once connected, which may be just after the app reports started.
        await tg.wait_for("setMyCommands", count=2)
        default = {c["command"] for c in tg.commands[json.dumps({"type": "default"})]}
        admin_scope = json.dumps({"chat_id": ADMIN_ID, "type": "chat"}, sort_keys=True)
        admin_menu = {c["command"] for c in tg.commands[admin_scope]}
        assert {"forget", "export", "link", "approve"} <= default
        assert not {"status", "allow", "deny", "audit", "broadcast"} & default
        assert {"status", "allow", "deny", "audit", "broadcast"} <= admin_menu

        [pairing] = await _say(tg, app, "hello", USER_ID)
        code = re.search(r"/allow (\w{6})", pairing)
        assert code is not None, pairing
        texts = await _say(tg, app, f"/allow {code.group(1)}", ADMIN_ID, sends=2)
        assert "You're in: an admin allowed you. Say hello!" in texts
        assert "Allowed Alice (telegram:42)." in texts
        assert await _say(tg, app, "hi", USER_ID) == ["echo: hi"]
        assert await _say(tg, app, "/status", USER_ID) == ["/status is for admins only."]

        ran: list[dict[str, Any]] = []

        async def wipe(path: str) -> str:
            ran.append({"path": path})
            return "wiped"

        params = {
            "type": "object",
            "properties": {"path": {"type": "string"}},
            "required": ["path"],
        }
        app.tools.add(Tool("wipe", "Delete a folder.", params, wipe, dangerous=True))
        fake_ollama.call_tool("wipe", path="/tmp/t")
        fake_ollama.reply("Gone.")
        [question] = await _say(tg, app, "wipe /tmp/t", USER_ID)
        assert "needs your approval" in question and ran == []
        [question_id] = [m for (c, m), t in tg.texts.items() if c == USER_ID and "approval" in t]
        await tg.push(
            tg.reaction(USER_ID, question_id, new=["👍"], user_id=USER_ID), kind="message_reaction"
        )
        await tg.wait_for("sendMessage", count=len(tg.calls_to("sendMessage")) + 1)
        await app.runtime.wait_idle()
        assert ran == [{"path": "/tmp/t"}]
        assert validate_html(tg.calls_to("sendMessage")[-1]["text"]) == "Gone."
