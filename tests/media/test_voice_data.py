"""``/voice on`` is personal data in a direct chat: in ``/export``, gone after ``/forget``.

A group's setting belongs to the group (anyone there may have turned it on) and stays; another
person's direct chat is never touched.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import orjson
import pytest

from opencomputer.bot.config import Settings
from opencomputer.bot.testing.harness import Harness
from opencomputer.bot.voice import VoiceReplies


@pytest.fixture
async def harness(make_settings: Callable[..., Settings]) -> AsyncIterator[Harness]:
    async with Harness(make_settings()) as h:
        yield h


def _exported(answer: str) -> dict[str, object]:
    body: dict[str, object] = orjson.loads(answer.split("```json\n", 1)[1].rsplit("\n```", 1)[0])
    return body


async def _on(h: Harness) -> list[str]:
    replies = VoiceReplies(h.app.store.engine)
    keys = ["test:alice", "test:dm-777", "test:team", "test:bob"]
    return [key for key in keys if await replies.is_on(key)]


async def test_voice_setting_is_exported_and_forgotten(harness: Harness) -> None:
    h = harness
    assert "on in this chat" in await h.command("voice", "on")  # alice's DM (chat id = her id)
    await h.say("hello", chat="dm-777")  # a DM whose chat id is not her id (as on Discord)
    await h.command("voice", "on", chat="dm-777")
    await h.command("voice", "on", chat="team", group=True)  # a group: the group's setting
    await h.command("voice", "on", user="bob")
    assert await _on(h) == ["test:alice", "test:dm-777", "test:team", "test:bob"]

    exported = _exported(await h.command("export"))
    rows = exported["voice_replies"]
    assert isinstance(rows, list)
    assert [row["conversation"] for row in rows] == ["test:alice", "test:dm-777"]

    await h.command("forget")  # asks first
    done = await h.command("forget", "confirm")
    assert "the spoken-replies setting of your direct chats" in done
    assert await _on(h) == ["test:team", "test:bob"]
    await h.command("forget")
    again = await h.command("forget", "confirm")
    assert "spoken-replies" not in again  # nothing left to say it removed


async def test_forget_reaches_no_one_else_by_a_crafted_account(harness: Harness) -> None:
    replies = VoiceReplies(harness.app.store.engine)
    await replies.set("test:bob", True, set_by="test:bob")
    await replies.set("test:bob-dm", True, set_by="test:bob")
    await replies.set("test:team", True)  # a group: no owner
    for accounts in ([], [""], ["test:"], ["test:%"], ["test:bob'--"], ["test:bob:thread"]):
        assert await replies.forget("p", accounts) == ""
        assert (await replies.export("p", accounts))["voice_replies"] == []
    for key in ("test:bob", "test:bob-dm", "test:team"):
        assert await replies.is_on(key)
