"""``/metrics`` after real turns: model, tool, feedback and connector series with their values."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp

from opencomputer.bot.config import Settings
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.fake_ollama import Reply
from opencomputer.bot.tools import Tool, ToolError
from tests.observability.scrape import HttpHarness, sample

PARAMS = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}


def _add_tools(h: HttpHarness) -> None:
    async def double(x: int) -> str:
        return str(2 * x)

    async def broken(x: int) -> str:
        raise ToolError(f"cannot handle {x}")

    # declared without effects: a second round after reading a result asks no approval
    no = frozenset[str]()
    h.app.tools.add(Tool("double", "Double a number.", PARAMS, double, effects=no), plugin="maths")
    h.app.tools.add(Tool("broken", "Always fails.", PARAMS, broken, effects=no), plugin="faulty")


async def test_turn_with_tools_exports_model_tool_and_connector_series(
    http_harness: HttpHarness, fake_ollama: FakeOllama, settings: Settings
) -> None:
    h = http_harness
    _add_tools(h)
    fake_ollama.call_tool("double", x=21)
    fake_ollama.call_tool("broken", x=1)
    fake_ollama.reply("It is 42.")  # 9 characters: the fake reports 2 completion tokens
    assert await h.say("what is 21 doubled?") == "It is 42."

    m = await h.scrape()
    model = settings.model
    assert sample(m, "oc_turns_total", platform="test", outcome="ok") == 1
    assert sample(m, "oc_turn_seconds_count") == 1
    # three chat calls: two tool rounds and the answer; 10 prompt tokens each (the fake's figure)
    assert sample(m, "oc_model_requests_total", model=model, outcome="ok") == 3
    assert sample(m, "oc_model_seconds_count", model=model) == 3
    assert 0 < (sample(m, "oc_model_seconds_sum", model=model) or 0) < 30
    assert sample(m, "oc_model_tokens_total", model=model, kind="prompt") == 30
    assert sample(m, "oc_model_tokens_total", model=model, kind="completion") == 1 + 1 + 2
    # tools per plugin: one success, one failure
    assert sample(m, "oc_tool_calls_total", plugin="maths", tool="double") == 1
    assert sample(m, "oc_tool_errors_total", plugin="maths", tool="double") is None
    assert sample(m, "oc_tool_calls_total", plugin="faulty", tool="broken") == 1
    assert sample(m, "oc_tool_errors_total", plugin="faulty", tool="broken") == 1
    assert sample(m, "oc_tool_seconds_count", plugin="maths") == 1
    # what the tools answered reached the model
    last = fake_ollama.chats[-1]["messages"]
    tool_results = [msg["content"] for msg in last if msg["role"] == "tool"]
    assert tool_results == ["42", "error: cannot handle 1"]
    # connector state: one state is 1, the others 0
    assert sample(m, "oc_connector_state", platform="test", state="connected") == 1
    assert sample(m, "oc_connector_state", platform="test", state="failed") == 0
    assert sample(m, "oc_connector_up", platform="test") == 1
    assert sample(m, "oc_inbound_events_total", platform="test", type="message") == 1
    assert sample(m, "oc_queue_depth") == 0
    # single-process mode: no stream backlog is measured (the gauges exist at 0)
    assert sample(m, "oc_stream_lag") == 0


async def test_connector_state_follows_the_connector(http_harness: HttpHarness) -> None:
    h = http_harness
    await h.conn.stop()
    m = await h.scrape()
    assert sample(m, "oc_connector_state", platform="test", state="stopped") == 1
    assert sample(m, "oc_connector_state", platform="test", state="connected") == 0
    assert sample(m, "oc_connector_up", platform="test") == 0


async def test_model_errors_are_counted(
    http_harness: HttpHarness, fake_ollama: FakeOllama, settings: Settings
) -> None:
    h = http_harness
    fake_ollama.script.append(Reply(status=400, error="bad request"))
    answer = await h.say("hello")
    assert "could not reach my language model" in answer
    m = await h.scrape()
    assert sample(m, "oc_model_requests_total", model=settings.model, outcome="error") == 1
    assert sample(m, "oc_model_requests_total", model=settings.model, outcome="ok") is None
    assert sample(m, "oc_turns_total", platform="test", outcome="model_error") == 1


async def test_feedback_scores_count_ratings_of_replies_only(
    http_harness: HttpHarness, fake_ollama: FakeOllama
) -> None:
    h = http_harness
    fake_ollama.reply("first")
    await h.say("one")
    first = h.last_message_id
    fake_ollama.reply("second")
    await h.say("two")
    second = h.last_message_id
    await h.react(first, "👍")
    await h.react(second, "+1")  # Slack's spelling of the same rating
    await h.react(second, "👎")
    await h.react(first, "🦄")  # not a rating
    await h.react("u-not-ours", "👍")  # not one of our replies
    await h.react(first, "👍", added=False)  # taking a rating back is not a new one
    await h.app.runtime.wait_idle()

    m = await h.scrape()
    assert sample(m, "oc_feedback_total", platform="test", score="positive") == 2
    assert sample(m, "oc_feedback_total", platform="test", score="negative") == 1
    assert sample(m, "oc_inbound_events_total", platform="test", type="reaction") == 6


async def test_health_and_metrics_share_the_server(http_harness: HttpHarness) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{http_harness.base_url}/healthz") as resp:
            assert resp.status == 200
            assert await resp.json() == {"status": "ok"}
    m = await http_harness.scrape()
    names = {name for name, _labels in m}
    for series in ("oc_stream_pending", "oc_queue_depth", "oc_turn_seconds_count"):
        assert series in names


async def test_metrics_without_http_do_not_break_the_app(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    from opencomputer.bot.testing.harness import Harness

    async with Harness(make_settings()) as h:
        fake_ollama.reply("ok")
        assert await h.say("hi") == "ok"
        text = h.app.render_metrics().decode()
    assert 'oc_model_requests_total{model="qwen3:8b",outcome="ok"} 1.0' in text
