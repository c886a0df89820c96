from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

from opencomputer.bot.config import Settings
from opencomputer.bot.events import Chat, ChatKind, Message, User
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.fake_ollama import Reply
from opencomputer.bot.testing.harness import Harness
from opencomputer.graphs.agent.compaction import SUMMARY_MARKER
from opencomputer.graphs.agent.trim import estimate_tokens
from tests.memory.helpers import open_settings, system_prompt

WINDOW = 2048


def _summariser(body: dict[str, Any]) -> Reply | None:
    """Answer compaction requests with every FACT line of the previous summary and transcript."""
    if SUMMARY_MARKER not in system_prompt(body):
        return None
    text = body["messages"][-1]["content"]
    facts = sorted(set(re.findall(r"FACT: [^.\n]+", text)))
    return Reply("Summary. " + ". ".join(facts))


def _prompt_tokens(body: dict[str, Any]) -> int:
    return sum(estimate_tokens(m) for m in body["messages"])


async def test_300_turns_stay_within_the_window_and_early_facts_survive(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    def respond(body: dict[str, Any]) -> Reply:
        summary = _summariser(body)
        if summary is not None:
            return summary
        last = body["messages"][-1]["content"]
        return Reply(f"Answer to {last[:40]}: " + "blah " * 30)

    fake_ollama.responder = respond
    settings = make_settings(**open_settings(OC_NUM_CTX=WINDOW, OC_PLANNING="false"))
    async with Harness(settings) as h:
        await h.say("FACT: my cat is called Zorro. Please keep that in mind.")
        for turn in range(1, 300):
            await h.say(f"Turn {turn}: tell me something about the number {turn} " + "x" * 80)
        chats = [c for c in fake_ollama.chats if SUMMARY_MARKER not in system_prompt(c)]
        summaries = [c for c in fake_ollama.chats if SUMMARY_MARKER in system_prompt(c)]
        assert len(chats) == 300
        assert all(c["options"]["num_ctx"] == WINDOW for c in fake_ollama.chats)
        assert max(_prompt_tokens(c) for c in fake_ollama.chats) <= WINDOW
        assert 3 <= len(summaries) < 150  # compaction batches many turns at a time
        # The early fact is still known at the very end, through the summary.
        assert "FACT: my cat is called Zorro" in system_prompt(chats[-1])
        assert "Zorro" not in str(chats[-1]["messages"][1:])
        # Tokens were reclaimed in the checkpoint too, not only in the prompt.
        history = await h.app.runtime.agent.history("test:alice#0")
        assert len(history) < 60
        assert history[-1]["content"].startswith("Answer to Turn 299")


async def test_one_conversation_compacting_does_not_block_another(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    summarising = asyncio.Event()

    def respond(body: dict[str, Any]) -> Reply:
        if SUMMARY_MARKER in system_prompt(body):
            summarising.set()
            return Reply("Summary. FACT: long story", delay=1.5)
        return Reply("short answer " + "y" * 300)

    fake_ollama.responder = respond
    settings = make_settings(**open_settings(OC_NUM_CTX=1024, OC_PLANNING="false"))
    async with Harness(settings) as h:
        runtime = h.app.runtime
        for turn in range(6):
            await h.say(f"long {turn} " + "z" * 300, user="alice")
        summarising.clear()
        sent_before = len(h.conn.calls)
        alice = Message(
            platform="test",
            event_id="slow-1",
            chat=Chat("test", "alice", ChatKind.DIRECT),
            user=User("test", "alice", "Alice"),
            text="long again " + "z" * 300,
        )
        await runtime.emit(alice)
        await asyncio.wait_for(summarising.wait(), 5)  # alice's turn is now compacting
        bob = Message(
            platform="test",
            event_id="fast-1",
            chat=Chat("test", "bob", ChatKind.DIRECT),
            user=User("test", "bob", "Bob"),
            text="hi",
        )
        await runtime.emit(bob)
        await asyncio.wait_for(runtime.wait_idle(bob.address), 1.0)  # well before the 1.5 s
        new = h.conn.calls[sent_before:]
        assert [c.address.chat_id for c in new if c.action == "send"] == ["bob"]
        await runtime.wait_idle()
        assert [c.address.chat_id for c in h.conn.calls[sent_before:] if c.action == "send"] == [
            "bob",
            "alice",
        ]
        assert "FACT: long story" in system_prompt(fake_ollama.chats[-1])


def test_drop_marker_reducer_removes_the_prefix_then_appends() -> None:
    from opencomputer.graphs.agent.reducer import drop_marker, merge_messages

    current = [{"role": "user", "content": str(i)} for i in range(5)]
    merged = merge_messages(current, [drop_marker(3), {"role": "assistant", "content": "x"}])
    assert [m["content"] for m in merged] == ["3", "4", "x"]
    assert merge_messages(None, [{"role": "user", "content": "a"}]) == [
        {"role": "user", "content": "a"}
    ]


async def test_window_comes_from_api_show_when_num_ctx_is_not_set(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    fake_ollama.context_length = 1024  # a small model: smaller than the 8192 default
    async with Harness(make_settings(**open_settings())) as h:
        fake_ollama.reply("hi")
        await h.say("hello")
        assert fake_ollama.chats[-1]["options"]["num_ctx"] == 1024
    fake_ollama.context_length = 8192  # a larger OC_NUM_CTX is refused at start (issue 14)
    async with Harness(make_settings(**open_settings(OC_NUM_CTX=4096))) as h:
        fake_ollama.reply("hi")
        await h.say("hello")
        assert fake_ollama.chats[-1]["options"]["num_ctx"] == 4096  # set explicitly: as given
