"""MCP servers' tools reach the agent: real runtime, FakeOllama scripting the tool calls."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from opencomputer.bot.plugins.feature import PluginSystem
from opencomputer.bot.plugins.mcp import parse_servers
from opencomputer.bot.testing.harness import Harness
from tests.plugins.conftest import offered, tool_results

SERVER = str(Path(__file__).with_name("mcp_server.py"))


def _setting(**extra: object) -> str:
    return json.dumps(
        {
            "calc": {"command": sys.executable, "args": [SERVER], **extra},
            "ghost": {"command": "/nonexistent/mcp-server"},
        }
    )


async def test_agent_calls_mcp_tools(make_settings, fake_ollama):
    fake_ollama.call_tool("calc__add", a=2, b=40)
    fake_ollama.call_tool("calc__fail")
    fake_ollama.reply("The answer is 42.")
    async with Harness(make_settings(OC_MCP_SERVERS=_setting())) as h:
        question = await h.say("add 2 and 40")
        # An MCP result is outside content, and an MCP tool's effects are undeclared: the
        # second call waits for the person's yes (bot/effects.py).
        assert "`calc__fail` {} (undeclared effects after outside content)" in question
        answer = await h.command("approve")
        system: PluginSystem = h.app.extras["plugins"]
        assert system.mcp is not None
        errors = {s.name: s.error for s in system.mcp.servers}
    assert answer == "The answer is 42."
    results = tool_results(fake_ollama)
    assert results[0] == "42"
    assert results[1].startswith("error:") and "the tool broke on purpose" in results[1]
    assert {"calc__add", "calc__shout", "calc__fail", "calculate"} <= offered(fake_ollama)
    spec = next(t for t in fake_ollama.chats[0]["tools"] if t["function"]["name"] == "calc__add")
    assert spec["function"]["parameters"]["properties"]["a"]["type"] == "integer"
    assert errors["calc"] is None and errors["ghost"]  # one bad server does not stop the other


async def test_mcp_tools_follow_enablement_and_danger(make_settings, fake_ollama):
    async with Harness(make_settings(OC_MCP_SERVERS=_setting(dangerous=["fail"]))) as h:
        system: PluginSystem = h.app.extras["plugins"]
        await system.enablement.set("mcp:calc", False, scope="test:bob")
        await h.say("hi", user="bob")
        bob = offered(fake_ollama)
        await h.say("hi", user="alice")
        alice = offered(fake_ollama)
        assert system.mcp is not None
        flags = {t.name: t.dangerous for t in system.mcp.tools()}
    assert not any(name.startswith("calc__") for name in bob)
    assert "calc__shout" in alice
    assert flags == {"calc__add": False, "calc__shout": False, "calc__fail": True}


def test_bad_settings_are_one_line():
    for raw, message in [
        ("{", "not valid JSON"),
        ('{"a": {}}', "either 'command' or 'url'"),
        ('{"a b": {"url": "http://x"}}', "bad entry"),
    ]:
        try:
            parse_servers(raw)
        except ValueError as exc:
            assert message in str(exc)
        else:
            raise AssertionError(raw)


async def test_mcp_server_over_http(make_settings, fake_ollama, tmp_path):
    import asyncio
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        SERVER,
        "http",
        str(port),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        for _ in range(150):  # a subprocess's readiness: nothing to await but its port
            try:
                _r, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                await writer.wait_closed()
                break
            except OSError:
                await asyncio.sleep(0.1)
        setting = json.dumps({"web": {"url": f"http://127.0.0.1:{port}/mcp"}})
        fake_ollama.call_tool("web__shout", text="hello")
        fake_ollama.reply("ok")
        async with Harness(make_settings(OC_MCP_SERVERS=setting)) as h:
            await h.say("shout hello")
            system: PluginSystem = h.app.extras["plugins"]
            assert system.mcp is not None and system.mcp.servers[0].error is None
        assert tool_results(fake_ollama) == ["HELLO!"]
    finally:
        proc.terminate()
        await proc.wait()
