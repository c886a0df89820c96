"""OpenAI-compatible model servers: the client against a fake speaking the real /v1 protocol,
``openai:`` host entries, mixed pools with Ollama, and full turns through the real App."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable

import aiohttp
import orjson
import pytest
from pydantic import SecretStr

from opencomputer.bot.config import ConfigError, Settings, load_settings
from opencomputer.bot.doctor import run_doctor
from opencomputer.bot.ollama import OllamaError, OllamaUnavailable
from opencomputer.bot.ollama_pool import OllamaPool
from opencomputer.bot.openai_compat import OpenAIClient, openai_messages
from opencomputer.bot.runtime import APOLOGY
from opencomputer.bot.testing import FakeOllama, Reply
from opencomputer.bot.testing.fake_openai import FakeOpenAI
from opencomputer.bot.testing.harness import Harness

USER = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    """A fake OpenAI-compatible server on a free loopback port."""
    async with FakeOpenAI() as fake:
        yield fake


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the client ------------------------------------------------------------------------
async def test_chat_streams_tokens_and_maps_options(fake_openai: FakeOpenAI) -> None:
    fake_openai.reply("Hello there, friend", chunks=4)
    tokens: list[str] = []

    async def on_token(t: str) -> None:
        tokens.append(t)

    async with OpenAIClient(fake_openai.url) as client:
        result = await client.chat(
            "qwen3:8b",
            USER,
            options={"num_ctx": 4096, "temperature": 0.2, "num_predict": 64, "seed": 7},
            keep_alive="5m",
            on_token=on_token,
        )
    assert result.content == "Hello there, friend"
    assert len(tokens) == 4 and "".join(tokens) == result.content
    assert result.done_reason == "stop"
    assert (result.prompt_tokens, result.completion_tokens) == (10, 4)  # from the usage chunk
    body = fake_openai.chats[0]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert (body["temperature"], body["max_tokens"], body["seed"]) == (0.2, 64, 7)
    assert not {"options", "num_ctx", "keep_alive", "tools"} & body.keys()
    assert body["messages"] == USER


async def test_stream_of_tool_call_deltas_is_what_openai_sends(fake_openai: FakeOpenAI) -> None:
    """The fake's stream itself: the call opened with id, type, name and "", then fragments."""
    fake_openai.call_tool("calculate", expression="6*7")
    body = {"model": "qwen3:8b", "messages": USER, "stream": True}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{fake_openai.url}/chat/completions", json=body) as resp,
    ):
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        events = [line async for line in resp.content if line.strip()]
    assert all(e.startswith(b"data: ") for e in events) and events[-1] == b"data: [DONE]\n"
    chunks = [orjson.loads(e[6:]) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    deltas = [d for c in chunks for d in c["choices"][0]["delta"].get("tool_calls", [])]
    first, *rest = deltas
    assert first["id"].startswith("call_") and first["type"] == "function"
    assert first["function"] == {"name": "calculate", "arguments": ""}
    assert len(rest) >= 2 and all(set(d) == {"index", "function"} for d in rest)
    assert orjson.loads("".join(d["function"]["arguments"] for d in rest)) == {"expression": "6*7"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_tool_call_deltas_are_assembled(fake_openai: FakeOpenAI) -> None:
    fake_openai.script.append(
        Reply(
            "Let me look.",
            tool_calls=[
                {"function": {"name": "current_time", "arguments": {"timezone": "UTC"}}},
                {"function": {"name": "calculate", "arguments": {"expression": "(1 + 2) * 3"}}},
            ],
        )
    )
    async with OpenAIClient(fake_openai.url) as client:
        result = await client.chat("qwen3:8b", USER, tools=[{"type": "function"}])
    assert result.content == "Let me look."
    assert [(c.name, c.arguments) for c in result.tool_calls] == [
        ("current_time", {"timezone": "UTC"}),
        ("calculate", {"expression": "(1 + 2) * 3"}),
    ]
    assert len({c.id for c in result.tool_calls}) == 2
    assert all(c.id.startswith("call_") for c in result.tool_calls)
    assert result.done_reason == "tool_calls"
    assert fake_openai.chats[0]["tools"] == [{"type": "function"}]


@pytest.mark.parametrize("arguments", ['{"expression": "1+', "[1, 2]"])
async def test_malformed_tool_arguments_are_a_clear_error(
    fake_openai: FakeOpenAI, arguments: str
) -> None:
    fake_openai.script.append(
        Reply(tool_calls=[{"function": {"name": "calculate", "arguments": arguments}}])
    )
    async with OpenAIClient(fake_openai.url) as client:
        with pytest.raises(OllamaError) as info:
            await client.chat("qwen3:8b", USER)
    assert "called tool 'calculate' with malformed arguments" in str(info.value)
    assert repr(arguments) in str(info.value)
    assert "stronger model" in info.value.hint


async def test_error_inside_the_stream_raises(fake_openai: FakeOpenAI) -> None:
    fake_openai.script.append(Reply("partial", error="engine died"))
    async with OpenAIClient(fake_openai.url) as client:
        with pytest.raises(OllamaError, match="engine died"):
            await client.chat("qwen3:8b", USER)


async def test_history_is_sent_with_call_ids_and_results(fake_openai: FakeOpenAI) -> None:
    history = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "time and sum?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"function": {"name": "current_time", "arguments": {"timezone": "UTC"}}},
                {"function": {"name": "calculate", "arguments": {"expression": "1+1"}}},
            ],
        },
        {"role": "tool", "tool_name": "current_time", "content": "noon"},
        {"role": "tool", "tool_name": "calculate", "content": "2"},
    ]
    async with OpenAIClient(fake_openai.url) as client:
        await client.chat("qwen3:8b", history)
    sent = fake_openai.chats[0]["messages"]
    assert sent[:2] == history[:2]
    calls = sent[2]["tool_calls"]
    assert [c["type"] for c in calls] == ["function", "function"]
    assert [c["function"] for c in calls] == [
        {"name": "current_time", "arguments": '{"timezone":"UTC"}'},
        {"name": "calculate", "arguments": '{"expression":"1+1"}'},
    ]
    assert sent[3:] == [
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": "noon"},
        {"role": "tool", "tool_call_id": calls[1]["id"], "content": "2"},
    ]
    assert calls[0]["id"] != calls[1]["id"]


