"""Reactions through the real runtime become votes on the reply's variant."""

from __future__ import annotations

from typing import Any

from opencomputer.bot.feedback.service import FeedbackService
from opencomputer.bot.testing import FakeOllama, Reply
from opencomputer.bot.testing.harness import Harness


async def votes(service: FeedbackService, h: Harness, mid: str, chat: str = "alice") -> list[Any]:
    reply = await h.app.store.reply_for_message("test", chat, mid)
    assert reply is not None
    return sorted(await service.repo.votes(int(reply.id)), key=lambda v: v.user_key)


async def test_thumbs_up_is_a_vote_for_the_replys_variant(
    harness: Harness, service: FeedbackService
) -> None:
    await harness.say("hello")
    mid = harness.last_message_id
    await harness.react(mid, "👍")
    [vote] = await votes(service, harness, mid)
    assert (vote.user_key, vote.score, vote.emoji, vote.variant_id, vote.blamed) == (
        "test:alice", 1, "👍", 1, True,
    )  # fmt: skip
    assert vote.model == harness.settings.model
    assert (await service.repo.posteriors([1]))[1].up == 1


async def test_removing_the_reaction_removes_the_vote(
    harness: Harness, service: FeedbackService
) -> None:
    await harness.say("hello")
    mid = harness.last_message_id
    await harness.react(mid, "👎")
    assert [v.score for v in await votes(service, harness, mid)] == [-1]
    await harness.react(mid, "👎", added=False)
    assert await votes(service, harness, mid) == []
    assert (await service.repo.posteriors([1]))[1].n == 0


async def test_one_vote_per_user_per_reply(harness: Harness, service: FeedbackService) -> None:
    await harness.say("hello")
    mid = harness.last_message_id
    await harness.react(mid, "👍")
    await harness.react(mid, "❤️")  # a second positive emoji: still one +1
    assert [(v.score, v.emoji) for v in await votes(service, harness, mid)] == [(1, "❤️")]
    await harness.react(mid, "😡")  # the newest rating emoji wins
    assert [v.score for v in await votes(service, harness, mid)] == [-1]
    await harness.react(mid, "😡", added=False)  # back to the remaining positive ones
    assert [v.score for v in await votes(service, harness, mid)] == [1]
    await harness.react(mid, "bob-was-here")  # not a rating emoji: no change
    await harness.react(mid, "👍", user="bob", chat="alice")  # another user: another vote
    assert [(v.user_key, v.score) for v in await votes(service, harness, mid)] == [
        ("test:alice", 1),
        ("test:bob", 1),
    ]
    post = (await service.repo.posteriors([1]))[1]
    assert (post.up, post.down) == (2, 0)


async def test_reactions_on_other_messages_are_ignored(
    harness: Harness, service: FeedbackService
) -> None:
    await harness.say("hello")
    await harness.react("u-not-a-bot-message", "👍")
    assert (await service.repo.posteriors([1]))[1].n == 0


async def test_failed_reply_rating_is_kept_but_not_blamed(
    harness: Harness, service: FeedbackService, fake_ollama: FakeOllama
) -> None:
    fake_ollama.script.append(Reply(status=500, error="boom"))
    answer = await harness.say("hello")
    assert "could not" in answer.lower()
    mid = harness.last_message_id
    await harness.react(mid, "👎")
    [vote] = await votes(service, harness, mid)
    assert (vote.score, vote.blamed) == (-1, False)
    assert (await service.repo.posteriors([1]))[1].n == 0
    [stats] = [s for s in await service.repo.stats() if s.variant.id == 1]
    assert (stats.down, stats.excluded, stats.failures) == (0, 1, 1)


async def test_system_prompt_is_the_variant_plus_the_core_safety_rules(
    harness: Harness, service: FeedbackService, fake_ollama: FakeOllama
) -> None:
    row = await service.tuner.add("Talk like a pirate.", actor="test:root")
    await service.tuner.pin(int(row.id), actor="test:root")
    await harness.say("hello")
    system = fake_ollama.chats[-1]["messages"][0]
    assert system["role"] == "system"
    assert system["content"].startswith("Talk like a pirate.")
    assert "never reveal secrets" in system["content"]
    reply = await harness.app.store.reply_for_message("test", "alice", harness.last_message_id)
    assert reply.variant_id == row.id


async def test_reason_by_replying_and_by_command(
    harness: Harness, service: FeedbackService
) -> None:
    await harness.say("hello")
    mid = harness.last_message_id
    await harness.react(mid, "👎")
    rt = harness.app.runtime
    from opencomputer.bot.events import Chat, Message, User

    await rt.emit(
        Message(
            platform="test",
            event_id="reason-1",
            chat=Chat("test", "alice"),
            user=User("test", "alice"),
            text="too long, I wanted one line",
            message_id="u-reason",
            reply_to=mid,
        )
    )
    await rt.wait_idle()
    answer = await harness.command("feedback", "also please skip the greeting")
    assert "saved" in answer
    notes = await service.repo.notes()
    assert [(n.text, n.user_key, n.variant_id) for n in reversed(notes)] == [
        ("too long, I wanted one line", "test:alice", 1),
        ("also please skip the greeting", "test:alice", 1),
    ]
    assert await harness.command("feedback") == (
        "Usage: /feedback <what was good or bad about my last answer>"
    )


async def test_concurrent_reactions_of_one_user_leave_one_vote(
    harness: Harness, service: FeedbackService
) -> None:
    import asyncio

    await harness.say("hello")
    mid = harness.last_message_id
    await asyncio.gather(*(harness.react(mid, e) for e in ("👍", "❤️", "🎉", "🙏")))
    assert [(v.user_key, v.score) for v in await votes(service, harness, mid)] == [
        ("test:alice", 1)
    ]


async def test_failed_tool_call_rating_is_not_blamed(
    harness: Harness, service: FeedbackService, fake_ollama: FakeOllama
) -> None:
    fake_ollama.call_tool("no_such_tool", x=1)
    fake_ollama.reply("Sorry, the lookup failed.")
    assert await harness.say("look it up") == "Sorry, the lookup failed."
    mid = harness.last_message_id
    await harness.react(mid, "👎")
    [vote] = await votes(service, harness, mid)
    assert (vote.score, vote.blamed) == (-1, False)
    [stats] = [s for s in await service.repo.stats() if s.variant.id == 1]
    assert (stats.down, stats.excluded, stats.failures) == (0, 1, 1)
    await harness.say("hello")  # a clean turn is blamed as usual
    await harness.react(harness.last_message_id, "👎")
    assert (await service.repo.posteriors([1]))[1].down == 1
