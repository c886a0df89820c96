"""The sandbox enforces the manifest: network, files, secrets, processes, limits."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from opencomputer.bot.plugins.discovery import discover
from opencomputer.bot.plugins.loader import PluginHost
from opencomputer.bot.plugins.sandbox import CallLimits, Sandbox, SandboxPolicy
from opencomputer.bot.tools import ToolError
from tests.plugins.conftest import PROBE, PROBE_TOOLS, make_plugin


def make_host(plugin_dir: Path, data: Path, mode: str = "on", **limits: Any) -> PluginHost:
    found = discover([str(plugin_dir)], environ={}, packages=False)
    sandbox = Sandbox(mode=mode, protect=[data, Path(".env").resolve()])
    return PluginHost(
        found,
        sandbox=sandbox,
        data_root=data / "plugins",
        limits=CallLimits(**{"timeout": 10.0, **limits}),
    )


@pytest.fixture
async def web_server() -> AsyncIterator[int]:
    async def hello(_request: web.Request) -> web.Response:
        return web.Response(text="hello from loopback")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    await runner.cleanup()


@pytest.fixture
async def site_port(web_server: int) -> AsyncIterator[int]:
    """A second loopback server (a service the plugin was not granted)."""
    server = await asyncio.start_server(lambda _r, w: w.close(), "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def test_without_network_permission_no_socket_opens(plugin_dir, tmp_path, web_server):
    make_plugin(plugin_dir, "probe", PROBE, tools=PROBE_TOOLS)
    host = make_host(plugin_dir, tmp_path / "data")
    with pytest.raises(ToolError, match="no network permission"):
        await host.call_tool("probe", "connect", {"host": "127.0.0.1", "port": web_server})
    argv = host.sandbox.argv(host._policy(host.plugins["probe"], {"network": []}))
    assert "--unshare-all" in argv and "--share-net" not in argv  # no network namespace either


FETCH = (
    PROBE
    + """
from opencomputer.bot.plugins.api import PluginContext

@tool
async def fetch(url: str, ctx: PluginContext) -> str:
    \"\"\"Fetch a URL with ctx.http (through the egress proxy in the sandbox).

    Args:
        url: URL.
    \"\"\"
    return (await ctx.http.get(url)).text
