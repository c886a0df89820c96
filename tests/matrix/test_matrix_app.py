"""End to end on a real Synapse: the real App (runtime, graph, SQLite) with the Matrix connector
built by the app's connector factory, and the fake Ollama answering."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from opencomputer.bot.app import App
from opencomputer.bot.config import Settings
from opencomputer.bot.connector import ConnectorState
from opencomputer.bot.events import Reaction
from opencomputer.bot.hooks import hookimpl
from opencomputer.bot.testing import FakeOllama
from opencomputer.connectors.matrix import MatrixConnector
from tests.matrix.matrix_helpers import TIMEOUT, Human
from tests.matrix.synapse_server import Account, SynapseServer


@pytest.fixture
def app_settings(
    make_settings: Callable[..., Settings],
    synapse: SynapseServer,
    bot_account: Account,
    human_account: Account,
) -> Settings:
    return make_settings(
        MATRIX_HOMESERVER=synapse.url,
        MATRIX_USER_ID=bot_account.user_id,
        MATRIX_PASSWORD=bot_account.password,
        OC_ADMINS=f"matrix:{human_account.user_id}",
    )


class Running:
    """One App process and the reactions its runtime recorded."""

    def __init__(self, app: App) -> None:
        self.app = app
        (connector,) = app.connectors
        assert isinstance(connector, MatrixConnector)
        self.bot = connector
        self.reactions: asyncio.Queue[tuple[Reaction, int | None]] = asyncio.Queue()

        app.hooks.register(self)

    @hookimpl
    async def oc_reaction(self, reaction: Reaction, reply_id: int | None) -> None:
        await self.reactions.put((reaction, reply_id))

    async def next_reaction(self) -> tuple[Reaction, int | None]:
        return await asyncio.wait_for(self.reactions.get(), TIMEOUT)


@pytest.fixture
async def start_app() -> AsyncIterator[Callable[[Settings], Any]]:
    apps: list[App] = []

    async def start(settings: Settings) -> Running:
        app = App(settings)
        apps.append(app)
        await app.start(http=False)
        return Running(app)

    yield start
    for app in apps:
        await app.stop()


def _is_edit(event: dict[str, Any]) -> bool:
    return "m.new_content" in event["content"]


def _from(bot: MatrixConnector) -> Callable[[str, dict[str, Any]], bool]:
    """Messages (not membership or reactions) the bot sent."""
    return lambda _r, e: e["sender"] == bot.user_id and e["type"] == "m.room.message"


def _text_of(event: dict[str, Any]) -> str:
    content = event["content"]
    return str(content.get("m.new_content", content).get("body", ""))


async def test_dm_answer_reaction_and_restart(
    start_app: Any, app_settings: Settings, human: Human, fake_ollama: FakeOllama
) -> None:
    # Streamed slowly enough that the first piece is posted, then replaced by an edit.
    fake_ollama.reply("**Hello** from the agent", chunks=4, pace=0.3)
    first = await start_app(app_settings)
    bot = first.bot
    assert bot.state is ConnectorState.CONNECTED or bot.state is ConnectorState.STARTING
    room = await human.create_room([bot.user_id], direct=True)
    await human.wait_membership(room, bot.user_id, "join")

    await human.say(room, "hi there")
    reply = await human.wait_for(lambda r, e: r == room and _from(bot)(r, e) and not _is_edit(e))
    await first.app.runtime.wait_idle()
    final = await human.wait_for(
        lambda r, e: _from(bot)(r, e) and _text_of(e) == "**Hello** from the agent"
    )
    assert reply["content"]["body"] != "**Hello** from the agent"  # a streamed first piece
    assert final["content"]["m.relates_to"] == {
        "rel_type": "m.replace",
        "event_id": reply["event_id"],
    }
    assert final["content"]["m.new_content"]["formatted_body"] == (
        "<p><strong>Hello</strong> from the agent</p>"
    )
    row = await first.app.store.reply_for_message("matrix", room, reply["event_id"])
    assert row is not None and row.status == "sent" and row.text == "**Hello** from the agent"
    user_turns = [m["content"] for m in fake_ollama.chats[-1]["messages"] if m["role"] == "user"]
    assert user_turns == ["hi there"]

    thumbs = await human.send(
        room,
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": reply["event_id"], "key": "👍"}},
        "m.reaction",
    )
    reaction, reply_id = await first.next_reaction()
    assert reply_id == row.id and reaction.added and reaction.emoji == "👍"
    stored = await first.app.store.reactions_for_reply(int(row.id))
    assert [(r.emoji, r.user_id, r.message_id) for r in stored] == [
        ("👍", human.user_id, reply["event_id"])
    ]
    await human.client.room_redact(room, thumbs)
    reaction, reply_id = await first.next_reaction()
    assert reply_id == row.id and not reaction.added
    assert await first.app.store.reactions_for_reply(int(row.id)) == []

    # Restart mid-conversation: a message sent while the process is down is answered once.
    await first.app.stop()
    await human.say(room, "are you still there?")
    fake_ollama.reply("Still here.")
    second = await start_app(app_settings)
    await human.wait_for(lambda r, e: _from(bot)(r, e) and _text_of(e) == "Still here.")
    await second.app.runtime.wait_idle()
    assert await second.app.store.count_inbound() == 2
    assert len(fake_ollama.chats) == 2
    answers = [
        _text_of(e) for r, e in human.seen if r == room and _from(bot)(r, e) and not _is_edit(e)
    ]
    assert len(answers) == 2 and answers[0] == reply["content"]["body"]  # one message each


async def test_room_thread_answered_in_thread(
    start_app: Any,
    app_settings: Settings,
    human: Human,
    fake_ollama: FakeOllama,
    synapse: SynapseServer,
) -> None:
    running = await start_app(app_settings)
    bot = running.bot
    carol = synapse.register(f"carol{bot.user_id[4:12]}")
    room = await human.create_room([bot.user_id, carol.user_id], name="team")
    await human.wait_membership(room, bot.user_id, "join")
    root = await human.say(room, "a topic")  # not addressed: no answer
    fake_ollama.reply("Answer in the thread.")
    await human.say(
        room,
        f"{bot.user_id} what about it?",
        **{"m.relates_to": {"rel_type": "m.thread", "event_id": root}},
    )
    answer = await human.wait_for(_from(bot))
    await running.app.runtime.wait_idle()
    assert answer["content"]["m.relates_to"]["rel_type"] == "m.thread"
    assert answer["content"]["m.relates_to"]["event_id"] == root
    assert len(fake_ollama.chats) == 1
    user_turns = [m["content"] for m in fake_ollama.chats[0]["messages"] if m["role"] == "user"]
    assert user_turns == ["what about it?"]
