# ruff: noqa: F811 (pytest fixtures imported from the Telegram tests are parameters here)
"""The control room watching a Telegram conversation, in a real browser: the whole app runs
with the Telegram connector against the fake Bot API. The admin asks for a login link with
``/web`` in their Telegram DM and opens it in headless Chromium; a stranger's first message
shows up live on the people page as a pairing request, *Allow* lets them in (Telegram tells
them), and their question and the agent's answer appear live on the conversations page and in
the transcript, hostile markup shown as text. Screenshots are saved for review.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from opencomputer.bot.app import App
from opencomputer.bot.config import Settings
from opencomputer.bot.testing import FakeOllama
from opencomputer.connectors.telegram import TelegramConnector
from tests.telegram.fake_bot_api import FakeBotApi, validate_html
from tests.telegram.telegram_helpers import FAST, _ptb_timedelta, tg  # noqa: F401 (fixtures)

from .kit import control_settings

pytestmark = pytest.mark.timeout(60)

BOSS, ALICE = 7, 42
LINK = re.compile(r"(http://\S+)/ui/login#([A-Za-z0-9_-]+)")
HOSTILE = 'what is 2+2? <img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[App, str]]:
    """The whole app, Telegram connector and HTTP app (the control room) both on."""
    app = App(settings)
    await app.start(lambda s, rt: [TelegramConnector(s, rt.emit, options=FAST)])
    conn = app.connectors[0]
    assert isinstance(conn, TelegramConnector)
    try:
        async with asyncio.timeout(5):
            await conn.connected.wait()
        assert app.http is not None
        yield app, f"http://127.0.0.1:{app.http.port}"
    finally:
        await app.stop()


NAMES = {BOSS: "Boss", ALICE: "Alice"}


async def posted(tg: FakeBotApi, chat: int, count: int) -> list[str]:
    """Wait until the bot posted ``count`` messages in ``chat``; what the chat shows."""
    await tg.wait_for("sendMessage", lambda c: int(c["chat_id"]) == chat, count=count, within=10)
    return [validate_html(t) for t in tg.shown(chat)]


async def said(tg: FakeBotApi, chat: int, text: str, sends: int) -> list[str]:
    """Post ``text`` as that DM's user; wait for the bot's ``sends``-th message there."""
    await tg.push(tg.message(text, chat_id=chat, from_user=tg.user(chat, NAMES[chat])))
    return await posted(tg, chat, sends)


async def test_a_telegram_conversation_appears_live_in_the_control_room(
    tg: FakeBotApi,
    browser: Any,
    make_settings: Callable[..., Settings],
    fake_ollama: FakeOllama,
    shots: Path,
) -> None:
    from playwright.async_api import expect

    settings = control_settings(
        make_settings,
        TELEGRAM_BOT_TOKEN=tg.token,
        TELEGRAM_BASE_URL=tg.base_url,
        OC_ADMINS=f"telegram:{BOSS}",
    )
    async with running(settings) as (app, base):
        # The admin asks for a link in their Telegram DM.
        shown = await said(tg, BOSS, "/web", sends=1)
        found = LINK.search(shown[-1])
        assert found is not None and found.group(1) == base, shown

        context = await browser.new_context(viewport={"width": 390, "height": 760}, is_mobile=True)
        page = await context.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        await page.goto(f"{base}/ui/login#{found.group(2)}")
        await page.get_by_role("button", name="Log in").click()
        await expect(page.locator("#who")).to_contain_text(f"telegram:{BOSS}")

        # A stranger writes: the pairing request appears on the open people page, no reload.
        await page.goto(f"{base}/ui/#people")
        await expect(page.get_by_text("No pending pairing requests.")).to_be_visible()
        shown = await said(tg, ALICE, "hello?", sends=1)
        assert "/allow" in shown[-1]
        request = page.locator("article.pairing")
        await expect(request).to_contain_text(f"Alice (telegram:{ALICE})")
        await page.screenshot(path=str(shots / "telegram-pairing.png"), full_page=True)
        await request.get_by_role("button", name="Allow").click()
        await expect(request).to_have_count(0)
        assert "You're in" in (await posted(tg, ALICE, 2))[-1]

        # Her question and the answer appear on the open conversations page, then in the
        # transcript, as they happen.
        await page.goto(f"{base}/ui/#conversations")
        await expect(page.get_by_text("No conversations.")).to_be_visible()
        fake_ollama.reply("It is **4**.")
        await said(tg, ALICE, HOSTILE, sends=3)
        await app.runtime.wait_idle()
        link = page.get_by_role("link", name=f"telegram:{ALICE}")
        await expect(link).to_be_visible()
        await link.click()
        transcript = page.locator(".transcript")
        await expect(transcript.locator(".said.user .text")).to_have_text(HOSTILE)
        await expect(transcript.locator(".said.assistant .text")).to_have_text("It is **4**.")
        await expect(transcript.locator(".said.user .meta")).to_contain_text("Alice")

        # The next message arrives while the transcript is open: it grows without a reload.
        fake_ollama.reply("You are welcome.")
        await said(tg, ALICE, "thanks", sends=4)
        await expect(transcript.locator(".said.assistant .text").last).to_have_text(
            "You are welcome."
        )
        await page.screenshot(path=str(shots / "telegram-transcript.png"), full_page=True)
        assert await page.evaluate("window.__pwned") is None
        assert problems == [], problems
        await context.close()
