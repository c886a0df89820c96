"""Admin commands: /model, /status, /plugins, /plugin, /broadcast, /audit."""

from __future__ import annotations

from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.harness import Harness

from .conftest import ADMIN


def _tool_names(body: dict[str, object]) -> set[str]:
    return {t["function"]["name"] for t in body.get("tools") or []}  # type: ignore[index,union-attr]


async def test_model_per_chat_and_global(harness: Harness, fake_ollama: FakeOllama) -> None:
    await harness.command("allow", "test:alice", user=ADMIN)
    assert "qwen3:8b (OC_MODEL)" in await harness.command("model", user=ADMIN)
    refused = await harness.command("model", "llama9:70b", user=ADMIN)
    assert "Ollama has no model 'llama9:70b'" in refused and "nomic-embed-text" in refused
    done = await harness.command("model", "nomic-embed-text", user=ADMIN, chat="alice")
    assert done == "Model set to nomic-embed-text in this chat."
    await harness.say("hi")
    assert fake_ollama.chats[-1]["model"] == "nomic-embed-text"
    await harness.say("hi", user=ADMIN)
    assert fake_ollama.chats[-1]["model"] == "qwen3:8b"

    fake_ollama.models.append("mistral:7b")
    assert "everywhere" in await harness.command("model", "mistral:7b global", user=ADMIN)
    await harness.say("hi", user=ADMIN)
    assert fake_ollama.chats[-1]["model"] == "mistral:7b"
    await harness.say("hi")
    assert fake_ollama.chats[-1]["model"] == "nomic-embed-text"  # the chat's choice wins
    await harness.command("model", "reset", user=ADMIN, chat="alice")
    await harness.say("hi")
    assert fake_ollama.chats[-1]["model"] == "mistral:7b"
    assert await harness.command("model", "x", user="alice") == "/model is for admins only."


async def test_status_reports_runtime(harness: Harness) -> None:
    await harness.command("allow", "test:alice", user=ADMIN)
    await harness.say("one")
    await harness.say("two")
    status = await harness.command("status", user=ADMIN)
    assert status.startswith("opencomputer 0.1.0, up 0:00:")
    assert "model: qwen3:8b (ok)" in status and "database: ok" in status
    assert "test: connected" in status and "queue depth: 0" in status
    assert "turns today: 2" in status


async def test_plugins_list_and_toggle(harness: Harness, fake_ollama: FakeOllama) -> None:
    listing = await harness.command("plugins", user=ADMIN)
    assert "- clock: on — Tells the current date and time" in listing
    await harness.say("time?", user=ADMIN)
    assert "current_time" in _tool_names(fake_ollama.chats[-1])

    assert "no plugin 'nope'" in await harness.command("plugin", "disable nope", user=ADMIN)
    answer = await harness.command("plugin", "disable clock", user=ADMIN)
    assert answer == "Plugin clock disabled in this chat."
    await harness.say("time?", user=ADMIN)
    assert "current_time" not in _tool_names(fake_ollama.chats[-1])
    assert "- clock: off" in await harness.command("plugins", user=ADMIN)
    await harness.command("allow", "test:alice", user=ADMIN)
    await harness.say("time?")  # another chat keeps it
    assert "current_time" in _tool_names(fake_ollama.chats[-1])
    assert (
        await harness.command("plugin", "enable clock", user="alice")
        == "/plugin is for admins only."
    )


async def test_broadcast_and_audit(harness: Harness) -> None:
    for user in ("alice", "bob"):
        await harness.command("allow", f"test:{user}", user=ADMIN)
        await harness.say("hello", user=user)
    before = len(harness.conn.calls)
    answer = await harness.command("broadcast", "Maintenance at 22:00", user=ADMIN)
    assert answer.splitlines()[-1] == "Broadcast sent to 2 conversations."
    sent = [(c.address.chat_id, c.text) for c in harness.conn.calls[before:] if c.action == "send"]
    assert ("alice", "Maintenance at 22:00") in sent and ("bob", "Maintenance at 22:00") in sent

    log = await harness.command("audit", "3", user=ADMIN)
    lines = log.splitlines()
    assert lines[0] == "Audit log (newest first):" and len(lines) == 4
    assert f"test:{ADMIN} command.audit" in lines[1]
    assert f"test:{ADMIN} command.broadcast" in lines[2]
