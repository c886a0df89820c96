"""OC_NUM_PREDICT caps an answer's length: full turns through the real App against fake
Ollama and OpenAI-compatible servers, asserting what each request body carries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from opencomputer.bot.config import ConfigError, Settings, load_settings
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.fake_openai import FakeOpenAI
from opencomputer.bot.testing.harness import Harness


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    """A fake OpenAI-compatible server on a free loopback port."""
    async with FakeOpenAI() as fake:
        yield fake


async def test_ollama_gets_num_predict_in_every_turn_request(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    fake_ollama.call_tool("calculate", expression="6*7")
    fake_ollama.reply("It is 42.")
    async with Harness(make_settings(OC_NUM_PREDICT="96", OC_TEMPERATURE="0.3")) as h:
        assert await h.say("six times seven?") == "It is 42."
    turns = [body for body in fake_ollama.chats if body.get("tools")]
    assert len(turns) == 2  # the tool call and the answer after its result
    for body in turns:
        assert body["options"]["num_predict"] == 96
        assert body["options"]["temperature"] == 0.3


async def test_unset_means_no_cap_sent_to_ollama(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply("Hello.")
    async with Harness(make_settings()) as h:
        assert await h.say("hi") == "Hello."
    assert fake_ollama.chats
    for body in fake_ollama.chats:
        assert "num_predict" not in body.get("options", {})


async def test_openai_compatible_server_gets_max_tokens(
    make_settings: Callable[..., Settings], fake_openai: FakeOpenAI
) -> None:
    fake_openai.reply("Short answer.")
    settings = make_settings(OLLAMA_HOST=fake_openai.entry, OC_NUM_PREDICT="64")
    async with Harness(settings) as h:
        assert await h.say("tell me everything") == "Short answer."
    [body] = fake_openai.chats
    assert body["max_tokens"] == 64
    assert not {"options", "num_predict"} & body.keys()  # Ollama's name is not OpenAI's


async def test_openai_compatible_server_gets_no_max_tokens_when_unset(
    make_settings: Callable[..., Settings], fake_openai: FakeOpenAI
) -> None:
    fake_openai.reply("Long answer.")
    async with Harness(make_settings(OLLAMA_HOST=fake_openai.entry)) as h:
        assert await h.say("tell me everything") == "Long answer."
    [body] = fake_openai.chats
    assert "max_tokens" not in body


@pytest.mark.parametrize("value", ["0", "-1", "lots"])
def test_a_bad_cap_is_refused_at_start(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(OC_NUM_PREDICT=value)
    assert "OC_NUM_PREDICT" in str(caught.value)