def test_unanswered_calls_and_orphan_results_stay_valid_for_openai() -> None:
    """A turn stopped at the tool-round limit, and a window that starts with a result."""
    messages = openai_messages(
        [
            {"role": "tool", "tool_name": "calculate", "content": "4"},
            {"role": "user", "content": "again"},
            {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f"}}]},
            {"role": "user", "content": "well?"},
        ]
    )
    assert messages[0] == {"role": "user", "content": "(result of calculate)\n4"}
    call_id = messages[2]["tool_calls"][0]["id"]
    assert messages[2]["tool_calls"][0]["function"] == {"name": "f", "arguments": "{}"}
    assert messages[3]["role"] == "tool" and messages[3]["tool_call_id"] == call_id
    assert messages[3]["content"].startswith("error: this call was not run")
    assert messages[4] == {"role": "user", "content": "well?"}


async def test_embeddings_models_and_context_length() -> None:
    async with (
        FakeOpenAI(max_model_len=4096) as fake,
        OpenAIClient(fake.url) as client,
    ):
        vectors = await client.embed("nomic-embed-text", ["a", "bb"])
        assert len(vectors) == 2 and len(vectors[0]) == 8 and vectors[0] != vectors[1]
        assert await client.tags() == ["qwen3:8b", "nomic-embed-text"]
        assert await client.version() == "OpenAI-compatible API, 2 models"
        check = await client.check_model("qwen3:8b")
    assert check.ok and check.context_length == 4096  # vLLM's max_model_len
    body = next(r["body"] for r in fake.requests if r["path"] == "/v1/embeddings")
    assert body == {"model": "nomic-embed-text", "input": ["a", "bb"]}


async def test_model_not_listed_fails_check_model_with_a_clear_message(
    fake_openai: FakeOpenAI,
) -> None:
    async with OpenAIClient(fake_openai.url) as client:
        check = await client.check_model("llama9:70b")
        ok = await client.check_model("qwen3:8b")
        with pytest.raises(OllamaError) as info:
            await client.chat("llama9:70b", USER)
    assert not check.ok
    assert f"model 'llama9:70b' is not served by {fake_openai.url}" in check.message
    assert "it serves: qwen3:8b, nomic-embed-text" in check.message
    assert "Set OC_MODEL" in check.message
    assert ok.ok and ok.context_length is None  # OpenAI itself does not say
    assert info.value.status == 404
    assert "does not exist" in str(info.value) and "/models" in info.value.hint


async def test_wrong_or_missing_key_is_a_clear_error() -> None:
    async with FakeOpenAI(api_key="sk-right-key") as fake:
        async with OpenAIClient(fake.url, api_key=SecretStr("sk-wrong-key")) as client:
            with pytest.raises(OllamaError) as info:
                await client.chat("qwen3:8b", USER)
            check = await client.check_model("qwen3:8b")
        async with OpenAIClient(fake.url) as client:
            with pytest.raises(OllamaError) as missing:
                await client.version()
        async with OpenAIClient(fake.url, api_key=SecretStr("sk-right-key")) as client:
            assert (await client.chat("qwen3:8b", USER)).content == "echo: hi"
    assert info.value.status == 401 and "Incorrect API key provided" in str(info.value)
    assert "OC_OPENAI_API_KEY" in info.value.hint
    assert "sk-wrong-key" not in f"{info.value} {info.value.hint}"
    assert not check.ok and "OC_OPENAI_API_KEY" in check.message
    assert missing.value.status == 401 and "set OC_OPENAI_API_KEY" in missing.value.hint
    assert fake.requests[-1]["headers"]["Authorization"] == "Bearer sk-right-key"


async def test_unreachable_server_is_unavailable() -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    async with OpenAIClient(url, timeout=5) as client:
        with pytest.raises(OllamaUnavailable) as info:
            await client.chat("qwen3:8b", USER)
    assert f"cannot reach the OpenAI-compatible server at {url}" in str(info.value)
    assert "openai: entry" in info.value.hint


async def test_wrong_base_url_hints_at_v1() -> None:
    async with FakeOllama() as ollama, OpenAIClient(f"{ollama.url}/api") as client:
        with pytest.raises(OllamaError) as info:
            await client.version()
    assert info.value.status == 404 and "ends in /v1" in info.value.hint


# --- settings --------------------------------------------------------------------------
def test_openai_entries_are_recognised_and_normalised() -> None:
    s = load_settings(
        OC_OLLAMA_HOSTS="gpu1, openai:http://0.0.0.0:8000/v1/ ,OPENAI:https://api.openai.com/v1,"
        "openai:11434",
        OC_OPENAI_API_KEY="sk-secret",
    )
    assert s.model_hosts == [
        "http://gpu1:11434",
        "openai:http://127.0.0.1:8000/v1",
        "openai:https://api.openai.com/v1",
        "http://openai:11434",  # a host named openai, port 11434
    ]
    assert s.openai_api_key is not None and "sk-secret" in s.secret_values()
    assert "sk-secret" not in repr(s)
    single = load_settings(OLLAMA_HOST="openai:http://127.0.0.1:1234/v1")
    assert single.model_hosts == ["openai:http://127.0.0.1:1234/v1"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OC_OLLAMA_HOSTS", "http://gpu1:11434,openai:gpu2:8000/v1"),
        ("OLLAMA_HOST", "openai:ftp://gpu2/v1"),
        ("OLLAMA_HOST", "openai:http://"),
    ],
)
def test_bad_openai_entry_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    assert (
        lines[1]
        .strip()
        .startswith(
            f"{name}: Value error, expected openai:http://host:port/v1 or openai:https://host/v1"
        )
    )


