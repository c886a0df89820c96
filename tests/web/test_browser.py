"""The web chat in a real browser: Debian's headless Chromium driven by Playwright for Python
(``executable_path``, no browser download), on a phone-sized screen, under the page's strict
Content-Security-Policy: type, watch the answer stream in, vote, reload, and check that a
hostile model answer stays text. Screenshots are saved for review (``tests/browser_kit.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from opencomputer.bot.config import Settings
from opencomputer.bot.storage.models import ReactionRow
from opencomputer.bot.testing import FakeOllama
from tests.web.kit import serve, settings_for

pytestmark = pytest.mark.timeout(60)

_REACT = ReactionRow.__table__  # type: ignore[attr-defined]
HOSTILE = (
    "Look: <script>window.__pwned = 1</script> and "
    '<img src=x onerror="window.__pwned = 2"> and [click](javascript:window.__pwned=3) '
    "but **this** is bold."
)


async def test_chat_in_a_real_browser(
    browser: Any,
    make_settings: Callable[..., Settings],
    fake_ollama: FakeOllama,
    shots: Path,
) -> None:
    from playwright.async_api import expect

    answer = "Hello from **opencomputer**: " + " ".join(f"w{i}" for i in range(40)) + "."
    async with serve(settings_for(make_settings)) as (app, base):
        context = await browser.new_context(
            viewport={"width": 390, "height": 760}, is_mobile=True, has_touch=True
        )
        page = await context.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        await page.goto(f"{base}/chat")
        await expect(page.locator("body[data-ready=true]")).to_have_count(1)

        # Streaming: record every text the bot message showed while it grew.
        await page.evaluate(
            """() => {
                window.__seen = [];
                new MutationObserver(() => {
                    const b = document.querySelector('.msg.bot .body');
                    if (b) window.__seen.push(b.textContent);
                }).observe(document.getElementById('log'),
                           {subtree: true, childList: true, characterData: true});
            }"""
        )
        fake_ollama.reply(answer, chunks=12, pace=0.04)
        await page.fill("#text", "hi from the browser")
        await page.press("#text", "Enter")
        bot = page.locator(".msg.bot").first
        await expect(bot.locator(".body")).to_have_text(answer.replace("**", ""))
        await expect(bot.locator(".body strong")).to_have_text("opencomputer")
        seen = await page.evaluate("window.__seen")
        partial = [t for t in seen if t and t != "…" and t != answer.replace("**", "")]
        assert partial, seen  # it grew in place before the final text
        await expect(page.locator(".msg.user .body")).to_have_text(["hi from the browser"])

        await bot.get_by_role("button", name="Good answer").click()
        await expect(bot.get_by_role("button", name="Good answer")).to_have_attribute(
            "aria-pressed", "true"
        )
        async with app.store.engine.connect() as conn:
            reactions = (await conn.execute(select(_REACT))).all()
        assert [(r.emoji, r.reply_id is not None) for r in reactions] == [("👍", True)]

        # A hostile answer is shown as text: no element, no handler, no script run.
        fake_ollama.reply(HOSTILE)
        await page.fill("#text", "say something nasty")
        await page.click("#send")
        nasty = page.locator(".msg.bot").nth(1)
        await expect(nasty.locator(".body")).to_contain_text("<script>window.__pwned = 1</script>")
        await expect(nasty.locator(".body")).to_contain_text('<img src=x onerror="window.__pwned')
        assert await nasty.locator("script, img, iframe, [onerror]").count() == 0
        assert await nasty.locator("a").count() == 0  # a javascript: link stays text
        await expect(nasty.locator(".body strong")).to_have_text("this")
        assert await page.evaluate("window.__pwned") is None

        # Nothing wider than a phone's screen.
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, width
        await page.screenshot(path=str(shots / "web-chat.png"), full_page=True)

        # Reload: the conversation, and the vote, are still there.
        await page.reload()
        await expect(page.locator("body[data-ready=true]")).to_have_count(1)
        await expect(page.locator(".msg.user .body")).to_have_text(
            ["hi from the browser", "say something nasty"]
        )
        bot = page.locator(".msg.bot").first
        await expect(bot.locator(".body")).to_have_text(answer.replace("**", ""))
        await expect(bot.get_by_role("button", name="Good answer")).to_have_attribute(
            "aria-pressed", "true"
        )
        assert await page.evaluate("window.__pwned") is None
        await page.screenshot(path=str(shots / "web-chat-reloaded.png"), full_page=True)
        assert not problems, problems  # no CSP violation, no script error
        await context.close()