"""
)
FETCH_TOOLS = [*PROBE_TOOLS, {"name": "fetch"}]


async def test_granted_host_is_reachable_and_no_other(plugin_dir, tmp_path, web_server):
    make_plugin(
        plugin_dir, "probe", FETCH, tools=FETCH_TOOLS, permissions={"network": ["127.0.0.1"]}
    )
    make_plugin(
        plugin_dir,
        "elsewhere",
        PROBE,
        tools=PROBE_TOOLS,
        permissions={"network": ["api.example.org"]},
    )
    host = make_host(plugin_dir, tmp_path / "data")
    url = f"http://127.0.0.1:{web_server}/"
    assert await host.call_tool("probe", "fetch", {"url": url}) == "hello from loopback"
    with pytest.raises(ToolError, match="only through its egress proxy"):  # no direct route
        await host.call_tool("probe", "connect", {"host": "127.0.0.1", "port": web_server})
    with pytest.raises(ToolError, match=r"no network permission for 127\.0\.0\.1"):
        await host.call_tool("elsewhere", "connect", {"host": "127.0.0.1", "port": web_server})
    with pytest.raises(ToolError, match="no network permission for localhost"):
        await host.call_tool("elsewhere", "connect", {"host": "localhost", "port": web_server})


async def test_any_host_means_public_hosts_only(plugin_dir, tmp_path, web_server):
    make_plugin(plugin_dir, "anywhere", PROBE, tools=PROBE_TOOLS, permissions={"network": ["*"]})
    host = make_host(plugin_dir, tmp_path / "data")
    for target in ("127.0.0.1", "localhost", "169.254.169.254", "10.1.2.3"):
        with pytest.raises(ToolError, match="may not connect to the private address"):
            await host.call_tool("anywhere", "connect", {"host": target, "port": web_server})


async def test_server_secrets_env_and_database_are_out_of_reach(plugin_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:very-secret")
    monkeypatch.setenv("OC_DATABASE_URL", "postgresql://u:pw@db/x")
    dotenv = (tmp_path / ".env").resolve()
    dotenv.write_text("TELEGRAM_BOT_TOKEN=123:very-secret\n")
    data = tmp_path / "data"
    data.mkdir()
    (data / "opencomputer.db").write_text("pretend database")
    make_plugin(plugin_dir, "probe", PROBE, tools=PROBE_TOOLS)
    host = make_host(plugin_dir, data)
    for secret in (dotenv, data / "opencomputer.db"):
        with pytest.raises(ToolError, match="No such file"):
            await host.call_tool("probe", "read", {"path": str(secret)})
    names = (await host.call_tool("probe", "environment", {})).split(",")
    assert "TELEGRAM_BOT_TOKEN" not in names and "OC_DATABASE_URL" not in names
    assert set(names) <= {
        "PATH",
        "HOME",
        "LANG",
        "PYTHONPATH",
        "PYTHONDONTWRITEBYTECODE",
        "LC_CTYPE",
        "PWD",
    }


async def test_secrets_inside_a_granted_folder_are_masked(plugin_dir, tmp_path):
    shared = tmp_path / "shared"
    data = shared / "data"
    data.mkdir(parents=True)
    (data / "opencomputer.db").write_text("pretend database")
    (shared / "readme.txt").write_text("public")
    make_plugin(
        plugin_dir,
        "probe",
        PROBE,
        tools=PROBE_TOOLS,
        permissions={"files": {"read": [str(shared)]}},
    )
    host = make_host(plugin_dir, data)
    assert await host.call_tool("probe", "read", {"path": str(shared / "readme.txt")}) == "public"
    with pytest.raises(ToolError, match="No such file"):
        await host.call_tool("probe", "read", {"path": str(data / "opencomputer.db")})


async def test_files_are_read_only_except_the_data_folder(plugin_dir, tmp_path):
    folder = make_plugin(plugin_dir, "probe", PROBE, tools=PROBE_TOOLS)
    host = make_host(plugin_dir, tmp_path / "data")
    with pytest.raises(ToolError, match="Read-only file system"):
        await host.call_tool("probe", "write", {"path": str(folder / "tools.py"), "text": "x"})
    own = host.data_dir("probe") / "state.txt"
    assert await host.call_tool("probe", "write", {"path": str(own), "text": "kept"}) == "written"
    assert own.read_text() == "kept"
    assert (folder / "tools.py").read_text().lstrip().startswith("import os, socket")


async def test_limits_stop_runaway_calls(plugin_dir, tmp_path):
    make_plugin(plugin_dir, "probe", PROBE, tools=PROBE_TOOLS)
    host = make_host(plugin_dir, tmp_path / "data", timeout=20.0, cpu_seconds=1, memory_mb=256)
    with pytest.raises(ToolError, match="CPU limit"):
        await host.call_tool("probe", "spin", {})
    with pytest.raises(ToolError, match="MemoryError"):
        await host.call_tool("probe", "hog", {})
    walled = make_host(plugin_dir, tmp_path / "data", timeout=1.0)
    with pytest.raises(ToolError, match=r"stopped after 1 s \(time limit\)"):
        await walled.call_tool("probe", "spin", {})


async def test_starting_programs_needs_the_process_permission(plugin_dir, tmp_path):
    make_plugin(plugin_dir, "probe", PROBE, tools=PROBE_TOOLS)
    make_plugin(plugin_dir, "runner", PROBE, tools=PROBE_TOOLS, permissions={"process": True})
    host = make_host(plugin_dir, tmp_path / "data")
    with pytest.raises(ToolError, match="no permission to start programs"):
        await host.call_tool("probe", "run", {"command": "echo hi"})
    assert await host.call_tool("runner", "run", {"command": "echo hi"}) == "hi\n"


async def test_missing_bubblewrap_refuses_sandboxed_plugins(
    plugin_dir, tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    make_plugin(plugin_dir, "probe", PROBE, tools=PROBE_TOOLS)
    with caplog.at_level(logging.ERROR):
        host = make_host(plugin_dir, tmp_path / "data")
    assert "probe" not in host.plugins
    (line,) = [str(b) for b in host.broken if b.name == "probe"]
    assert "bubblewrap" in line and "OC_PLUGIN_SANDBOX=off" in line
    assert "apt-get install bubblewrap" in caplog.text
    assert "calculator" in host.plugins  # trusted built-ins run in-process and still work
    assert await host.call_tool("calculator", "calculate", {"expression": "2**10"}) == "1024"


async def test_explicit_opt_out_runs_without_isolation(plugin_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:very-secret")
    make_plugin(plugin_dir, "probe", PROBE, tools=PROBE_TOOLS)
    host = make_host(plugin_dir, tmp_path / "data", mode="off")
    assert not host.sandbox.isolated
    names = (await host.call_tool("probe", "environment", {})).split(",")
    assert "TELEGRAM_BOT_TOKEN" not in names  # still a clean environment
    with pytest.raises(ToolError, match="no network permission"):  # and the guard
        await host.call_tool("probe", "connect", {"host": "127.0.0.1", "port": 9})


def test_policy_mounts_only_what_is_granted(tmp_path):
    sandbox = Sandbox(mode="on")
    policy = SandboxPolicy(
        "p",
        tmp_path / "code",
        tmp_path / "data" / "p",
        network=["*"],
        read=["/srv/photos"],
        write=["/srv/out"],
    )
    argv = sandbox.argv(policy)
    joined = " ".join(argv)
    assert "--share-net" not in argv and "--clearenv" in argv  # network only via the proxy
    assert "--unshare-all" in argv and "--unshare-user" in argv and "--disable-userns" in argv
    assert "--cap-drop ALL" in joined and "--uid 65534" in joined
    assert f"--ro-bind {tmp_path / 'code'} {tmp_path / 'code'}" in joined
    assert "--ro-bind-try /srv/photos /srv/photos" in joined
    assert "--bind-try /srv/out /srv/out" in joined
    assert f"--bind {tmp_path / 'data' / 'p'} {tmp_path / 'data' / 'p'}" in joined
    assert str(tmp_path / "data") + " " not in joined.replace(str(tmp_path / "data" / "p"), "")


async def test_output_is_bounded_and_prints_do_not_corrupt_answers(plugin_dir, tmp_path):
    make_plugin(plugin_dir, "probe", PROBE, tools=PROBE_TOOLS)
    host = make_host(plugin_dir, tmp_path / "data")
    assert await host.call_tool("probe", "chatter", {}) == "still fine"
    with pytest.raises(ToolError, match="larger than 4 MB"):
        await host.call_tool("probe", "huge", {})


LISTENER = """
import socket
from opencomputer.bot.plugins.api import tool