# --- pools of both kinds ---------------------------------------------------------------
async def test_mixed_pool_balances_when_both_are_up(
    fake_ollama: FakeOllama, fake_openai: FakeOpenAI
) -> None:
    fake_ollama.reply("from ollama", delay=0.3)
    fake_openai.reply("from openai", delay=0.3)
    async with OllamaPool([fake_ollama.url, fake_openai.entry]) as pool:
        answers = await asyncio.gather(*(pool.chat("qwen3:8b", USER) for _ in range(2)))
        check = await pool.check_model("qwen3:8b")
    assert sorted(a.content for a in answers) == ["from ollama", "from openai"]
    assert len(fake_ollama.chats) == len(fake_openai.chats) == 1
    assert check.ok and check.context_length == 32768  # the one server that reports it


async def test_mixed_pool_fails_over_both_ways(
    fake_ollama: FakeOllama, fake_openai: FakeOpenAI
) -> None:
    fake_ollama.responder = lambda body: Reply("from ollama", delay=0.2)
    fake_openai.responder = lambda body: Reply("from openai")
    async with OllamaPool([fake_ollama.url, fake_openai.entry], probe_interval=60) as pool:
        await fake_ollama.stop()
        first = [(await pool.chat("qwen3:8b", USER)).content for _ in range(2)]
        assert pool.healthy == {fake_ollama.url: False, fake_openai.entry: True}
        await fake_ollama.start(int(fake_ollama.url.rsplit(":", 1)[1]))
        await fake_openai.stop()
        await pool.probe()  # Ollama answers again and is back in rotation
        assert pool.healthy == {fake_ollama.url: True, fake_openai.entry: True}
        # Two at once: the second goes to the idle OpenAI server, finds it down, fails over.
        chats = (pool.chat("qwen3:8b", USER) for _ in range(2))
        second = [r.content for r in await asyncio.gather(*chats)]
        assert pool.healthy == {fake_ollama.url: True, fake_openai.entry: False}
        assert (await pool.embed("nomic-embed-text", ["x"]))[0]
    assert first == ["from openai"] * 2
    assert second == ["from ollama"] * 2


