"""The built-in plugins, each against a real local peer: a loopback web server, Mosquitto."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from opencomputer.bot.plugins.discovery import discover
from opencomputer.bot.plugins.loader import PluginHost
from opencomputer.bot.plugins.sandbox import CallLimits, Sandbox
from opencomputer.bot.tools import ToolError

IN_CI = bool(os.environ.get("CI"))
MQTT_HOST, MQTT_PORT = "127.0.0.1", 1883

PAGE = """<!doctype html><html><head><title>Plugin day</title><style>p{color:red}</style>
<script>var secret = 1;</script></head><body><h1>Plugins</h1><p>First&nbsp;paragraph.</p>
<ul><li>one</li><li>two</li></ul></body></html>"""


def builtin_host(tmp_path: Path, environ: dict[str, str] | None = None) -> PluginHost:
    found = discover([], environ=environ or {}, packages=False)
    return PluginHost(
        found,
        sandbox=Sandbox(),
        data_root=tmp_path / "data" / "plugins",
        limits=CallLimits(timeout=15),
    )


@pytest.fixture
async def site() -> AsyncIterator[str]:
    async def page(_r: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def missing(_r: web.Request) -> web.Response:
        return web.Response(status=404, text="nope")

    app = web.Application()
    app.router.add_get("/page", page)
    app.router.add_get("/missing", missing)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    yield f"http://127.0.0.1:{tcp._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    await runner.cleanup()


async def test_web_fetches_readable_text_over_loopback(tmp_path, site):
    public_only = builtin_host(tmp_path)
    with pytest.raises(ToolError, match=r"private address 127\.0\.0\.1"):
        await public_only.call_tool("web", "fetch_url", {"url": f"{site}/page"})
    host = builtin_host(tmp_path, {"OC_WEB_PRIVATE_HOSTS": "127.0.0.1, nas.lan"})
    assert host.plugins["web"].manifest.network_hosts(host.plugins["web"].settings) == [
        "*",
        "127.0.0.1",
        "nas.lan",
    ]
    text = await host.call_tool("web", "fetch_url", {"url": f"{site}/page"})
    assert text == "# Plugin day\n\nPlugins\n\nFirst\xa0paragraph.\n\none\n\ntwo"
    assert "secret" not in text and "color" not in text
    with pytest.raises(ToolError, match="HTTP 404"):
        await host.call_tool("web", "fetch_url", {"url": f"{site}/missing"})
    with pytest.raises(ToolError, match=r"only http\(s\) URLs"):
        await host.call_tool("web", "fetch_url", {"url": "file:///etc/passwd"})


async def test_code_runs_python_with_limits(tmp_path):
    host = builtin_host(tmp_path)
    assert await host.call_tool("code", "run_python", {"code": "x = 6\nx * 7"}) == "42\n"
    out = await host.call_tool("code", "run_python", {"code": "import socket\nsocket.socket()"})
    assert "PermissionError: this plugin has no network permission" in out
    out = await host.call_tool("code", "run_python", {"code": "open('/tmp/../etc/shadow').read()"})
    assert "No such file or directory" in out or "PermissionError" in out


def _mqtt_client() -> Any:
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex}")
    try:
        client.connect(MQTT_HOST, MQTT_PORT, keepalive=10)
    except OSError as exc:
        if IN_CI:
            pytest.fail(f"Mosquitto is not reachable on {MQTT_HOST}:{MQTT_PORT}: {exc}")
        pytest.skip(f"Mosquitto is not reachable on {MQTT_HOST}:{MQTT_PORT}: {exc}")
    return client


async def test_home_publishes_and_reads_devices_on_mosquitto(tmp_path):
    client = _mqtt_client()
    prefix = f"oc-test/{uuid.uuid4().hex}"
    devices = {
        "lamp": {"set": f"{prefix}/lamp/set", "state": f"{prefix}/lamp/state"},
        "door": {"state": f"{prefix}/door/state"},
    }
    received: list[str] = []
    arrived = threading.Event()

    def on_message(_c: Any, _u: Any, message: Any) -> None:
        received.append(f"{message.topic}={message.payload.decode()}")
        arrived.set()

    client.on_message = on_message
    client.subscribe(f"{prefix}/lamp/set", qos=1)
    client.loop_start()
    try:
        client.publish(f"{prefix}/door/state", "closed", qos=1, retain=True).wait_for_publish(5)
        env = {"OC_HOME_DEVICES": json.dumps(devices), "OC_HOME_MQTT_HOST": MQTT_HOST}
        host = builtin_host(tmp_path, env)
        listed = await host.call_tool("home", "list_devices", {})
        assert listed == "door: state\nlamp: set, state"
        sent = await host.call_tool("home", "set_device", {"device": "lamp", "value": "ON"})
        assert sent == "Sent ON to lamp."
        assert await asyncio.to_thread(arrived.wait, 5)
        assert received == [f"{prefix}/lamp/set=ON"]
        state = await host.call_tool("home", "device_state", {"device": "door"})
        assert state == "door is closed"
        with pytest.raises(ToolError, match="unknown device 'garage'"):
            await host.call_tool("home", "set_device", {"device": "garage", "value": "OPEN"})
    finally:
        client.publish(f"{prefix}/door/state", b"", retain=True).wait_for_publish(5)
        client.loop_stop()
        client.disconnect()


async def test_home_network_grant_follows_its_broker_setting(tmp_path):
    devices = {"lamp": {"set": "x/set"}}
    env = {"OC_HOME_DEVICES": json.dumps(devices), "OC_HOME_MQTT_HOST": "mqtt.example.org"}
    host = builtin_host(tmp_path, env)
    assert host.plugins["home"].manifest.network_hosts(host.plugins["home"].settings) == [
        "mqtt.example.org:1883"
    ]
    assert "calculator" in host.plugins and "home" in host.plugins
