"""The OpenAI-compatible API end to end: the real ``openai`` client (and raw HTTP where a
client would never send such bytes) against the real app, found through the
``opencomputer.channels`` entry point, answering through the runtime with a fake Ollama.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from opencomputer.bot.apikeys.keys import create_key, revoke_key
from opencomputer.bot.app import App
from opencomputer.bot.config import Settings
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.fake_ollama import Reply
from opencomputer.bot.tools import tool
from opencomputer.connectors.api import ApiConnector

pytestmark = pytest.mark.timeout(60)


@tool
async def clock() -> str:
    """The time of day."""
    return "noon"


@asynccontextmanager
async def serving(
    settings: Settings, *, plain: bool = False
) -> AsyncIterator[tuple[App, str, str]]:
    """The whole app with the API channel on; yields it, its /v1 URL and a key for ada.

    The channel comes through its entry point with the app's services (sharing the app's
    database pool), or ``plain``: built from (settings, emit) alone, with a pool of its own.
    """
    app = App(settings)
    app.tools.add(clock)
    await app.start((lambda s, rt: [ApiConnector(s, rt.emit)]) if plain else None)
    try:
        assert [c.platform for c in app.connectors] == ["api"]
        conn = app.connectors[0]
        assert isinstance(conn, ApiConnector)
        assert (conn.engine is app.store.engine) is not plain
        assert app.http is not None
        _key, token = await create_key(app.store.engine, "ada", "tests")
        yield app, f"http://127.0.0.1:{app.http.port}/v1", token
    finally:
        await app.stop()


@pytest.fixture
async def api(make_settings: Callable[..., Settings]) -> AsyncIterator[tuple[App, str, str]]:
    async with serving(make_settings(OC_API_ENABLED="true")) as served:
        yield served


def client(url: str, token: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=token, base_url=url, max_retries=0, timeout=20)


def last_user_text(body: dict[str, Any]) -> str:
    users = [m for m in body["messages"] if m["role"] == "user"]
    return str(users[-1]["content"])


async def test_answers_streamed_and_not_in_conversations_keyed_by_user(
    api: tuple[App, str, str], fake_ollama: FakeOllama
) -> None:
    app, url, token = api
    async with client(url, token) as oc:
        await converse(app, oc, fake_ollama)


async def converse(app: App, oc: openai.AsyncOpenAI, fake_ollama: FakeOllama) -> None:
    models = await oc.models.list()
    assert [m.id for m in models.data] == ["opencomputer"]

    fake_ollama.reply("Hello there, friend.", chunks=4)
    history = [
        {"role": "system", "content": "client-side system prompt"},
        {"role": "user", "content": "an old question the client replays"},
        {"role": "assistant", "content": "an old answer"},
        {"role": "user", "content": "hi"},
    ]
    done = await oc.chat.completions.create(model="opencomputer", messages=history, user="c1")  # type: ignore[arg-type]
    assert done.object == "chat.completion"
    assert done.choices[0].message.content == "Hello there, friend."
    assert done.choices[0].finish_reason == "stop"
    # The turn's text is the last user message; the replayed history is not fed to the agent.
    asked = fake_ollama.chats[-1]
    assert last_user_text(asked) == "hi"
    assert "an old question" not in str(asked["messages"])

    answer = "Streaming " + " ".join(f"word{i}" for i in range(60)) + "."
    fake_ollama.reply(answer, chunks=20, pace=0.01)
    stream = await oc.chat.completions.create(
        model="opencomputer",
        messages=[{"role": "user", "content": "and now stream"}],
        stream=True,
        user="c1",
    )
    deltas: list[str] = []
    finish = []
    async for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        deltas.append(chunk.choices[0].delta.content or "")
        finish.append(chunk.choices[0].finish_reason)
    assert "".join(deltas) == answer
    assert len([d for d in deltas if d]) >= 2  # it streamed in pieces
    assert finish[-1] == "stop" and set(finish[:-1]) == {None}
    # Same `user`: the same conversation, so the agent's own history holds the first turn.
    assert "Hello there, friend." in str(fake_ollama.chats[-1]["messages"])

    fake_ollama.reply("A fresh start.")
    other = await oc.chat.completions.create(
        model="opencomputer", messages=[{"role": "user", "content": "new chat"}], user="c2"
    )
    assert other.choices[0].message.content == "A fresh start."
    assert "Hello there, friend." not in str(fake_ollama.chats[-1]["messages"])
    rows = await app.store.last_reply("api:ada:c2")
    assert rows is not None and rows.text == "A fresh start."


async def test_wrong_revoked_and_missing_keys_are_refused_in_openai_format(
    api: tuple[App, str, str], tmp_path: Path
) -> None:
    app, url, token = api
    with pytest.raises(openai.AuthenticationError) as wrong:
        async with client(url, "oc-" + "x" * 43) as oc:
            await oc.models.list()
    assert wrong.value.status_code == 401 and wrong.value.code == "invalid_api_key"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/chat/completions", json={"messages": []}) as resp:
            assert resp.status == 401
            body = await resp.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert "Authorization: Bearer" in body["error"]["message"]

    async with client(url, token) as oc:
        assert (await oc.models.list()).data
        assert await revoke_key(app.store.engine, 1)
        with pytest.raises(openai.AuthenticationError):
            await oc.chat.completions.create(
                model="opencomputer", messages=[{"role": "user", "content": "hi"}]
            )
    # Only the digest is stored: the key is nowhere in the database's files.
    files = [p for p in (tmp_path / "data").rglob("*") if p.is_file()]
    assert any(p.name.endswith(".db") for p in files)
    assert all(token.encode() not in p.read_bytes() for p in files)
    assert all(token[3:].encode() not in p.read_bytes() for p in files)


async def test_rate_limit_per_key_is_429_with_retry_after(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(OC_API_ENABLED="true", OC_API_RATE="2/60")
    async with serving(settings, plain=True) as (_, url, token):
        async with client(url, token) as oc:
            await oc.models.list()
            await oc.models.list()
            with pytest.raises(openai.RateLimitError) as refused:
                await oc.models.list()
    assert refused.value.status_code == 429
    assert int(refused.value.response.headers["Retry-After"]) >= 1
    assert refused.value.code == "rate_limit_exceeded"


async def test_malformed_requests_get_one_clear_400_and_surrogates_do_not_crash(
    api: tuple[App, str, str], fake_ollama: FakeOllama
) -> None:
    _app, url, token = api
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    bad = {
        b"{not json": "not valid JSON",
        b"[1, 2]": "must be a JSON object",
        b'{"model": "opencomputer"}': "'messages' must be a non-empty array",
        b'{"messages": [{"role": "assistant", "content": "x"}]}': "no user message",
        b'{"messages": [{"role": "user", "content": 5}]}': "must be a string or an array",
        b'{"messages": [{"role": "user", "content": "x"}], "stream": "yes"}': "'stream' must",
    }
    async with aiohttp.ClientSession() as http:
        for raw, says in bad.items():
            async with http.post(f"{url}/chat/completions", data=raw, headers=auth) as resp:
                assert resp.status == 400, raw
                error = (await resp.json())["error"]
                assert says in error["message"] and "Traceback" not in error["message"]
                assert error["type"] == "invalid_request_error"
        async with http.get(f"{url}/nothing", headers=auth) as resp:
            assert resp.status == 404 and "error" in await resp.json()
        # A lone UTF-16 surrogate is valid JSON but not Unicode: replaced, answered.
        raw = b'{"messages": [{"role": "user", "content": "bad \\ud800 text"}]}'
        fake_ollama.reply("still fine")
        async with http.post(f"{url}/chat/completions", data=raw, headers=auth) as resp:
            assert resp.status == 200
            assert (await resp.json())["choices"][0]["message"]["content"] == "still fine"
    assert last_user_text(fake_ollama.chats[-1]) == "bad \ufffd text"


async def test_disconnect_mid_stream_keeps_the_reply_and_replay_runs_no_second_turn(
    api: tuple[App, str, str], fake_ollama: FakeOllama
) -> None:
    app, url, token = api
    answer = " ".join(f"part{i}" for i in range(40))
    fake_ollama.reply(answer, chunks=40, pace=0.02)
    auth = {"Authorization": f"Bearer {token}", "X-Conversation-Id": "gone"}
    body = {"messages": [{"role": "user", "content": "talk slowly"}], "stream": True}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/chat/completions", json=body, headers=auth) as resp:
            assert resp.status == 200
            async with asyncio.timeout(10):
                async for line in resp.content:
                    if b"part0" in line:
                        break  # the answer is flowing: hang up
        # closing the response drops the connection mid-stream
    async with asyncio.timeout(10):
        await app.runtime.wait_idle()
    reply = await app.store.last_reply("api:ada:gone")
    assert reply is not None and reply.text == answer

    # The same Idempotency-Key three times: one turn, the same answer each time.
    fake_ollama.reply("only once", chunks=5, pace=0.05)  # slow enough for the replay to meet it
    asked = len(fake_ollama.chats)
    headers = {"Idempotency-Key": "req-1"}
    async with client(url, token) as oc:
        ask = [
            oc.chat.completions.create(
                model="opencomputer",
                messages=[{"role": "user", "content": "do it once"}],
                extra_headers=headers,
            )
            for _ in range(2)
        ]
        first, again = await asyncio.gather(*ask)  # the replay arrives while the first waits
        late = await ask_again(oc, headers)  # and one after it was answered
    assert late == "only once"
    assert first.choices[0].message.content == again.choices[0].message.content == "only once"
    assert len(fake_ollama.chats) == asked + 1


async def test_a_tool_round_trip_underneath_a_streamed_answer(
    api: tuple[App, str, str], fake_ollama: FakeOllama
) -> None:
    _app, url, token = api
    fake_ollama.call_tool("clock")
    fake_ollama.reply("It is noon.", chunks=3)
    async with client(url, token) as oc:
        stream = await oc.chat.completions.create(
            model="opencomputer",
            messages=[{"role": "user", "content": "what time is it?"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "It is noon."
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    assert fake_ollama.chats[-1]["messages"][-1] == {
        "role": "tool",
        "tool_name": "clock",
        "content": "noon",
    }


async def test_a_body_over_the_limit_is_413_in_openai_format(
    api: tuple[App, str, str], fake_ollama: FakeOllama
) -> None:
    app, url, token = api
    huge = [{"role": "user", "content": "x" * (1100 * 1024)}]
    async with client(url, token) as oc:
        with pytest.raises(openai.APIStatusError) as refused:
            await oc.chat.completions.create(model="opencomputer", messages=huge)  # type: ignore[arg-type]
    assert refused.value.status_code == 413
    assert refused.value.body == {
        "message": "request body larger than 1024 KiB: send a shorter conversation "
        "(only the last user message is read)",
        "type": "invalid_request_error",
        "param": None,
        "code": "request_too_large",
    }
    assert fake_ollama.chats == [] and await app.store.count_inbound() == 0


@pytest.mark.parametrize("policy", ["allowlist", "pairing"])
async def test_a_key_made_while_the_server_runs_works_at_once(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama, policy: str
) -> None:
    """``opencomputer keys create`` writes the key and its person's grant from another
    process; the server's cached grants must not make the key wait for a restart.
    """
    settings = make_settings(OC_API_ENABLED="true", OC_DM_POLICY=policy)
    question = [{"role": "user", "content": "hello"}]
    async with serving(settings) as (app, url, _ada):
        async with client(url, "oc-" + "x" * 43) as oc:  # a made-up key stays out
            with pytest.raises(openai.AuthenticationError):
                await oc.chat.completions.create(model="opencomputer", messages=question)
        from opencomputer.bot.storage import create_engine

        other = create_engine(settings.resolved_database_url)  # the CLI's own connection
        try:
            _key, bob = await create_key(other, "bob")
        finally:
            await other.dispose()
        fake_ollama.reply("Hi Bob.")
        async with client(url, bob) as oc:
            answer = await oc.chat.completions.create(model="opencomputer", messages=question)
        assert answer.choices[0].message.content == "Hi Bob."
        assert app.extras["admin"].policy.role("user:api:bob") == "allowed"


async def test_a_person_an_admin_denied_stays_out_with_a_new_key(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    settings = make_settings(OC_API_ENABLED="true", OC_DM_POLICY="allowlist")
    question = [{"role": "user", "content": "hello"}]
    async with serving(settings) as (app, url, _ada):
        await app.extras["admin"].policy.grant("user:api:eve", "denied", by="test")
        _key, eve = await create_key(app.store.engine, "eve")
        async with client(url, eve) as oc:
            with pytest.raises(openai.APIStatusError) as refused:
                await oc.chat.completions.create(model="opencomputer", messages=question)
        assert refused.value.status_code == 403 and "denied" in refused.value.message
        assert fake_ollama.chats == []


async def test_shutdown_while_a_request_waits_is_a_503_and_the_message_is_kept(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    settings = make_settings(OC_API_ENABLED="true", OC_SHUTDOWN_GRACE="0")
    asked = asyncio.Event()
    answer = fake_ollama.responder

    def hang(body: dict[str, Any]) -> Reply:
        asked.set()
        return Reply("I am thinking", stall=True)  # a model that hangs mid-answer

    fake_ollama.responder = hang
    app = App(settings)
    await app.start()
    assert app.http is not None
    url = f"http://127.0.0.1:{app.http.port}/v1"
    _key, token = await create_key(app.store.engine, "ada")
    stopped = False
    try:
        async with client(url, token) as oc:
            asking = asyncio.create_task(
                oc.chat.completions.create(
                    model="opencomputer", messages=[{"role": "user", "content": "wait"}]
                )
            )
            await asyncio.wait_for(asked.wait(), 10)
            await app.stop()
            stopped = True
            with pytest.raises(openai.InternalServerError) as down:
                await asyncio.wait_for(asking, 10)
        assert down.value.status_code == 503
        assert down.value.response.headers["x-should-retry"] == "false"
    finally:
        if not stopped:
            await app.stop()
    again = App(settings)  # the message is still there, answered after the restart
    fake_ollama.responder = answer
    fake_ollama.reply("Done waiting.")
    await again.start()
    try:
        async with asyncio.timeout(10):
            await again.runtime.wait_idle()
        reply = await again.store.last_reply("api:ada:default")
        assert reply is not None and reply.text == "Done waiting."
    finally:
        await again.stop()


async def ask_again(oc: openai.AsyncOpenAI, headers: dict[str, str]) -> str | None:
    answer = await oc.chat.completions.create(
        model="opencomputer",
        messages=[{"role": "user", "content": "do it once"}],
        extra_headers=headers,
    )
    return answer.choices[0].message.content