async def test_server_error_on_the_openai_server_is_retried_on_ollama(
    fake_ollama: FakeOllama, fake_openai: FakeOpenAI
) -> None:
    fake_openai.fail(503, "overloaded")
    fake_ollama.reply("from ollama")
    async with OllamaPool([fake_openai.entry, fake_ollama.url]) as pool:
        assert (await pool.chat("qwen3:8b", USER)).content == "from ollama"
    assert len(fake_openai.chats) == 1


# --- full turns through the real App ---------------------------------------------------
async def test_tool_round_trip_through_the_agent_graph(
    make_settings: Callable[..., Settings], fake_openai: FakeOpenAI
) -> None:
    fake_openai.call_tool("calculate", expression="6*7")
    fake_openai.reply("It is 42.")
    settings = make_settings(OLLAMA_HOST=fake_openai.entry)
    async with Harness(settings) as h:
        assert h.app.model_status == "ok"
        answer = await h.say("what is six times seven?")
    assert answer == "It is 42."
    first, second = fake_openai.chats
    assert first["model"] == settings.model
    assert first["messages"][0]["role"] == "system"
    assert first["messages"][-1] == {"role": "user", "content": "what is six times seven?"}
    assert {t["function"]["name"] for t in first["tools"]} >= {"calculate", "current_time"}
    assert not {"options", "keep_alive", "num_ctx"} & first.keys()
    call_msg, result = second["messages"][-2:]
    (call,) = call_msg["tool_calls"]
    assert call_msg["role"] == "assistant"
    assert call["function"] == {"name": "calculate", "arguments": '{"expression":"6*7"}'}
    assert result == {"role": "tool", "tool_call_id": call["id"], "content": "42"}


async def test_malformed_tool_call_in_a_turn_is_an_apology_not_a_crash(
    make_settings: Callable[..., Settings], fake_openai: FakeOpenAI
) -> None:
    fake_openai.script.append(
        Reply(tool_calls=[{"function": {"name": "calculate", "arguments": "{oops"}}])
    )
    async with Harness(make_settings(OLLAMA_HOST=fake_openai.entry)) as h:
        assert await h.say("compute") == APOLOGY


async def test_turns_fail_over_from_ollama_to_an_openai_server(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = lambda body: Reply("from the openai server")
    settings = make_settings(
        OC_OLLAMA_HOSTS=f"{fake_ollama.url},{fake_openai.entry}", OC_MODEL_RETRY_SECONDS=0
    )
    async with Harness(settings) as h:
        await fake_ollama.stop()
        answers = [await h.say(f"q{i}") for i in range(3)]
    assert answers == ["from the openai server"] * 3


# --- doctor ----------------------------------------------------------------------------
async def test_doctor_checks_an_openai_server(
    make_settings: Callable[..., Settings],
) -> None:
    async with FakeOpenAI(api_key="sk-right") as fake:
        lines: list[str] = []
        await run_doctor(
            make_settings(OLLAMA_HOST=fake.entry, OC_OPENAI_API_KEY="sk-right"),
            echo=lines.append,
        )
        assert f"[ok  ] openai server: OpenAI-compatible API, 2 models at {fake.url}" in lines
        assert any(line.startswith("[ok  ] model: model 'qwen3:8b' is served by") for line in lines)
        assert any(line.startswith("[ok  ] embed model: ") for line in lines)

        lines.clear()
        await run_doctor(
            make_settings(OLLAMA_HOST=fake.entry, OC_OPENAI_API_KEY="sk-right", OC_MODEL="gpt-9"),
            echo=lines.append,
        )
        (model,) = [line for line in lines if line[7:].startswith("model: ")]
        assert model.startswith("[FAIL] model: model 'gpt-9' is not served by")
        assert "Set OC_MODEL" in model

        lines.clear()
        await run_doctor(make_settings(OLLAMA_HOST=fake.entry), echo=lines.append)
        (server,) = [line for line in lines if " openai server: " in line]
        assert server.startswith("[FAIL] openai server: ") and "answered 401" in server
        assert "set OC_OPENAI_API_KEY" in server
