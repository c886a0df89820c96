"""A turn's images reach the model in each server's wire format; a model without vision is told.

The real clients (``OllamaClient``, ``OpenAIClient``) run the compiled graph against the fake
servers, which record the request bodies as they arrive on the wire.
"""

from __future__ import annotations

import base64
import functools
import io
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from langgraph.checkpoint.memory import InMemorySaver
from PIL import Image

from opencomputer.bot.media.images import prepare_image
from opencomputer.bot.ollama import OllamaClient, has_vision
from opencomputer.bot.openai_compat import OpenAIClient, data_url, openai_messages
from opencomputer.bot.testing import FakeOllama, FakeOpenAI
from opencomputer.bot.tools import tool
from opencomputer.graphs.agent.graph import build_graph
from opencomputer.graphs.agent.images import IMAGE_PLACEHOLDER, no_vision_note
from opencomputer.graphs.agent.runner import GraphAgent
from opencomputer.graphs.agent.state import TurnContext


@functools.cache
def photo_b64() -> str:
    out = io.BytesIO()
    Image.new("RGB", (1800, 1200), (200, 30, 30)).save(out, format="JPEG")
    data, mime = prepare_image(out.getvalue())
    assert mime == "image/jpeg"
    return base64.b64encode(data).decode()


def ctx(images: list[str], tools: list[Any] | None = None) -> TurnContext:
    return TurnContext(
        model="qwen3:8b", system_prompt="BASE", num_ctx=8192, images=images, tools=tools or []
    )


@pytest.fixture
async def vision_ollama() -> AsyncIterator[FakeOllama]:
    async with FakeOllama(capabilities=("completion", "tools", "vision")) as fake:
        yield fake


async def test_ollama_gets_images_on_the_message_for_this_turn_only(
    vision_ollama: FakeOllama,
) -> None:
    image = photo_b64()

    @tool
    async def look_closer() -> str:
        """Zoom in."""
        return "zoomed"

    vision_ollama.call_tool("look_closer")
    vision_ollama.reply("a red square")
    async with OllamaClient(vision_ollama.url) as llm:
        agent = GraphAgent(build_graph(llm=llm, checkpointer=InMemorySaver()))
        outcome = await agent.run_turn(
            "t", "what is this?", ctx([image], [look_closer.__oc_tool__])
        )
        assert outcome.text == "a red square"
        await agent.run_turn("t", "and now?", ctx([]))
        history = await agent.history("t")
    first, after_tool, next_turn = vision_ollama.chats
    for body in (first, after_tool):  # every model round of the turn sees the image
        users = [m for m in body["messages"] if m["role"] == "user"]
        assert users[-1] == {
            "role": "user",
            "content": f"what is this?\n{IMAGE_PLACEHOLDER}",
            "images": [image],
        }
    assert all("images" not in m for m in next_turn["messages"])  # not re-sent later
    assert history[0] == {"role": "user", "content": f"what is this?\n{IMAGE_PLACEHOLDER}"}
    assert all("images" not in m for m in history)  # the checkpoint holds no image bytes
    shows = [r for r in vision_ollama.requests if r["path"] == "/api/show"]
    assert len(shows) == 1  # capability asked once, then cached


async def test_ollama_model_without_vision_gets_a_note(fake_ollama: FakeOllama) -> None:
    async with OllamaClient(fake_ollama.url) as llm:
        assert not await llm.supports_vision("qwen3:8b")
        agent = GraphAgent(build_graph(llm=llm, checkpointer=InMemorySaver()))
        await agent.run_turn("t", "", ctx([photo_b64(), photo_b64()]))
    (body,) = fake_ollama.chats
    message = body["messages"][-1]
    assert "images" not in message
    assert message["content"] == (
        f"{IMAGE_PLACEHOLDER} {IMAGE_PLACEHOLDER}\n{no_vision_note('qwen3:8b', 2)}"
    )
    assert "cannot see images" in message["content"]


