"""A model server that stops sending mid-answer must not block other chats (issue 19).

The fake Ollama / OpenAI-compatible servers hang one stream after its first tokens and keep the
connection open without a byte. ``OC_MODEL_STALL_TIMEOUT`` ends that call as a model failure
(the usual apology, message kept for ``/retry``) and frees its ``OC_MAX_IN_FLIGHT`` slot, so a
message from another chat queued behind it is answered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import select

from opencomputer.bot.config import Settings
from opencomputer.bot.events import Chat, Message, User
from opencomputer.bot.ollama import ModelStalled, OllamaClient
from opencomputer.bot.storage.models import InboundRow
from opencomputer.bot.testing import FakeOllama, Reply
from opencomputer.bot.testing.fake_ollama import ScriptedModel
from opencomputer.bot.testing.fake_openai import FakeOpenAI
from opencomputer.bot.testing.harness import Harness

STALL = 1.5  # seconds without a byte that end a call (margin for a loaded CI machine)


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


def _hang_on(word: str) -> Callable[[dict[str, Any]], Reply]:
    """Echo, except that a message containing ``word`` hangs after its first tokens."""

    def respond(body: dict[str, Any]) -> Reply:
        users = [m for m in body.get("messages", []) if m.get("role") == "user"]
        text = str(users[-1].get("content", "")) if users else ""
        if word in text:
            return Reply("I am starting to answer, and then", chunks=3, stall=True)
        return Reply(f"echo: {text}")

    return respond


def _message(chat: str, text: str) -> Message:
    return Message(
        platform="test",
        event_id=f"{chat}-1",
        chat=Chat("test", chat),
        user=User("test", chat, chat.title()),
        text=text,
        message_id=f"m-{chat}",
    )


def _final_text(h: Harness, chat: str) -> str:
    sent = [c for c in h.conn.calls if c.action == "send" and c.address.chat_id == chat]
    return "\n".join(h.conn.messages[c.message_id] for c in sent)


async def _until(check: Callable[[], bool], within: float) -> None:
    async with asyncio.timeout(within):
        while not check():
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("server", ["ollama", "openai"])
async def test_stalled_stream_frees_its_slot_and_gets_the_apology(
    server: str,
    make_settings: Callable[..., Settings],
    fake_ollama: FakeOllama,
    fake_openai: FakeOpenAI,
) -> None:
    fake: ScriptedModel = fake_ollama if server == "ollama" else fake_openai
    fake.responder = _hang_on("hang")
    host = fake_ollama.url if server == "ollama" else fake_openai.entry
    settings = make_settings(
        OLLAMA_HOST=host,
        OC_MAX_IN_FLIGHT="1",  # one slot: the stalled call holds the only one
        OC_MODEL_STALL_TIMEOUT=str(STALL),
        OC_MODEL_RETRY_SECONDS="0",
    )
    async with Harness(settings) as h:
        started = time.monotonic()
        await h.app.runtime.emit(_message("alice", "please hang"))
        await _until(lambda: fake.stalled == 1, within=5)
        await h.app.runtime.emit(_message("bob", "are you there?"))  # queued behind the slot
        await _until(lambda: "echo: are you there?" in _final_text(h, "bob"), within=STALL + 5)
        await _until(lambda: "could not reach my language model" in _final_text(h, "alice"), 5)
        elapsed = time.monotonic() - started
        assert elapsed < STALL + 4, f"took {elapsed:.1f}s"
        assert fake.stalled == 1  # the server still hangs: the client gave up, not the server
        await h.app.runtime.wait_idle()  # the answer shows before it is marked sent
        async with h.app.store.engine.connect() as conn:
            rows = {r.chat_id: r for r in await conn.execute(select(InboundRow.__table__))}
        assert rows["alice"].status == "failed"  # kept for /retry
        assert "sent nothing for" in (rows["alice"].error or "")
        assert rows["bob"].status == "answered"
        fake.responder = _hang_on("never")
        retried = await h.command("retry", user="alice", chat="alice")
        assert retried == "echo: please hang"


async def test_other_chats_answered_while_one_stream_hangs(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    fake_ollama.responder = _hang_on("hang")
    settings = make_settings(OC_MAX_IN_FLIGHT="2", OC_MODEL_STALL_TIMEOUT="30")
    async with Harness(settings) as h:
        await h.app.runtime.emit(_message("alice", "please hang"))
        await _until(lambda: fake_ollama.stalled == 1, within=5)
        for name in ("bob", "carol", "dave"):
            await h.app.runtime.emit(_message(name, f"hi from {name}"))
        for name in ("bob", "carol", "dave"):
            await _until(lambda n=name: f"echo: hi from {n}" in _final_text(h, n), within=5)
        assert fake_ollama.stalled == 1  # still hanging, the others were answered meanwhile
        assert "could not reach" not in _final_text(h, "alice")
        fake_ollama.release_stalls()  # the server drops it: the usual apology
        await _until(lambda: "could not reach" in _final_text(h, "alice"), within=5)


async def test_client_raises_model_stalled_within_the_timeout(fake_ollama: FakeOllama) -> None:
    fake_ollama.reply("tokens then nothing", chunks=2, stall=True)
    tokens: list[str] = []

    async def on_token(token: str) -> None:
        tokens.append(token)

    async with OllamaClient(fake_ollama.url, stall_timeout=0.3) as client:
        started = time.monotonic()
        with pytest.raises(ModelStalled, match=r"sent nothing for 0\.3 s"):
            await client.chat("qwen3:8b", [{"role": "user", "content": "x"}], on_token=on_token)
        assert time.monotonic() - started < 3
    assert tokens and "tokens then nothing".startswith("".join(tokens))
