from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson

from opencomputer.bot.config import Settings
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.fake_ollama import Reply
from opencomputer.bot.testing.harness import Harness
from opencomputer.bot.tools import ToolError, tool
from opencomputer.graphs.agent.planning import PLAN_MARKER, needs_plan
from tests.memory.helpers import open_settings, system_prompt

REQUEST = "Look up the value, then double it, and then tell me the result."


@tool(effects=[])  # a lookup: no effect beyond answering (bot/effects.py)
async def flaky_lookup() -> str:
    """Look up the value (primary service)."""
    raise ToolError("primary service is down")


@tool(effects=[])
async def backup_lookup() -> str:
    """Look up the value (backup service)."""
    return "42"


def _json(data: Any) -> Reply:
    return Reply(orjson.dumps(data).decode())


def _planner(body: dict[str, Any]) -> Reply:
    prompt = system_prompt(body)
    last = body["messages"][-1]
    if PLAN_MARKER in prompt and "failed with" in prompt:
        assert "primary service is down" in prompt
        return _json(
            {
                "steps": [
                    {"do": "look up the value with the backup", "tool": "backup_lookup"},
                    {"do": "double it", "tool": None},
                ]
            }
        )
    if PLAN_MARKER in prompt:
        return _json(
            {
                "steps": [
                    {"do": "look up the value", "tool": "flaky_lookup"},
                    {"do": "double it", "tool": None},
                ],
                "question": None,
            }
        )
    if "has been carried out" in prompt:
        return Reply("The result is 84 (the primary lookup failed, the backup answered 42).")
    step = re.search(r"Do step (\d+) now: ([^.]+)", prompt)
    if step is None:
        return Reply("plain answer")
    if last["role"] == "tool":
        return Reply(f"got {last['content']}")
    if "backup" in step.group(2):
        return Reply.tool("backup_lookup")
    if "look up" in step.group(2):
        return Reply.tool("flaky_lookup")
    return Reply("84")


async def test_plan_with_a_failing_step_is_revised_and_finished(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    fake_ollama.responder = _planner
    async with Harness(make_settings(**open_settings())) as h:
        h.app.tools.add(flaky_lookup, plugin="core")
        h.app.tools.add(backup_lookup, plugin="core")
        before = len(h.conn.calls)
        answer = await h.say(REQUEST)
        assert answer == "The result is 84 (the primary lookup failed, the backup answered 42)."

        prompts = [system_prompt(c) for c in fake_ollama.chats]
        assert sum(PLAN_MARKER in p for p in prompts) == 2  # plan + one revision
        tool_results = [
            m["content"] for c in fake_ollama.chats for m in c["messages"] if m["role"] == "tool"
        ]
        assert "error: primary service is down" in tool_results and "42" in tool_results

        # Progress was shown by editing one message, which now holds the final answer.
        turn = h.conn.calls[before:]
        sends = [c for c in turn if c.action == "send"]
        assert len(sends) == 1
        shown = [c.text for c in turn if c.action in ("send", "edit")]
        assert any(t.startswith("Plan:") for t in shown)
        assert h.conn.messages[sends[0].message_id] == answer

        plan = await h.command("plan")
        lines = plan.splitlines()
        assert lines[1].startswith("❌ 1. look up the value (flaky_lookup) — error: primary")
        assert lines[2].startswith("✅ 2. look up the value with the backup (backup_lookup)")
        assert lines[3].startswith("✅ 3. double it — 84")
        assert lines[-1] == "Status: done"


async def test_simple_request_makes_no_planning_call_and_ambiguity_asks(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    async with Harness(make_settings(**open_settings())) as h:
        fake_ollama.reply("4")
        assert await h.say("What is 2 + 2?") == "4"
        assert len(fake_ollama.chats) == 1
        assert await h.command("plan") == "I have not made a plan in this conversation yet."

        fake_ollama.reply('{"steps": [], "question": "Which of your two accounts do you mean?"}')
        answer = await h.say("Move the money, then close the account and then tell me.")
        assert answer == "Which of your two accounts do you mean?"
        assert PLAN_MARKER in system_prompt(fake_ollama.chats[-1])
        assert "Asked: Which of your two accounts" in await h.command("plan")

        # The answer to the question is planned with the original request.
        fake_ollama.reply(
            '{"steps": [{"do": "move the money", "tool": null}, '
            '{"do": "close the account", "tool": null}]}'
        )
        fake_ollama.reply("moved")
        fake_ollama.reply("closed")
        fake_ollama.reply("Done: the money is moved and the savings account is closed.")
        answer = await h.say("The savings one")
        assert answer == "Done: the money is moved and the savings account is closed."
        assert PLAN_MARKER in system_prompt(fake_ollama.chats[-4])
        plan = await h.command("plan")
        assert plan.startswith(
            "Plan: Move the money, then close the account and then tell me. (The savings one)"
        )
        assert "✅ 2. close the account — closed" in plan


def test_needs_plan_is_a_cheap_text_test() -> None:
    assert not needs_plan("What time is it?")
    assert not needs_plan("Tell me a joke about cats and dogs please")
    assert needs_plan("Book the table, then email Anna and finally add it to my calendar")
    assert needs_plan("Please do these:\n1. check the weather\n2. pick a restaurant")
