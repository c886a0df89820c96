from __future__ import annotations

import socket

import ollama
import pytest

from opencomputer.bot.ollama import OllamaClient, OllamaError, OllamaUnavailable
from opencomputer.bot.testing import FakeOllama, Reply


async def test_chat_streams_tokens_and_sends_options(fake_ollama: FakeOllama) -> None:
    fake_ollama.reply("Hello there, friend", chunks=4)
    tokens: list[str] = []

    async def on_token(t: str) -> None:
        tokens.append(t)

    async with OllamaClient(fake_ollama.url) as client:
        result = await client.chat(
            "qwen3:8b",
            [{"role": "user", "content": "hi"}],
            options={"num_ctx": 4096},
            keep_alive="5m",
            on_token=on_token,
        )
    assert result.content == "Hello there, friend"
    assert len(tokens) == 4 and "".join(tokens) == result.content
    assert result.done_reason == "stop" and result.completion_tokens > 0
    body = fake_ollama.chats[0]
    assert body["options"] == {"num_ctx": 4096}
    assert body["keep_alive"] == "5m" and body["stream"] is True


async def test_tool_calls_are_parsed(fake_ollama: FakeOllama) -> None:
    fake_ollama.call_tool("calculate", expression="1+1")
    async with OllamaClient(fake_ollama.url) as client:
        result = await client.chat("qwen3:8b", [{"role": "user", "content": "1+1?"}])
    assert [(c.name, c.arguments) for c in result.tool_calls] == [
        ("calculate", {"expression": "1+1"})
    ]


async def test_missing_model_says_what_to_pull(fake_ollama: FakeOllama) -> None:
    async with OllamaClient(fake_ollama.url) as client:
        with pytest.raises(OllamaError) as info:
            await client.chat("llama9:70b", [{"role": "user", "content": "x"}])
        check = await client.check_model("llama9:70b")
    assert info.value.status == 404
    assert "ollama pull llama9:70b" in info.value.hint
    assert not check.ok and "ollama pull llama9:70b" in check.message


async def test_model_without_tools_is_refused() -> None:
    async with FakeOllama(capabilities=("completion",)) as fake, OllamaClient(fake.url) as client:
        check = await client.check_model("qwen3:8b")
    assert not check.ok and "does not support tool calling" in check.message


async def test_context_length_comes_from_show(fake_ollama: FakeOllama) -> None:
    async with OllamaClient(fake_ollama.url) as client:
        check = await client.check_model("qwen3:8b")
        assert check.ok and check.context_length == 32768
        assert "qwen3:8b" in await client.tags()
        assert (await client.version()).startswith("0.")
        vectors = await client.embed("nomic-embed-text", ["a", "b"])
    assert len(vectors) == 2 and len(vectors[0]) == 8


async def test_error_line_in_stream_raises(fake_ollama: FakeOllama) -> None:
    fake_ollama.script.append(Reply("partial", error="model runner crashed"))
    async with OllamaClient(fake_ollama.url) as client:
        with pytest.raises(OllamaError, match="model runner crashed"):
            await client.chat("qwen3:8b", [{"role": "user", "content": "x"}])


async def test_server_dying_mid_answer_is_unavailable_not_a_crash(
    fake_ollama: FakeOllama,
) -> None:
    """A connection cut in the middle of the stream means the server is gone: the pool fails
    over or waits for it, and the runtime keeps the message for /retry."""
    fake_ollama.script.append(Reply("half an ans", hang_up=True))
    tokens: list[str] = []

    async def on_token(token: str) -> None:
        tokens.append(token)

    async with OllamaClient(fake_ollama.url) as client:
        with pytest.raises(OllamaUnavailable):
            await client.chat("qwen3:8b", [{"role": "user", "content": "x"}], on_token=on_token)
    assert "".join(tokens) == "half an ans"


async def test_unreachable_server_is_a_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with OllamaClient(f"http://127.0.0.1:{port}", timeout=5) as client:
        with pytest.raises(OllamaUnavailable) as info:
            await client.version()
    assert f"cannot reach Ollama at http://127.0.0.1:{port}" in str(info.value)
    assert "ollama serve" in info.value.hint


async def test_fake_speaks_the_protocol_the_official_client_expects(
    fake_ollama: FakeOllama,
) -> None:
    """The stock `ollama` client parses the fake's stream, tool calls and errors unmodified."""
    fake_ollama.reply("streamed answer")
    fake_ollama.call_tool("current_time", timezone="UTC")
    client = ollama.AsyncClient(host=fake_ollama.url)
    try:
        await _exercise(client, fake_ollama)
    finally:
        await client.close()


async def _exercise(client: ollama.AsyncClient, fake_ollama: FakeOllama) -> None:
    parts = [
        p.message.content
        async for p in await client.chat(
            "qwen3:8b", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    ]
    assert "".join(parts) == "streamed answer"
    response = await client.chat("qwen3:8b", messages=[{"role": "user", "content": "time?"}])
    assert response.message.tool_calls[0].function.name == "current_time"
    with pytest.raises(ollama.ResponseError):
        await client.chat("nope:1b", messages=[{"role": "user", "content": "x"}])
    shown = await client.show("qwen3:8b")
    assert "tools" in (shown.capabilities or [])
