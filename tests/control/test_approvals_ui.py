"""Approving from the browser is ``/approve``: the paused turn resumes and answers in its chat,
the decision is audited under the admin's account, and the page hears of new requests live.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from opencomputer.bot import audit
from opencomputer.bot.config import Settings
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.tools import Tool

from .kit import ADMIN, Served, browser, control_settings, logged_in, served

pytestmark = pytest.mark.timeout(30)

LONG = "/srv/" + "deep/" * 80 + "<script>alert(1)</script>"  # over the inline limit, hostile


def dangerous(h: Served, ran: list[str]) -> None:
    async def wipe(path: str) -> str:
        ran.append(path)
        return f"wiped {path}"

    params = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
    h.app.tools.add(Tool("wipe", "Delete a folder.", params, wipe, dangerous=True))


async def pending(h: Served, fake_ollama: FakeOllama, path: str = LONG) -> None:
    """Alice asks for a dangerous call: the turn pauses with a question in her chat."""
    await h.command("allow", "test:alice", user=ADMIN)
    fake_ollama.call_tool("wipe", path=path)
    fake_ollama.reply("Done, the folder is gone.")
    assert "needs your approval" in await h.say("please wipe it")


async def events(http: aiohttp.ClientSession, url: str) -> AsyncIterator[tuple[str, Any]]:
    """Server-sent events as a browser's EventSource parses them."""
    async with http.get(url) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        kind = ""
        async for raw in r.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                yield kind, json.loads(line[6:])


async def test_approve_in_the_browser_resumes_the_turn(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    ran: list[str] = []
    async with served(control_settings(make_settings)) as h, browser() as http:
        dangerous(h, ran)
        csrf = await logged_in(h, http)
        await pending(h, fake_ollama)
        async with http.get(f"{h.base}/ui/api/approvals") as r:
            (item,) = (await r.json())["approvals"]
        assert item["user"] == "test:alice" and item["conversation"] == "test:alice"
        (call,) = item["calls"]
        assert call["name"] == "wipe" and json.loads(call["arguments"]) == {"path": LONG}
        assert ran == []

        before = len(h.conn.calls)
        url = f"{h.base}/ui/api/approvals/{item['id']}"
        async with http.post(
            url, json={"decision": "approve"}, headers={"X-CSRF-Token": csrf}
        ) as r:
            assert r.status == 200, await r.text()
        await h.app.runtime.wait_idle()
        assert ran == [LONG]
        assert h.last_text(since=before) == "Done, the folder is gone."  # in Alice's chat
        assert h.conn.calls[-1].address.chat_id == "alice"
        entries = [(e.actor, e.action, e.detail) for e in await audit.recent(h.app.store, 10)]
        assert (
            f"test:{ADMIN}",
            "approval.approved",
            {"approval": item["id"], "tools": ["wipe"]},
        ) in entries

        # Twice is not twice: the approval is closed.
        async with http.post(
            url, json={"decision": "approve"}, headers={"X-CSRF-Token": csrf}
        ) as r:
            assert r.status == 409
        async with http.get(f"{h.base}/ui/api/approvals") as r:
            assert (await r.json())["approvals"] == []
        assert ran == [LONG]


async def test_reject_and_bad_requests(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    ran: list[str] = []
    async with served(control_settings(make_settings)) as h, browser() as http:
        dangerous(h, ran)
        csrf = await logged_in(h, http)
        await pending(h, fake_ollama, "/home")
        (row,) = await h.app.extras["admin"].approvals.find(status="pending")
        url = f"{h.base}/ui/api/approvals/{row.id}"
        for body in ({}, {"decision": "yes"}, ["approve"]):
            async with http.post(url, json=body, headers={"X-CSRF-Token": csrf}) as r:
                assert r.status == 400
        async with http.post(
            f"{h.base}/ui/api/approvals/999",
            json={"decision": "approve"},
            headers={"X-CSRF-Token": csrf},
        ) as r:
            assert r.status == 409
        fake_ollama.script.clear()
        fake_ollama.reply("Understood, I left it alone.")
        async with http.post(url, json={"decision": "reject"}, headers={"X-CSRF-Token": csrf}) as r:
            assert r.status == 200 and (await r.json())["status"] == "rejected"
        await h.app.runtime.wait_idle()
        assert ran == [] and "Understood, I left it alone." in h.last_text()


async def test_a_new_request_appears_live_and_the_audit_log_checks_out(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    async with served(control_settings(make_settings)) as h, browser() as http:
        dangerous(h, [])
        await logged_in(h, http)
        stream = events(http, f"{h.base}/ui/api/events")
        seen: dict[str, Any] = {}
        async with asyncio.timeout(10):
            async for kind, data in stream:
                seen[kind] = data
                if "approvals" in seen and "overview" in seen:
                    break
            assert seen["approvals"] == {"approvals": []}
            assert seen["overview"]["connectors"] == {"test": "connected"}
            await pending(h, fake_ollama, "/tmp/x")
            async for kind, data in stream:
                if kind == "approvals" and data["approvals"]:
                    assert data["approvals"][0]["calls"][0]["name"] == "wipe"
                    break
        await stream.aclose()

        async with http.get(f"{h.base}/ui/api/audit/verify") as r:
            result = await r.json()
        assert result["valid"] and result["count"] >= 3
        async with http.get(f"{h.base}/ui/api/audit/export") as r:
            assert "attachment" in r.headers["Content-Disposition"]
            lines = [json.loads(line) for line in (await r.text()).splitlines()]
        assert len(lines) == result["count"] and lines[-1]["hash"] == result["head"]
        assert {"control.link", "control.login", "approval.requested"} <= {
            e["action"] for e in lines
        }


async def test_an_open_live_stream_does_not_hold_up_a_stop(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    h = Served(control_settings(make_settings))
    await h.start()
    stopped = False
    try:
        async with browser() as http:
            await logged_in(h, http)
            stream = events(http, f"{h.base}/ui/api/events")
            assert (await anext(stream))[0] == "approvals"
            # aiohttp would wait 5 s (its shutdown timeout) for a handler that never returns.
            async with asyncio.timeout(2.5):
                await h.app.stop()
                stopped = True
                async for _ in stream:  # the server ended the stream
                    pass
    finally:
        if not stopped:
            await h.app.stop()
