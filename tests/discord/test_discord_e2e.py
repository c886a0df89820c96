"""End to end: gateway events from the fake Discord into the real App (runtime, graph, SQLite),
the fake Ollama answering, the real discord.py posting back to the fake Discord REST API."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from opencomputer.bot.app import App
from opencomputer.bot.config import Settings
from opencomputer.bot.connector import ConnectorState
from opencomputer.bot.testing import FakeOllama
from opencomputer.connectors.discord import DiscordConnector
from opencomputer.connectors.discord.gateway import ReconnectPolicy
from tests.discord import discord_payloads as p
from tests.discord.fake_discord import FakeDiscord

CODES = [1000, 1001, 1005, 1006, 4000, 4001, 4002, 4003, 4005, 4007, 4008, 4009]


@pytest.fixture
def app_settings(make_settings: Callable[..., Settings], fake: FakeDiscord) -> Settings:
    return make_settings(
        DISCORD_BOT_TOKEN=fake.token,
        DISCORD_API_BASE_URL=fake.api_url,
        DISCORD_GATEWAY_URL=fake.gateway_url,
    )


@pytest.fixture
async def start_app() -> AsyncIterator[Callable[..., Any]]:
    apps: list[App] = []

    async def start(settings: Settings) -> App:
        app = App(settings)

        def factory(s: Settings, runtime: Any) -> list[Any]:
            return [
                DiscordConnector(
                    s,
                    runtime.emit,
                    guild_ready_timeout=0.05,
                    identify_delay=0.0,
                    defer_after=2.0,
                    reconnect=ReconnectPolicy(base=0.01, cap=0.05, stable_after=60),
                )
            ]

        await app.start(factory, http=False)
        apps.append(app)
        (connector,) = app.connectors
        assert isinstance(connector, DiscordConnector)
        await connector.wait_connected()
        return app

    yield start
    for app in apps:
        await app.stop()


def dm(fake: FakeDiscord, text: str) -> dict[str, Any]:
    return p.message(
        message_id=fake.new_id(), channel_id=p.DM_CHANNEL_ID, content=text, author=p.human_user()
    )


def mention(fake: FakeDiscord, text: str, channel_id: str = p.CHANNEL_ID) -> dict[str, Any]:
    return p.message(
        message_id=fake.new_id(),
        channel_id=channel_id,
        guild_id=p.GUILD_ID,
        content=f"<@{p.BOT_ID}> {text}",
        author=p.human_user(),
        mentions=[p.bot_user()],
    )


async def answered(fake: FakeDiscord, app: App, question: dict[str, Any]) -> list[dict[str, Any]]:
    """Wait for the bot messages replying to ``question`` and for the runtime to go idle."""

    def replies() -> list[dict[str, Any]]:
        return [
            m
            for m in fake.bot_messages()
            if m.get("message_reference", {}).get("message_id") == int(question["id"])
        ]

    await fake.wait_until(lambda: bool(replies()), within=10)
    await app.runtime.wait_idle()
    first = replies()[0]
    later = [m for m in fake.bot_messages() if int(m["id"]) > int(first["id"])]
    return [first, *later]


async def test_dm_gets_a_formatted_reply(
    fake: FakeDiscord, fake_ollama: FakeOllama, app_settings: Settings, start_app: Any
):
    fake_ollama.reply("**Hello** Alice, here is `code`.", chunks=6, delay=0.2)
    app = await start_app(app_settings)
    question = dm(fake, "hi bot")
    await fake.dispatch("MESSAGE_CREATE", question)
    (reply,) = await answered(fake, app, question)
    assert reply["content"] == "**Hello** Alice, here is `code`."  # Markdown kept as is
    assert reply["channel_id"] == p.DM_CHANNEL_ID
    assert fake.calls("POST", rf"/channels/{p.DM_CHANNEL_ID}/typing")
    turns = [m["content"] for m in fake_ollama.chats[0]["messages"] if m["role"] == "user"]
    assert turns == ["hi bot"]
    row = await app.store.reply_for_message("discord", p.DM_CHANNEL_ID, reply["id"])
    assert row is not None and row.text == reply["content"]
    assert fake.unexpected == []


async def test_guild_mention_thread_and_chatter(
    fake: FakeDiscord, fake_ollama: FakeOllama, app_settings: Settings, start_app: Any
):
    app = await start_app(app_settings)
    chatter = p.message(
        message_id=fake.new_id(),
        channel_id=p.CHANNEL_ID,
        guild_id=p.GUILD_ID,
        content="not for the bot",
        author=p.human_user(),
    )
    await fake.dispatch("MESSAGE_CREATE", chatter)
    in_thread = mention(fake, "thread question", channel_id=p.THREAD_ID)
    await fake.dispatch("MESSAGE_CREATE", in_thread)
    (reply,) = await answered(fake, app, in_thread)
    assert reply["channel_id"] == p.THREAD_ID
    assert reply["content"] == "echo: thread question"
    assert await app.store.count_inbound() == 1  # the chatter was not taken
    row = await app.store.reply_for_message("discord", p.CHANNEL_ID, reply["id"])
    assert row is not None and row.conversation == f"discord:{p.CHANNEL_ID}:{p.THREAD_ID}"


async def test_long_answer_is_split_correctly(
    fake: FakeDiscord, fake_ollama: FakeOllama, app_settings: Settings, start_app: Any
):
    code = "\n".join(f"x_{i} = {i} * 2  # value {i}" for i in range(150))
    answer = "Here you go:\n\n```python\n" + code + "\n```\n\n" + ("All done. " * 150).strip()
    assert len(answer) > 5000
    fake_ollama.reply(answer, chunks=12)
    app = await start_app(app_settings)
    question = mention(fake, "write it")
    await fake.dispatch("MESSAGE_CREATE", question)
    await fake.wait_until(
        lambda: "".join(m["content"] for m in fake.bot_messages()).endswith("All done."),
        within=10,
    )
    await app.runtime.wait_idle()
    parts = await answered(fake, app, question)
    assert len(parts) >= 3
    assert all(len(m["content"]) <= 2000 for m in parts)
    assert all(m["content"].count("```") % 2 == 0 for m in parts)
    assert parts[1]["content"].startswith("```python\n")
    text = "\n".join(m["content"] for m in parts)
    for i in range(150):
        assert f"x_{i} = {i} * 2  # value {i}" in text
    assert text.count("All done.") == 150
    # every part belongs to the same stored reply, in order
    rows = [await app.store.reply_for_message("discord", p.CHANNEL_ID, m["id"]) for m in parts]
    assert {row.id for row in rows} == {rows[0].id} and rows[0].text == answer


async def test_thumbs_up_is_stored_as_reaction_on_the_reply(
    fake: FakeDiscord, fake_ollama: FakeOllama, app_settings: Settings, start_app: Any
):
    fake_ollama.reply("Rate me.")
    app = await start_app(app_settings)
    question = mention(fake, "answer me")
    await fake.dispatch("MESSAGE_CREATE", question)
    (reply,) = await answered(fake, app, question)
    thumbs = p.reaction(
        message_id=reply["id"], channel_id=p.CHANNEL_ID, emoji="👍", guild_id=p.GUILD_ID
    )
    await fake.dispatch("MESSAGE_REACTION_ADD", thumbs)
    row = await app.store.reply_for_message("discord", p.CHANNEL_ID, reply["id"])
    assert row is not None and row.text == "Rate me."

    async def stored() -> list[Any]:
        return list(await app.store.reactions_for_reply(int(row.id)))

    async with asyncio.timeout(5):
        while not await stored():
            await asyncio.sleep(0.01)
    assert [(r.emoji, r.user_id, r.message_id) for r in await stored()] == [
        ("👍", p.USER_ID, reply["id"])
    ]
    await fake.dispatch("MESSAGE_REACTION_REMOVE", {**thumbs, "message_author_id": None})
    async with asyncio.timeout(5):
        while await stored():
            await asyncio.sleep(0.01)


async def test_slash_commands_reach_the_router(
    fake: FakeDiscord, fake_ollama: FakeOllama, app_settings: Settings, start_app: Any
):
    app = await start_app(app_settings)
    await fake.wait_until(lambda: "global" in fake.commands)
    names = {c["name"] for c in fake.commands["global"]}
    assert {"help", "reset", "new", "retry"} <= names
    hidden = {c["name"] for c in fake.commands["global"] if c["default_member_permissions"]}
    assert hidden == {n for n in names if app.commands.get(n).admin}  # admin: administrator
    assert all(c["default_member_permissions"] in (None, "8") for c in fake.commands["global"])

    iid = await fake.slash("help")
    await fake.wait_until(lambda: len(fake.interaction_responses) == 1)
    await app.runtime.wait_idle()
    (answer,) = fake.interaction_responses
    assert answer["interaction_id"] == iid
    text = fake.bot_messages()[-1]["content"]
    assert text.startswith("Commands:") and "/reset" in text
    assert fake.bot_messages()[-1]["channel_id"] == p.CHANNEL_ID

    address_key = f"discord:{p.CHANNEL_ID}"
    before = await app.store.epoch(address_key)
    await fake.slash("reset")
    await fake.wait_until(lambda: len(fake.interaction_responses) == 2)
    await app.runtime.wait_idle()
    assert await app.store.epoch(address_key) == before + 1
    assert fake.bot_messages()[-1]["content"] == "Started a new conversation."
    assert fake.unexpected == []


async def test_twenty_disconnects_lose_and_duplicate_no_reply(
    fake: FakeDiscord, fake_ollama: FakeOllama, app_settings: Settings, start_app: Any
):
    app = await start_app(app_settings)
    codes = itertools.cycle(CODES)
    questions: list[dict[str, Any]] = []
    for i in range(22):
        before = dm(fake, f"before {i}")
        await fake.dispatch("MESSAGE_CREATE", before)
        await fake.disconnect(next(codes))
        during = dm(fake, f"during {i}")
        await fake.dispatch("MESSAGE_CREATE", during)  # replayed on RESUME
        if i % 5 == 0:
            await fake.dispatch("MESSAGE_CREATE", before)  # a duplicate delivery
        questions += [before, during]
        await fake.wait_until(lambda: fake.connected, within=5)
    await fake.wait_until(lambda: len(fake.bot_messages()) >= len(questions), within=20)
    await app.runtime.wait_idle()
    replies = fake.bot_messages()
    assert len(replies) == len(questions)
    by_question = {m["message_reference"]["message_id"]: m["content"] for m in replies}
    assert by_question == {int(q["id"]): "echo: " + q["content"] for q in questions}
    assert await app.store.count_inbound() == len(questions)
    assert len(fake.identifies) == 1 and len(fake.resumes) >= 22
    assert app.connectors[0].state is ConnectorState.CONNECTED


async def test_429_on_the_reply(
    fake: FakeDiscord, fake_ollama: FakeOllama, app_settings: Settings, start_app: Any
):
    fake_ollama.reply("Worth the wait.")
    app = await start_app(app_settings)
    fake.fail_next("POST", rf"/channels/{p.DM_CHANNEL_ID}/messages", status=429, retry_after=0.2)
    question = dm(fake, "hello?")
    await fake.dispatch("MESSAGE_CREATE", question)
    (reply,) = await answered(fake, app, question)
    assert reply["content"] == "Worth the wait."
    assert len(fake.calls("POST", rf"/channels/{p.DM_CHANNEL_ID}/messages")) == 2
    assert len(fake.bot_messages()) == 1


async def test_restart_mid_turn_answers_once(
    fake: FakeDiscord, fake_ollama: FakeOllama, app_settings: Settings, start_app: Any
):
    first = await start_app(app_settings)
    fake_ollama.reply("Slow answer.", delay=3.0)
    question = dm(fake, "take your time")
    await fake.dispatch("MESSAGE_CREATE", question)
    async with asyncio.timeout(5):
        while not fake_ollama.chats:
            await asyncio.sleep(0.01)
    await first.runtime.stop(grace=0)
    await first.stop()
    assert fake.bot_messages() == []

    fake_ollama.script.clear()
    fake_ollama.reply("Answer after restart.")
    second = await start_app(app_settings)
    await second.runtime.wait_idle()
    await fake.dispatch("MESSAGE_CREATE", question)  # delivered again: no second answer
    follow_up = dm(fake, "still there?")
    await fake.dispatch("MESSAGE_CREATE", follow_up)  # in order, so once it is answered...
    await answered(fake, second, follow_up)
    contents = [m["content"] for m in fake.bot_messages()]
    assert contents == ["Answer after restart.", "echo: still there?"]  # ...nothing else came
    assert len(fake.identifies) == 2


async def test_storm_and_bad_token_leave_other_connectors_alone(
    fake: FakeDiscord,
    fake_ollama: FakeOllama,
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
):
    from opencomputer.bot.events import Chat, Message, User
    from opencomputer.bot.testing.harness import RecordingConnector

    async def run_app(token: str) -> tuple[App, DiscordConnector, RecordingConnector]:
        settings = make_settings(
            DISCORD_BOT_TOKEN=token,
            DISCORD_API_BASE_URL=fake.api_url,
            DISCORD_GATEWAY_URL=fake.gateway_url,
        )
        app = App(settings)
        built: list[Any] = []

        def factory(s: Settings, runtime: Any) -> list[Any]:
            built.extend(
                [
                    DiscordConnector(
                        s,
                        runtime.emit,
                        guild_ready_timeout=0.05,
                        identify_delay=0.0,
                        reconnect=ReconnectPolicy(base=0.01, cap=0.05, stable_after=60),
                    ),
                    RecordingConnector(runtime.emit),
                ]
            )
            return built

        await app.start(factory, http=False)
        return app, built[0], built[1]

    async def other_platform_answers(app: App, other: RecordingConnector, text: str) -> None:
        user = User("test", "bob", "Bob")
        msg = Message(
            platform="test", event_id=f"t-{text}", chat=Chat("test", "bob"), user=user, text=text
        )
        await app.runtime.emit(msg)
        await app.runtime.wait_idle()
        assert other.messages[other.calls[-1].message_id] == f"echo: {text}"

    # A reconnect storm on Discord while another platform is being answered.
    app, discord_conn, other = await run_app(fake.token)
    try:
        await discord_conn.wait_connected()

        async def storm() -> None:
            for code in itertools.islice(itertools.cycle(CODES), 15):
                await fake.wait_until(lambda: fake.connected)
                await fake.disconnect(code)

        storming = asyncio.create_task(storm())
        for i in range(5):
            await other_platform_answers(app, other, f"during storm {i}")
        await storming
        await fake.wait_until(lambda: fake.connected)
        assert other.state is ConnectorState.CONNECTED
        assert len(fake.identifies) == 1  # Discord resumed every time, no restart
    finally:
        await app.stop()

    # A rejected Discord token: Discord FAILED, the rest runs.
    app, discord_conn, other = await run_app("wrong-token")
    try:
        assert await discord_conn.wait_state(ConnectorState.FAILED) is ConnectorState.FAILED
        await other_platform_answers(app, other, "still answered")
        checks = await app.readiness()
        assert checks["discord"] == "failed" and checks["test"] == "connected"
    finally:
        await app.stop()