@tool
def listen(port: int) -> str:
    \"\"\"Listen on a port.

    Args:
        port: Port.
    \"\"\"
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        return "listening"
"""


async def test_plugins_cannot_listen_on_ports(plugin_dir, tmp_path):
    make_plugin(
        plugin_dir, "server", LISTENER, tools=[{"name": "listen"}], permissions={"network": ["*"]}
    )
    host = make_host(plugin_dir, tmp_path / "data")
    with pytest.raises(ToolError, match="may not listen on ports"):
        await host.call_tool("server", "listen", {"port": 8080})


async def test_a_port_grant_allows_that_port_only(plugin_dir, tmp_path, web_server, site_port):
    make_plugin(
        plugin_dir,
        "probe",
        FETCH,
        tools=FETCH_TOOLS,
        permissions={"network": [f"127.0.0.1:{web_server}"]},
    )
    make_plugin(
        plugin_dir,
        "named",
        FETCH,
        tools=FETCH_TOOLS,
        permissions={"network": [f"localhost:{web_server}"]},
    )
    host = make_host(plugin_dir, tmp_path / "data")
    url = f"http://127.0.0.1:{web_server}/"
    assert await host.call_tool("probe", "fetch", {"url": url}) == "hello from loopback"
    with pytest.raises(ToolError, match="no network permission"):
        await host.call_tool("probe", "fetch", {"url": f"http://127.0.0.1:{site_port}/"})
    # a name that resolves to loopback is not a grant of loopback: the proxy resolves it itself
    with pytest.raises(ToolError, match=r"resolves to the private address 127\.0\.0\.1"):
        await host.call_tool("named", "fetch", {"url": f"http://localhost:{web_server}/"})
    with pytest.raises(ToolError, match="no network permission"):
        await host.call_tool("probe", "connect", {"host": "localhost", "port": site_port})
    with pytest.raises(ToolError, match="no network permission"):
        await host.call_tool("probe", "connect", {"host": "127.0.0.1", "port": site_port})
