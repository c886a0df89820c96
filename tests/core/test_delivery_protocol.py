"""One delivery protocol for both modes (issue 19): a crash or a storage error at any step
neither loses a message nor answers it twice, out of order, or by posting a second copy.

The protocol (``bot/runtime.py``): a message is stored before it is acknowledged; its reply's
platform messages are posted as a placeholder and their ids stored (``reply_posts``) before they
carry text; the final text is recorded, shown, then marked sent. Each test below is an attack on
one step: it fails against the code before the protocol (checked by reverting it).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis
from sqlalchemy import select

from opencomputer.bot.app import App
from opencomputer.bot.config import Settings
from opencomputer.bot.events import Address, Chat, Message, User
from opencomputer.bot.reply import PLACEHOLDER, ReplyStream
from opencomputer.bot.scale.bus import Keys
from opencomputer.bot.storage.models import InboundRow
from opencomputer.bot.storage.store import SqlStore
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.harness import Harness, RecordingConnector
from opencomputer.connectors.telegram import TelegramConnector
from tests.scale.cluster import Cluster, RedisServer
from tests.scale.conftest import cluster, redis_server  # noqa: F401  (fixtures)
from tests.telegram.fake_bot_api import FakeBotApi, validate_html
from tests.telegram.telegram_helpers import FAST

_SETTING_PREFIXES = ("OC_", "OLLAMA_", "TELEGRAM_", "DISCORD_", "SLACK_", "MATRIX_", "OPENAI_")


@pytest.fixture(autouse=True)
def _ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    """PTB 22 warns on int periods unless told to use timedelta ones (warnings are errors)."""
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    """The fake Telegram Bot API on a free loopback port."""
    async with FakeBotApi() as fake:
        yield fake


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


async def _until(check: Callable[[], Awaitable[bool] | bool], within: float = 20.0) -> None:
    async with asyncio.timeout(within):
        while True:
            result = check()
            if await result if not isinstance(result, bool) else result:
                return
            await asyncio.sleep(0.02)


def _shown(api: FakeBotApi, chat: int) -> list[str]:
    return [validate_html(text) for text in api.shown(chat)]


@asynccontextmanager
async def _running(settings: Settings) -> AsyncIterator[App]:
    app = App(settings)
    await app.start(lambda s, rt: [TelegramConnector(s, rt.emit, options=FAST)], http=False)
    try:
        yield app
    finally:
        await app.stop()


# --- single process, in-process app ----------------------------------------------------
class BacklogConnector(RecordingConnector):
    """A platform that hands over what queued while the bot was down as soon as it connects
    (a Matrix sync, a Slack socket, a busy Telegram poll): ``start`` emits it before returning.
    """

    def __init__(self, emit: Any, backlog: list[Message]) -> None:
        super().__init__(emit)
        self.backlog = backlog

    async def start(self) -> None:
        await super().start()
        for message in self.backlog:
            await self.emit(message)


def _message(chat: str, text: str, event_id: str) -> Message:
    return Message(
        platform="test",
        event_id=event_id,
        chat=Chat("test", chat),
        user=User("test", chat, chat.title()),
        text=text,
        message_id=f"u-{event_id}",
    )


async def test_restart_answers_waiting_messages_first_and_each_once_while_new_ones_arrive(
    fake_ollama: FakeOllama, make_settings: Callable[..., Settings]
) -> None:
    """A previous run stored three messages per chat and died; three more per chat reach the
    connector the moment it starts. The restart answers the old ones first, every message once,
    and the model hears each once (before: the new ones went first, and recovery queued them a
    second time).
    """
    settings = make_settings()
    chats = ("c1", "c2", "c3")
    store = SqlStore(settings.resolved_database_url)
    await store.start()
    try:
        for chat in chats:
            for n in range(3):
                stored = await store.accept_inbound(
                    _message(chat, f"old {chat}.{n}", f"o{chat}{n}")
                )
                assert stored is not None
    finally:
        await store.stop()
    backlog = [_message(c, f"new {c}.{n}", f"n{c}{n}") for n in range(3) for c in chats]
    holder: list[BacklogConnector] = []

    def factory(_s: Settings, runtime: Any) -> list[Any]:
        holder.append(BacklogConnector(runtime.emit, backlog))
        return holder

    app = App(settings)
    await app.start(factory, http=False)
    try:
        await app.runtime.wait_idle()
        await asyncio.sleep(0.3)  # a second answer to any of them would be posted by now
        await app.runtime.wait_idle()
    finally:
        await app.stop()

    conn = holder[0]
    posts = [c for c in conn.calls if c.action == "send"]
    for chat in chats:
        shown = [conn.messages[c.message_id] for c in posts if c.address.chat_id == chat]
        expected = [f"echo: old {chat}.{n}" for n in range(3)]
        expected += [f"echo: new {chat}.{n}" for n in range(3)]
        assert shown == expected
    assert len(posts) == 18  # one post per answer
    heard = Counter(str(body["messages"][-1]["content"]) for body in fake_ollama.chats)
    assert sorted(heard) == sorted(
        f"{age} {c}.{n}" for age in ("old", "new") for c in chats for n in range(3)
    )
    assert set(heard.values()) == {1}


@pytest.mark.parametrize("failures", [2, 6])
async def test_a_storage_error_after_delivery_never_sends_the_answer_again(
    failures: int, settings: Settings, fake_ollama: FakeOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Marking a delivered reply sent fails (the database blinked): only that step is retried,
    from the delivery (2 failures) or from the recorded reply (6: the turn's own retries run out
    and the job runs again). Before, the whole turn ran again and posted its answer again.
    """
    async with Harness(settings) as h:
        store = h.app.store
        real = store.mark_reply_sent
        calls: list[int] = []

        async def flaky(reply_id: int, address: Address, ids: Any) -> None:
            calls.append(reply_id)
            if len(calls) <= failures:
                raise sqlite3.OperationalError("disk I/O error")
            await real(reply_id, address, ids)

        monkeypatch.setattr(store, "mark_reply_sent", flaky)
        answer = await h.say("only once please")
        await h.app.runtime.wait_idle()
        async with store.engine.connect() as conn:
            [row] = list(await conn.execute(select(InboundRow.__table__)))
    assert answer == "echo: only once please"
    assert [c.action for c in h.conn.calls if c.action == "send"] == ["send"]
    assert len(fake_ollama.chats) == 1  # the turn ran once
    assert row.status == "answered" and len(calls) == failures + 1
    assert len(set(calls)) == 1  # one reply, marked at last


