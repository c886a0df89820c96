"""Plugin tools through the real runtime and graph, the model scripted by FakeOllama."""

from __future__ import annotations

from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.harness import Harness


def _tool_results(fake: FakeOllama) -> list[str]:
    last = fake.chats[-1]["messages"]
    return [m["content"] for m in last if m.get("role") == "tool"]


def _offered(fake: FakeOllama) -> set[str]:
    return {t["function"]["name"] for t in fake.chats[-1].get("tools") or []}


async def test_builtin_tools_are_offered_and_called(settings, fake_ollama) -> None:
    fake_ollama.call_tool("calculate", expression="6*7")
    fake_ollama.reply("It is 42.")
    async with Harness(settings) as h:
        answer = await h.say("what is 6*7?")
    assert answer == "It is 42."
    assert _tool_results(fake_ollama) == ["42"]
    assert {"calculate", "current_time", "run_python", "fetch_url", "add_note"} <= _offered(
        fake_ollama
    )
    assert "set_device" not in _offered(fake_ollama)  # home needs OC_HOME_DEVICES


async def test_endless_loop_is_killed_and_the_chat_gets_an_answer(make_settings, fake_ollama):
    fake_ollama.call_tool("run_python", code="while True:\n    pass")
    fake_ollama.reply("That snippet never finished.")
    async with Harness(make_settings(OC_PLUGIN_TIMEOUT=1.5)) as h:
        answer = await h.say("run an endless loop")
    assert answer == "That snippet never finished."
    (result,) = _tool_results(fake_ollama)
    assert result.startswith("error:") and "time limit" in result, result


async def test_code_plugin_returns_output_and_errors(settings, fake_ollama) -> None:
    fake_ollama.call_tool("run_python", code="print(sum(range(10)))\n1/0")
    fake_ollama.reply("done")
    async with Harness(settings) as h:
        await h.say("run it")
    (result,) = _tool_results(fake_ollama)
    assert result.startswith("45\n") and "ZeroDivisionError" in result, result
