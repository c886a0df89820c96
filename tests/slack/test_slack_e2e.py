"""End to end: signed Slack events into the real App (HTTP app, runtime, graph, SQLite), the
fake Ollama answering, the real slack-sdk posting to the fake Slack Web API."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from opencomputer.bot.app import App
from opencomputer.bot.config import Settings
from opencomputer.bot.connector import ConnectorState
from opencomputer.bot.reply import PLACEHOLDER
from opencomputer.bot.testing import FakeOllama
from opencomputer.connectors.slack import SlackConnector
from opencomputer.connectors.slack.mrkdwn import HARD_LIMIT, to_mrkdwn
from tests.slack.fake_slack_api import FakeSlackApi, event_envelope, signed_headers
from tests.slack.slack_helpers import SECRET, TOKEN


class Running:
    """One App process with its HTTP app on loopback."""

    def __init__(self, app: App, session: aiohttp.ClientSession) -> None:
        self.app = app
        self.session = session
        assert app.http is not None
        self.url = f"http://127.0.0.1:{app.http.port}/slack/events"

    async def post(self, envelope: dict[str, Any], *, retry: int | None = None, **sign: Any) -> int:
        body = json.dumps(envelope)
        headers = signed_headers(sign.pop("secret", SECRET), body, retry=retry, **sign)
        async with self.session.post(self.url, data=body, headers=headers) as resp:
            return resp.status

    async def post_and_wait(self, envelope: dict[str, Any], **kw: Any) -> int:
        status = await self.post(envelope, **kw)
        await self.app.runtime.wait_idle()
        return status


@pytest.fixture
def app_settings(make_settings: Callable[..., Settings], fake_slack: FakeSlackApi) -> Settings:
    return make_settings(
        SLACK_BOT_TOKEN=TOKEN, SLACK_SIGNING_SECRET=SECRET, SLACK_API_URL=fake_slack.url
    )


@pytest.fixture
async def start_app() -> AsyncIterator[Callable[..., Any]]:
    apps: list[App] = []
    session = aiohttp.ClientSession()

    async def start(settings: Settings, **connector_options: Any) -> Running:
        app = App(settings)
        factory = None
        if connector_options:

            def factory(s: Settings, runtime: Any) -> list[Any]:
                return [SlackConnector(s, runtime.emit, **connector_options)]

        await app.start(factory)
        apps.append(app)
        return Running(app, session)

    yield start
    for app in apps:
        await app.stop()
    await session.close()


def dm(text: str, *, channel: str = "D1", **extra: Any) -> dict[str, Any]:
    ts = f"{time.time():.6f}"
    event = {"type": "message", "channel_type": "im", "channel": channel, "user": "U1"}
    return event_envelope({**event, "text": text, "ts": ts, **extra})


def mention(text: str, *, channel: str = "C1", **extra: Any) -> dict[str, Any]:
    event = {"type": "app_mention", "channel": channel, "user": "U1", "ts": f"{time.time():.6f}"}
    return event_envelope({**event, "text": text, **extra})


def user_turns(fake_ollama: FakeOllama, index: int = -1) -> list[str]:
    messages = fake_ollama.chats[index]["messages"]
    return [m["content"] for m in messages if m["role"] == "user"]


async def test_dm_gets_mrkdwn_reply(
    start_app: Any, app_settings: Settings, fake_slack: FakeSlackApi, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply("**Hello** <you> & [docs](https://x.io/?a=1&b=2)\n\n```\nx < 1\n```")
    running = await start_app(app_settings)
    assert running.app.connectors[0].state is ConnectorState.CONNECTED
    assert await running.post_and_wait(dm("hi &lt;bot&gt;")) == 200
    assert user_turns(fake_ollama) == ["hi <bot>"]
    (message,) = fake_slack.posted()
    assert message.channel == "D1" and message.thread_ts is None
    assert message.text == (
        "*Hello* &lt;you&gt; &amp; <https://x.io/?a=1&amp;b=2|docs>\n\n```\nx &lt; 1\n```"
    )
    post = fake_slack.calls_of("chat.postMessage")[0]
    assert post.args["mrkdwn"] is True and post.token == TOKEN


async def test_mention_in_thread_is_answered_in_thread(
    start_app: Any, app_settings: Settings, fake_slack: FakeSlackApi, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply("Sure.")
    running = await start_app(app_settings)
    envelope = mention("<@UBOT> summarise this", thread_ts="1700000000.000100")
    assert await running.post_and_wait(envelope) == 200
    assert user_turns(fake_ollama) == ["summarise this"]
    (message,) = fake_slack.posted("C1")
    assert (message.thread_ts, message.text) == ("1700000000.000100", "Sure.")
    # A follow-up in that thread without a mention is addressed (the bot answers there).
    fake_ollama.reply("Again.")
    follow = event_envelope(
        {
            "type": "message",
            "channel_type": "channel",
            "channel": "C1",
            "user": "U1",
            "text": "and more?",
            "ts": f"{time.time():.6f}",
            "thread_ts": "1700000000.000100",
        }
    )
    assert await running.post_and_wait(follow) == 200
    assert [m.text for m in fake_slack.posted("C1")] == ["Sure.", "Again."]
    assert user_turns(fake_ollama)[-1] == "and more?"


async def test_ten_thousand_chars_with_429_mid_stream(
    start_app: Any, app_settings: Settings, fake_slack: FakeSlackApi, fake_ollama: FakeOllama
) -> None:
    paragraph = ("Slack & friends <stream> **long** answers, one chunk at a time. " * 8).strip()
    answer = "\n\n".join(f"{i}. {paragraph}" for i in range(1, 21))
    assert len(answer) >= 10_000
    fake_ollama.reply(answer, chunks=8)
    # The post of the second chunk is refused once with a 429 while the answer streams out.
    fake_slack.fail_next("chat.postMessage", "ratelimited", retry_after=1, after=1)
    running = await start_app(app_settings)
    envelope = mention("<@UBOT> write a lot", thread_ts="1700000000.000200")
    started = time.monotonic()
    assert await running.post(envelope) == 200
    assert time.monotonic() - started < 1.0  # acked long before the answer is done
    await running.app.runtime.wait_idle()

    messages = fake_slack.posted("C1")
    assert len(messages) >= 3
    assert all(m.thread_ts == "1700000000.000200" for m in messages)
    assert all(len(m.text) <= HARD_LIMIT for m in messages)
    assert "\n\n".join(m.text for m in messages) == to_mrkdwn(answer)
    assert all(m.text.endswith("one chunk at a time.") for m in messages)  # paragraph cuts
    posts = fake_slack.calls_of("chat.postMessage")
    assert len(posts) == len(messages) + 1  # the refused one was retried
    # a reply's messages are posted as a placeholder, then edited (bot/reply.py)
    assert posts[2].args["text"] == posts[1].args["text"] == PLACEHOLDER
    assert posts[2].at - posts[1].at >= 0.95  # Retry-After honoured
    limiter = running.app.connectors[0].limiter  # type: ignore[attr-defined]
    assert limiter.waits == [1.0]
    row = await running.app.store.reply_for_message("slack", "C1", messages[-1].ts)
    assert row is not None and row.status == "sent"


async def test_retried_event_is_answered_once(
    start_app: Any, app_settings: Settings, fake_slack: FakeSlackApi, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply("Only once.", delay=0.3)
    running = await start_app(app_settings)
    envelope = dm("hello?")
    assert await running.post(envelope) == 200
    assert await running.post(envelope, retry=1) == 200  # while the turn still runs
    await running.app.runtime.wait_idle()
    assert await running.post_and_wait(envelope, retry=2) == 200  # after it finished
    assert [m.text for m in fake_slack.posted()] == ["Only once."]
    assert len(fake_ollama.chats) == 1
    assert await running.app.store.count_inbound() == 1


async def test_forged_and_stale_requests_store_nothing(
    start_app: Any, app_settings: Settings, fake_slack: FakeSlackApi, fake_ollama: FakeOllama
) -> None:
    running = await start_app(app_settings)
    assert await running.post(dm("forged"), secret="guessed-secret") == 401
    assert await running.post(dm("stale"), timestamp=int(time.time()) - 600) == 401
    await running.app.runtime.wait_idle()
    assert await running.app.store.count_inbound() == 0
    assert fake_ollama.chats == []
    assert [c.method for c in fake_slack.calls] == ["auth.test"]


async def test_thumbs_up_on_reply_is_stored_as_reaction(
    start_app: Any, app_settings: Settings, fake_slack: FakeSlackApi, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply("Rate me.")
    running = await start_app(app_settings)
    await running.post_and_wait(dm("answer me"))
    (reply,) = fake_slack.posted("D1")
    reaction = {
        "type": "reaction_added",
        "user": "U1",
        "reaction": "+1",
        "item_user": "UBOT",
        "item": {"type": "message", "channel": "D1", "ts": reply.ts},
        "event_ts": f"{time.time():.6f}",
    }
    assert await running.post(event_envelope(reaction)) == 200
    store = running.app.store
    row = await store.reply_for_message("slack", "D1", reply.ts)
    assert row is not None and row.text == "Rate me."
    stored = await store.reactions_for_reply(int(row.id))
    assert [(r.emoji, r.user_id, r.message_id) for r in stored] == [("👍", "U1", reply.ts)]
    removed = event_envelope({**reaction, "type": "reaction_removed"})
    assert await running.post(removed) == 200
    assert await store.reactions_for_reply(int(row.id)) == []


async def test_restart_mid_conversation(
    start_app: Any, app_settings: Settings, fake_slack: FakeSlackApi, fake_ollama: FakeOllama
) -> None:
    thread = "1700000000.000300"
    first = await start_app(app_settings)
    fake_ollama.reply("First answer.")
    await first.post_and_wait(mention("<@UBOT> remember 42", thread_ts=thread))
    # The second question is accepted (persisted, acked), then the process stops mid-turn.
    fake_ollama.reply("Second answer.", delay=3.0)
    pending = mention("<@UBOT> what number?", thread_ts=thread)
    assert await first.post(pending) == 200
    await fake_ollama_started(fake_ollama, 2)
    await first.app.runtime.stop(grace=0)
    await first.app.stop()
    assert [m.text for m in fake_slack.posted("C1")] == ["First answer."]

    fake_ollama.script.clear()
    fake_ollama.reply("It was 42.")
    second = await start_app(app_settings)
    await second.app.runtime.wait_idle()  # the unanswered message is picked up at start
    assert await second.post_and_wait(pending, retry=1) == 200  # Slack's retry: no 2nd answer
    texts = [(m.text, m.thread_ts) for m in fake_slack.posted("C1")]
    assert texts == [("First answer.", thread), ("It was 42.", thread)]
    assert user_turns(fake_ollama)[-2:] == ["remember 42", "what number?"]


async def fake_ollama_started(fake_ollama: FakeOllama, count: int) -> None:
    """Wait until the fake Ollama received ``count`` chat requests."""
    async with asyncio.timeout(5):
        while len(fake_ollama.chats) < count:
            await asyncio.sleep(0.01)


async def test_slash_command_reaches_command_router(
    start_app: Any, app_settings: Settings, fake_slack: FakeSlackApi
) -> None:
    running = await start_app(app_settings)
    form = urlencode(
        {
            "command": "/oc",
            "text": "help",
            "user_id": "U1",
            "user_name": "ann",
            "channel_id": "D1",
            "channel_name": "directmessage",
            "team_id": "T0001",
            "trigger_id": "trig-e2e",
        }
    )
    headers = signed_headers(SECRET, form)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    async with running.session.post(running.url, data=form, headers=headers) as resp:
        assert resp.status == 200
    await running.app.runtime.wait_idle()
    (message,) = fake_slack.posted("D1")
    assert message.text.startswith("Commands:") and "/reset" in message.text


async def test_rejected_token_leaves_server_up_and_reports_state(
    start_app: Any, make_settings: Callable[..., Settings], fake_slack: FakeSlackApi
) -> None:
    settings = make_settings(
        SLACK_BOT_TOKEN="xoxb-wrong", SLACK_SIGNING_SECRET=SECRET, SLACK_API_URL=fake_slack.url
    )
    running = await start_app(settings, retry_initial=30.0)
    checks = await running.app.readiness()
    assert checks["slack"] == "failed" and checks["database"] == "ok"
    assert await running.post(dm("anyone?")) == 503  # Slack keeps it for later
    assert await running.app.store.count_inbound() == 0


async def test_command_where_bot_is_not_a_member_answers_through_response_url(
    start_app: Any, app_settings: Settings, fake_slack: FakeSlackApi
) -> None:
    fake_slack.not_member.add("C9")
    running = await start_app(app_settings)
    form = urlencode(
        {
            "command": "/oc",
            "text": "reset",
            "user_id": "U1",
            "channel_id": "C9",
            "channel_name": "random",
            "trigger_id": "trig-hook",
            "response_url": fake_slack.response_url("h1"),
        }
    )
    headers = signed_headers(SECRET, form)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    async with running.session.post(running.url, data=form, headers=headers) as resp:
        assert resp.status == 200
    await running.app.runtime.wait_idle()
    assert fake_slack.posted() == []  # chat.postMessage was refused (not_in_channel)
    assert fake_slack.calls_of("chat.postMessage")[0].args["channel"] == "C9"
    assert fake_slack.responses == [
        (
            "h1",
            {
                "text": "Started a new conversation.",
                "response_type": "ephemeral",
                "replace_original": False,
            },
        )
    ]


async def test_reply_that_could_not_be_posted_is_delivered_after_restart(
    start_app: Any, app_settings: Settings, fake_slack: FakeSlackApi, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply("Saved for later.")
    fake_slack.fail_next("chat.postMessage", "internal_error", status=500, times=10)
    first = await start_app(app_settings)
    thread = "1700000000.000400"
    assert await first.post_and_wait(mention("<@UBOT> hello", thread_ts=thread)) == 200
    assert fake_slack.posted() == [] and fake_slack.calls_of("chat.postMessage")
    await first.app.stop()

    fake_slack.clear_failures()  # Slack is healthy again
    second = await start_app(app_settings)
    await second.app.runtime.wait_idle()  # recovery runs in the lanes once connectors are up
    (message,) = fake_slack.posted("C1")
    assert (message.text, message.thread_ts) == ("Saved for later.", thread)
    assert len(fake_ollama.chats) == 1  # delivered from the outbox, not answered again
