"""/prompt for admins (refused for others), /feedback for everyone, through the real router."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from opencomputer.bot.config import Settings
from opencomputer.bot.feedback.service import FeedbackService
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.harness import Harness


async def test_prompt_commands_are_refused_to_non_admins(
    harness: Harness, service: FeedbackService
) -> None:
    for args in ("stats", "add Be brief.", "promote 1", "rollback", "tune"):
        assert (
            await harness.command("prompt", args, user="mallory") == "/prompt is for admins only."
        )
    assert [r.id for r in await service.repo.variants()] == [1]  # nothing was added
    assert "/prompt" not in await harness.command("help", user="mallory")
    assert "/feedback" in await harness.command("help", user="mallory")


async def test_admin_steers_variants_from_chat(harness: Harness, service: FeedbackService) -> None:
    root = {"user": "root"}
    added = await harness.command("prompt", "add --name=brief Answer in one sentence.", **root)
    assert added == "Added #2 brief v1 [candidate] human, global with the exploration share."
    chat = await harness.command("prompt", "add --chat Speak French.", **root)
    assert chat.startswith("Added #3 default v2 [candidate] human, chat:test:root")
    assert (await harness.command("prompt", "list", **root)).splitlines() == [
        "#1 default v1 [active] human, global",
        "#2 brief v1 [candidate] human, global",
        "#3 default v2 [candidate] human, chat:test:root",
    ]
    shown = await harness.command("prompt", "show 2", **root)
    assert shown.endswith("---\nAnswer in one sentence.")
    assert await harness.command("prompt", "promote 2", **root) == "Done: promoted #2."
    stats = await harness.command("prompt", "stats", **root)
    assert "#2 brief v1 [active]" in stats and "#1 default" not in stats  # retired: hidden
    assert await harness.command("prompt", "pin 3", **root) == "Done: pinned #3."
    assert await harness.command("prompt", "unpin 3", **root) == "Done: unpinned #3."
    assert await harness.command("prompt", "retire 3", **root) == "Done: retired #3."
    assert await harness.command("prompt", "rollback 2", **root) == (
        "Done: rolled_back #2 (by hand)."
    )
    assert [(r.id, r.status) for r in await service.repo.variants()] == [
        (1, "active"), (2, "retired"), (3, "retired"),
    ]  # fmt: skip
    undo = await harness.command("prompt", "rollback", **root)
    assert undo == "Done: undone #2 (undo of event 8 (rolled_back))."
    assert [(r.id, r.status) for r in await service.repo.variants()][:2] == [
        (1, "retired"), (2, "active"),
    ]  # fmt: skip
    log = (await harness.command("prompt", "log", **root)).splitlines()
    assert "undone #2 by test:root" in log[0]
    assert (
        await harness.command("prompt", "promote 42", **root) == "There is no prompt variant #42."
    )
    assert await harness.command("prompt", "retire x", **root) == "Expected a variant id, got 'x'."
    assert (await harness.command("prompt", "bogus", **root)).startswith("Usage: /prompt")


async def test_prompt_tune_asks_the_model_for_a_machine_candidate(
    harness: Harness, service: FeedbackService, fake_ollama: FakeOllama
) -> None:
    assert "No rated exchanges yet" in await harness.command("prompt", "tune", user="root")
    await harness.say("What is DNS?")
    await harness.react(harness.last_message_id, "👎")
    fake_ollama.reply("<think>hmm</think>You are concise. Answer in at most two sentences.")
    answer = await harness.command("prompt", "tune", user="root")
    assert answer == (
        "Proposed #2 default v2 [candidate] machine, global:\n"
        "You are concise. Answer in at most two sentences."
    )
    request = fake_ollama.chats[-1]["messages"]
    assert "improve the system prompt" in request[0]["content"]
    assert "What is DNS?" in request[1]["content"] and "Rated 👎" in request[1]["content"]
    row = await service.repo.variant(2)
    assert (row.author, row.parent_id, row.status) == ("machine", 1, "candidate")
    events = await service.repo.events(1)
    assert (events[0].kind, events[0].actor) == ("proposed", "test:root")


async def test_tuning_changes_reach_the_audit_log(harness: Harness) -> None:
    from opencomputer.bot import audit

    await harness.command("prompt", "add Be brief.", user="root")
    await harness.command("prompt", "promote 2", user="root")
    entries = await audit.recent(harness.app.store, 5)
    actions = [(e.actor, e.action, e.detail.get("variant")) for e in entries]
    assert ("test:root", "prompt.promoted", 2) in actions
    assert ("test:root", "prompt.added", 2) in actions
    assert (await audit.verify(harness.app.store)).ok


async def test_scheduled_proposals_add_machine_candidates(
    fb_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    async with Harness(fb_settings(OC_TUNING_PROPOSE_HOURS=0.0003)) as h:  # about a second
        svc: FeedbackService = h.app.extras["feedback"]
        await h.say("What is DNS?")
        await h.react(h.last_message_id, "👎")
        fake_ollama.reply("Answer in two sentences.")
        proposed = asyncio.Event()

        async def on_event(event: Any) -> None:
            if event.kind == "proposed":
                proposed.set()

        svc.tuner.audit_hooks.append(on_event)
        await asyncio.wait_for(proposed.wait(), timeout=10)
        row = (await svc.repo.variants())[1]
        assert (row.author, row.created_by, row.template) == (
            "machine", "schedule", "Answer in two sentences.",
        )  # fmt: skip