async def test_a_turn_that_finished_before_its_reply_was_recorded_is_not_run_again(
    settings: Settings, fake_ollama: FakeOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The graph checkpointed the finished turn, then recording the reply failed (as a crash
    there would): the message runs again and gets the finished answer from its thread. Before,
    the re-run added the message to the thread a second time and asked the model again.
    """
    async with Harness(settings) as h:
        store = h.app.store
        real = store.record_reply
        calls: list[str] = []

        async def flaky(*args: Any, **kwargs: Any) -> int:
            calls.append("record")
            if len(calls) == 1:
                raise sqlite3.OperationalError("disk I/O error")
            return await real(*args, **kwargs)

        monkeypatch.setattr(store, "record_reply", flaky)
        answer = await h.say("finish me once")
        await h.app.runtime.wait_idle()
        address = h.conn.calls[-1].address
        thread = h.app.runtime.thread_id(address, await store.epoch(address.key))
        history = await h.app.runtime.agent.history(thread)
    assert answer == "echo: finish me once" and calls == ["record", "record"]
    assert len(fake_ollama.chats) == 1  # the model was asked once
    said = [m["content"] for m in history if m.get("role") == "user"]
    assert said == ["finish me once"]


@pytest.mark.parametrize("can_edit", [True, False])
async def test_a_reply_resumed_by_a_new_process_posts_nothing_twice(
    can_edit: bool, settings: Settings
) -> None:
    """The posts of a reply key outlive the stream: a second stream (a restarted process)
    edits them where the platform can, and posts only what was never posted. A new message is
    posted as a placeholder first, where the platform can edit, so the answer's text never
    travels in a post whose id could be lost.
    """
    store = SqlStore(settings.resolved_database_url)
    await store.start()
    try:
        conn = RecordingConnector(_ignore, max_length=40, can_edit=can_edit)
        address = Address("test", "c1")
        text = " ".join(f"word{i}" for i in range(20))  # three or four parts of 40 characters
        first = ReplyStream(conn, address, "q1", key="in7", ledger=store)
        ids = await first.finish(text)  # ... and the process dies before marking it sent
        assert len(ids) >= 3
        posts = [c for c in conn.calls if c.action == "send"]
        assert [c.message_id for c in posts] == ids
        assert all(
            c.text == (PLACEHOLDER if can_edit else conn.messages[c.message_id]) for c in posts
        )
        assert posts[0].reply_to == "q1"

        conn.calls.clear()
        again = ReplyStream(conn, address, "q1", key="in7", ledger=store)
        await again.resume()
        assert await again.finish(text) == ids
        assert [c.action for c in conn.calls if c.action == "send"] == []
        assert [conn.messages[i] for i in ids] == conn.render(text)

        shorter = ReplyStream(conn, address, "q1", key="in7", ledger=store)
        await shorter.resume()  # a re-run answered shorter: leftovers lose their text
        assert await shorter.finish("short") == ids[:1]
        assert [c.action for c in conn.calls if c.action == "send"] == []
        if can_edit:
            assert [conn.messages[i] for i in ids] == ["short"] + [PLACEHOLDER] * (len(ids) - 1)
    finally:
        await store.stop()


async def _ignore(_event: Any) -> None:
    return None


# --- single process, a real server killed with SIGKILL ---------------------------------
def _server_env(api: FakeBotApi, fake_ollama: FakeOllama, data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SETTING_PREFIXES)}
    env.update(
        TELEGRAM_BOT_TOKEN=api.token,
        TELEGRAM_BASE_URL=api.base_url,
        OLLAMA_HOST=fake_ollama.url,
        OC_DATA_DIR=str(data),
        OC_HTTP_PORT="0",
        OC_DM_POLICY="open",
        OC_RATE_LIMIT_USER="0",
        OC_RATE_LIMIT_CHAT="0",
        OC_MODEL_RETRY_SECONDS="0",
        PTB_TIMEDELTA="true",
    )
    return env


async def _serve(env: dict[str, str], log: Path, api: FakeBotApi) -> asyncio.subprocess.Process:
    """``opencomputer run`` in its own process; returns once it polls the platform."""
    polls = len(api.calls_to("getUpdates"))
    with open(log, "ab") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "opencomputer", "run", env=env, stdout=out, stderr=out
        )
    try:
        await api.wait_for("getUpdates", count=polls + 1, within=90)
    except TimeoutError:
        proc.kill()
        raise AssertionError(f"the server did not start:\n{_tail(log)}") from None
    return proc


async def test_killed_mid_stream_the_restarted_turn_edits_the_message_it_posted(
    api: FakeBotApi, fake_ollama: FakeOllama, tmp_path: Path
) -> None:
    """SIGKILL while the answer streams into its message: the restarted server runs the turn
    again into that same message (an edit), never a second message with the whole answer.
    """
    answer = " ".join(f"Sentence {i} of a slow answer." for i in range(30))
    fake_ollama.reply(answer, chunks=30, pace=0.2)  # six seconds of streaming
    env = _server_env(api, fake_ollama, tmp_path / "data")
    log = tmp_path / "server.log"
    proc = await _serve(env, log, api)
    try:
        await api.push(api.message("tell me slowly", chat_id=81, user_id=81))
        await api.wait_for("editMessageText", lambda c: c["chat_id"] == 81, within=30)
        proc.send_signal(signal.SIGKILL)  # the answer is half-way into the message
        await proc.wait()
        [cut] = _shown(api, 81)
        assert cut != answer and cut != PLACEHOLDER

        fake_ollama.reply(answer, chunks=3)
        proc = await _serve(env, log, api)
        await _until(lambda: _shown(api, 81) == [answer], within=30)
        await asyncio.sleep(0.3)  # a second post would show by now
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(60):
                await proc.wait()
    [post] = api.calls_to("sendMessage")
    assert post["text"] == PLACEHOLDER  # the answer itself never travelled in a post
    edited = {int(c["message_id"]) for c in api.calls_to("editMessageText")}
    assert len(edited) == 1 and _shown(api, 81) == [answer]
    assert [c["messages"][-1]["content"] for c in fake_ollama.chats] == ["tell me slowly"] * 2


# --- scale-out: gateway + worker on PostgreSQL and Redis --------------------------------
async def test_a_restarted_gateway_does_not_send_a_finished_reply_again(
    cluster: Cluster,  # noqa: F811
    redis_server: RedisServer,  # noqa: F811
    fake_ollama: FakeOllama,
) -> None:
    """The gateway delivered a reply and died before its answer reached the worker, which
    sends the final operation again (and a late snapshot is still queued). The new gateway
    answers with the same message ids and touches the platform not at all (before: finished
    replies lived in the dead gateway's memory, and the answer was posted a second time).
    """
    await cluster.start_gateway()
    await cluster.start_worker()
    await cluster.say("g1", "hello there")
    assert cluster.gateway is not None and cluster.connector is not None
    store = cluster.gateway.store

    async def answered() -> bool:
        async with store.engine.connect() as conn:
            rows = list(await conn.execute(select(InboundRow.__table__)))
        return len(rows) == 1 and rows[0].status == "answered"

    await _until(answered, within=30)
    assert cluster.answers() == {"g1": ["echo: hello there"]}
    ids = [c.message_id for c in cluster.connector.calls if c.action == "send"]
    async with store.engine.connect() as conn:
        inbound_id = (await conn.execute(select(InboundRow.__table__))).one().id

    await cluster.gateway.stop()
    keys = Keys(cluster.env["OC_REDIS_PREFIX"])
    base = {"a": ["test", "g1", None], "r": None, "k": f"in{inbound_id}", "op": "stream"}
    redis = Redis.from_url(redis_server.url)
    try:
        for op in ({**base, "x": "echo: hel"}, {**base, "x": "echo: hello there", "final": True,
                                                 "rid": "again", "w": "w-test"}):  # fmt: skip
            await redis.xadd(keys.outbound("test"), {"op": orjson.dumps(op)})
        await cluster.start_gateway()  # a new process: a new connector, the same platform
        answers: list[Any] = []

        async def answered_again() -> bool:
            answers[:] = await redis.xrange(keys.answers("w-test"))
            return bool(answers)

        await _until(answered_again, within=30)
    finally:
        await redis.aclose()
    assert orjson.loads(answers[0][1][b"a"]) == {"rid": "again", "ids": ids}
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:  # nothing reaches the platform, not even late
        assert cluster.connector.calls == []
        await asyncio.sleep(0.05)
