"""The control room in a real browser: Debian's headless Chromium driven by Playwright for
Python (``executable_path``, no browser download), phone-sized, under the strict CSP: log in
with the one-time link, see a pending approval appear live with its complete (hostile)
arguments as text, approve it, and see it go while the turn answers in its chat; read the
transcript with its tool calls, promote a prompt variant (and see the next turn served it),
consent to a new plugin whose description is hostile, read and delete a hostile memory, see
the charts, log out.
Screenshots are saved for review (``tests/browser_kit.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from opencomputer.bot.config import Settings
from opencomputer.bot.testing import FakeOllama

from .kit import control_settings, served
from .test_admin_pages import HOSTILE as DESCRIPTION
from .test_admin_pages import sneaky_plugin
from .test_approvals_ui import dangerous, pending

pytestmark = pytest.mark.timeout(60)

HOSTILE = '/srv/<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'


async def test_log_in_and_approve_in_a_real_browser(
    browser: Any,
    make_settings: Callable[..., Settings],
    fake_ollama: FakeOllama,
    shots: Path,
    tmp_path: Path,
) -> None:
    from playwright.async_api import expect

    ran: list[str] = []
    plugins = sneaky_plugin(tmp_path / "plugins")
    async with served(control_settings(make_settings, OC_PLUGIN_DIRS=str(plugins))) as h:
        dangerous(h, ran)
        context = await browser.new_context(
            viewport={"width": 390, "height": 760}, is_mobile=True, has_touch=True
        )
        page = await context.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))

        # Without a session the room sends the browser to the login page.
        await page.goto(f"{h.base}/ui/")
        assert page.url == f"{h.base}/ui/login"

        link = f"{h.base}/ui/login#{await h.link()}"
        await page.goto(link)
        await expect(page).to_have_url(f"{h.base}/ui/login")  # token out of the address bar
        await page.screenshot(path=str(shots / "control-login.png"))
        await page.get_by_role("button", name="Log in").click()
        await expect(page.locator("body[data-live=true]")).to_have_count(1)
        await expect(page.locator("#who")).to_contain_text("test:boss")
        await expect(page.locator("svg.chart")).to_have_count(2)  # turns and errors
        await page.screenshot(path=str(shots / "control-overview.png"))

        await page.goto(f"{h.base}/ui/#approvals")
        await expect(page.get_by_text("Nothing waits for a decision.")).to_be_visible()
        await pending(h, fake_ollama, HOSTILE)  # arrives over the event stream, no reload
        card = page.locator("article.approval")
        await expect(card).to_have_count(1)
        await expect(card.locator("pre")).to_contain_text(json.dumps(HOSTILE))  # whole, as text
        await expect(page.locator("#count")).to_have_text("1")
        await page.screenshot(path=str(shots / "control-approvals.png"), full_page=True)

        before = len(h.conn.calls)
        await card.get_by_role("button", name="Approve").click()
        await expect(card).to_have_count(0)
        await h.app.runtime.wait_idle()
        assert ran == [HOSTILE]
        assert h.last_text(since=before) == "Done, the folder is gone."
        assert await page.evaluate("window.__pwned") is None

        await page.goto(f"{h.base}/ui/#audit")
        await page.get_by_role("button", name="Verify the chain").click()
        await expect(page.locator(".verify")).to_contain_text("OK:")
        await expect(page.locator("table.audit")).to_contain_text("approval.approved")
        await page.screenshot(path=str(shots / "control-audit.png"), full_page=True)

        await page.goto(f"{h.base}/ui/#conversations")
        await page.get_by_role("link", name="test:alice").click()
        transcript = page.locator(".transcript")
        await expect(transcript).to_contain_text("please wipe it")
        await expect(transcript).to_contain_text("Done, the folder is gone.")
        call = transcript.locator(".said.tool.call pre")
        await expect(call).to_have_text(json.dumps({"path": HOSTILE}, separators=(",", ":")))
        await page.screenshot(path=str(shots / "control-transcript.png"), full_page=True)

        await h.command("prompt", "add --name=brief Answer in one sentence.", user="boss")
        await page.goto(f"{h.base}/ui/#prompts")
        brief = page.locator("article.variant", has_text="#2 brief")
        await brief.get_by_role("button", name="promote").click()
        await expect(brief.locator("h2")).to_contain_text("[active]")
        await page.screenshot(path=str(shots / "control-prompts.png"), full_page=True)
        fake_ollama.reply("Served.")  # the next turn is served the promoted prompt
        assert await h.say("and now?") == "Served."
        system = fake_ollama.chats[-1]["messages"][0]
        assert system["role"] == "system" and "Answer in one sentence." in system["content"]

        await page.goto(f"{h.base}/ui/#plugins")
        sneaky = page.locator("article.plugin", has_text="sneaky 0.1.0")
        await expect(sneaky.locator("p").first).to_have_text(DESCRIPTION)  # text, not run
        await sneaky.get_by_role("button", name="Consent: enable and grant its secrets").click()
        await expect(sneaky.locator("h2")).to_have_text("sneaky 0.1.0")
        assert h.app.extras["plugins"].enablement.is_granted("sneaky", "OC_SNEAKY_TOKEN")
        await page.screenshot(path=str(shots / "control-plugins.png"), full_page=True)

        await h.app.extras["memory"].add("test:alice", HOSTILE)
        await page.goto(f"{h.base}/ui/#people")
        await page.get_by_role("link", name="test:alice").click()
        memories = page.locator(".memories li")
        await expect(memories).to_have_count(1)
        await expect(memories).to_contain_text(HOSTILE)
        await page.screenshot(path=str(shots / "control-people.png"), full_page=True)
        await memories.get_by_role("button", name="Delete").click()
        await expect(memories).to_have_text("No memories.")
        assert await h.app.extras["memory"].list_of("test:alice") == []
        assert await page.evaluate("window.__pwned") is None

        assert problems == [], problems
        # Logging out closes the live stream first: no reconnect, no session check after it,
        # no error from a request cut off by leaving the page (a live redraw may still be in
        # flight when the session ends: the browser logs its 401 itself).
        asked: list[str] = []
        page.on("request", lambda r: asked.append(r.url) if "/ui/api/" in r.url else None)
        await page.get_by_role("button", name="Log out").click()
        await page.wait_for_url(f"{h.base}/ui/login")
        await page.goto(f"{h.base}/ui/")
        await expect(page).to_have_url(f"{h.base}/ui/login")
        assert f"{h.base}/ui/api/logout" in asked, asked
        assert not [u for u in asked if u.endswith(("/api/events", "/api/session"))], asked
        # only the browser's own line for a request already in flight may remain
        assert all(p.startswith("Failed to load resource") and "401" in p for p in problems), (
            problems
        )
        await context.close()
