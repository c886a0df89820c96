"""A dangerous tool never runs without a person's yes: direct, retry, reaction and restart paths."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from opencomputer.bot.config import Settings
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.fake_ollama import Reply
from opencomputer.bot.testing.harness import Harness
from opencomputer.bot.tools import Tool

from .conftest import ADMIN


def _dangerous(h: Harness, ran: list[dict[str, Any]]) -> None:
    async def wipe(path: str) -> str:
        ran.append({"path": path})
        return f"wiped {path}"

    params = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
    h.app.tools.add(Tool("wipe", "Delete a folder.", params, wipe, dangerous=True))


def _approval_id(text: str) -> str:
    found = re.search(r"/approve (\d+)", text)
    assert found is not None, text
    return found.group(1)


async def _allowed(h: Harness, *users: str) -> None:
    for user in users:
        await h.command("allow", f"test:{user}", user=ADMIN)


async def test_direct_path_waits_for_approval(harness: Harness, fake_ollama: FakeOllama) -> None:
    ran: list[dict[str, Any]] = []
    _dangerous(harness, ran)
    await _allowed(harness, "alice", "mallory")
    fake_ollama.call_tool("wipe", path="/tmp/x")
    fake_ollama.reply("Done, the folder is gone.")
    question = await harness.say("please wipe /tmp/x")
    assert "needs your approval" in question and '`wipe` {"path":"/tmp/x"}' in question
    assert ran == []
    approval = _approval_id(question)

    # Someone else (neither the requester nor an admin) cannot approve.
    refused = await harness.command("approve", approval, user="mallory", chat="alice")
    assert "Only the person who asked" in refused and ran == []

    answer = await harness.command("approve", approval)
    assert answer == "Done, the folder is gone."
    assert ran == [{"path": "/tmp/x"}]
    tool_messages = [m for m in fake_ollama.chats[-1]["messages"] if m["role"] == "tool"]
    assert tool_messages[-1]["content"] == "wiped /tmp/x"
    # Approving again does nothing: the approval is closed.
    assert "no open approval" in await harness.command("approve", approval)
    assert ran == [{"path": "/tmp/x"}]


async def test_reject_tells_the_model(harness: Harness, fake_ollama: FakeOllama) -> None:
    ran: list[dict[str, Any]] = []
    _dangerous(harness, ran)
    await _allowed(harness, "alice")
    fake_ollama.call_tool("wipe", path="/home")
    fake_ollama.reply("Understood, I left it alone.")
    await harness.say("wipe /home")
    answer = await harness.command("reject")
    assert "Rejected" in answer and "Understood, I left it alone." in answer
    assert ran == []
    tool_messages = [m for m in fake_ollama.chats[-1]["messages"] if m["role"] == "tool"]
    assert "declined" in tool_messages[-1]["content"]


async def test_thumbs_up_reaction_approves(harness: Harness, fake_ollama: FakeOllama) -> None:
    ran: list[dict[str, Any]] = []
    _dangerous(harness, ran)
    await _allowed(harness, "alice")
    fake_ollama.call_tool("wipe", path="/srv")
    fake_ollama.reply("Wiped.")
    await harness.say("wipe /srv")
    question_id = harness.last_message_id
    await harness.react(question_id, "👍")
    await harness.app.runtime.wait_idle()
    assert ran == [{"path": "/srv"}]
    assert harness.conn.messages[harness.last_message_id] == "Wiped."


async def test_new_message_drops_the_paused_call(harness: Harness, fake_ollama: FakeOllama) -> None:
    ran: list[dict[str, Any]] = []
    _dangerous(harness, ran)
    await _allowed(harness, "alice")
    fake_ollama.call_tool("wipe", path="/a")
    question = await harness.say("wipe /a")
    assert await harness.say("never mind") == "echo: never mind"
    assert "no open approval" in await harness.command("approve", _approval_id(question))
    assert ran == []


async def test_failed_resume_does_not_swallow_the_next_message(
    harness: Harness, fake_ollama: FakeOllama
) -> None:
    ran: list[dict[str, Any]] = []
    _dangerous(harness, ran)
    await _allowed(harness, "alice")
    fake_ollama.call_tool("wipe", path="/d")
    question = await harness.say("wipe /d")
    fake_ollama.script.append(Reply(error="model exploded", status=500))
    failed = await harness.command("approve", _approval_id(question))
    assert ran == [{"path": "/d"}] and "/retry" in failed
    assert await harness.say("are you there?") == "echo: are you there?"
    assert ran == [{"path": "/d"}]


async def test_resume_reaches_a_process_that_did_not_see_the_question(
    harness: Harness, fake_ollama: FakeOllama
) -> None:
    ran: list[dict[str, Any]] = []
    _dangerous(harness, ran)
    await _allowed(harness, "alice")
    fake_ollama.call_tool("wipe", path="/e")
    question = await harness.say("wipe /e")
    harness.app.extras["admin"].approvals._open.clear()  # as in another worker's memory
    fake_ollama.reply("Wiped.")
    assert await harness.command("approve", _approval_id(question)) == "Wiped."
    assert ran == [{"path": "/e"}]


async def test_retry_path_also_asks(harness: Harness, fake_ollama: FakeOllama) -> None:
    ran: list[dict[str, Any]] = []
    _dangerous(harness, ran)
    await _allowed(harness, "alice")
    fake_ollama.script.append(Reply(error="model exploded", status=500))
    failed = await harness.say("wipe /b")
    assert "/retry" in failed
    fake_ollama.call_tool("wipe", path="/b")
    question = await harness.command("retry")
    assert "needs your approval" in question and ran == []
    fake_ollama.reply("ok")
    await harness.command("approve", _approval_id(question))
    assert ran == [{"path": "/b"}]


async def _restart_flow(settings: Settings, fake_ollama: FakeOllama) -> None:
    ran: list[dict[str, Any]] = []
    async with Harness(settings) as first:
        _dangerous(first, ran)
        await _allowed(first, "alice")
        fake_ollama.call_tool("wipe", path="/c")
        approval = _approval_id(await first.say("wipe /c"))
    assert ran == []
    async with Harness(settings) as second:
        _dangerous(second, ran)
        # An admin decides, from another chat, after the restart.
        fake_ollama.reply("Wiped after the restart.")
        await second.command("approve", approval, user=ADMIN)
        assert ran == [{"path": "/c"}]
        final = [c for c in second.conn.calls if c.action == "send"][-1]
        assert final.address.chat_id == "alice" and final.text == "Wiped after the restart."
        history = await second.app.runtime.agent.history("test:alice#0")
        assert [m["role"] for m in history] == ["user", "assistant", "tool", "assistant"]


async def test_approval_survives_a_restart(
    admin_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    await _restart_flow(admin_settings(), fake_ollama)


async def test_approval_survives_a_restart_on_postgres(
    admin_settings: Callable[..., Settings], fake_ollama: FakeOllama, postgres_url: str
) -> None:
    await _restart_flow(admin_settings(OC_DATABASE_URL=postgres_url), fake_ollama)