async def test_openai_server_gets_content_parts_with_a_data_url() -> None:
    image = photo_b64()
    async with FakeOpenAI() as fake, OpenAIClient(fake.url) as llm:
        agent = GraphAgent(build_graph(llm=llm, checkpointer=InMemorySaver()))
        await agent.run_turn("t", "describe", ctx([image]))
    (body,) = fake.chats
    assert body["messages"][-1] == {
        "role": "user",
        "content": [
            {"type": "text", "text": f"describe\n{IMAGE_PLACEHOLDER}"},
            {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{image}"}},
        ],
    }
    assert isinstance(body["messages"][0]["content"], str)  # other messages stay plain


class LMStudioLike(FakeOpenAI):
    """A server whose ``/models`` entries say what each model is (LM Studio's ``type``)."""

    async def _models(self, _request: web.Request) -> web.Response:
        kinds = {"qwen3:8b": "llm", "gemma3:4b": "vlm"}
        data = [{"id": m, "object": "model", "type": kinds[m]} for m in self.models]
        return web.json_response({"object": "list", "data": data})


async def test_openai_server_that_reports_types_decides_vision() -> None:
    async with (
        LMStudioLike(models=("qwen3:8b", "gemma3:4b")) as fake,
        OpenAIClient(fake.url) as llm,
    ):
        assert not await llm.supports_vision("qwen3:8b")
        assert await llm.supports_vision("gemma3:4b")
        agent = GraphAgent(build_graph(llm=llm, checkpointer=InMemorySaver()))
        await agent.run_turn("t", "see?", ctx([photo_b64()]))
    (body,) = fake.chats
    assert body["messages"][-1]["content"] == (
        f"see?\n{IMAGE_PLACEHOLDER}\n{no_vision_note('qwen3:8b', 1)}"
    )


async def test_unreachable_server_cannot_say_and_gets_the_note() -> None:
    fake = FakeOllama(capabilities=("completion", "vision"))
    url = await fake.start()
    await fake.stop()
    async with OllamaClient(url) as llm:
        from opencomputer.graphs.agent.images import VisionCache

        assert not await VisionCache().supports(llm, "qwen3:8b")


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        ({"capabilities": ["completion", "vision"]}, True),
        ({"capabilities": ["completion", "tools"]}, False),
        ({"capabilities": ["completion", "multimodal"]}, True),  # llama.cpp server
        ({"projector_info": {"clip.has_vision_encoder": True}}, True),  # Ollama before 0.6
        ({"details": {"families": ["llama", "clip"]}}, True),
        ({"architecture": {"input_modalities": ["text", "image"]}}, True),  # OpenRouter
        ({"id": "qwen3:8b", "object": "model", "type": "llm"}, False),  # LM Studio
        ({"id": "gpt-x", "object": "model"}, True),  # OpenAI, vLLM: unknown, the server decides
        ({"details": {"families": ["qwen3"]}}, False),  # Ollama without a projector
    ],
)
def test_has_vision_reads_each_servers_description(info: dict[str, Any], expected: bool) -> None:
    assert has_vision(info) is expected


def test_data_urls_carry_the_real_type() -> None:
    png = io.BytesIO()
    Image.new("RGBA", (2, 2)).save(png, format="PNG")
    b64 = base64.b64encode(png.getvalue()).decode()
    assert data_url(b64) == f"data:image/png;base64,{b64}"
    assert openai_messages([{"role": "user", "content": "", "images": [b64]}]) == [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(b64)}}]}
    ]


async def test_a_pool_without_supports_vision_reads_show() -> None:
    from opencomputer.bot.ollama_pool import OllamaPool

    async with FakeOllama(capabilities=("completion", "vision")) as fake:
        pool = OllamaPool([fake.url])
        async with pool:
            from opencomputer.graphs.agent.images import VisionCache

            assert await VisionCache().supports(pool, "qwen3:8b")
