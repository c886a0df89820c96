"""What one plugin tool call costs through the sandbox, against baselines measured in the same run.

Rows: a trusted built-in in the server (in-process); a bare ``python -c pass`` in a minimal
bubblewrap (the floor any bubblewrap sandbox pays); a plain worker process without isolation
(``OC_PLUGIN_SANDBOX=off``); the full sandbox (empty environment, user namespace, seccomp
filter, process limit, sized /tmp) with no network; and the full sandbox with a network grant,
which adds an egress proxy started for the call and the worker's bridge to it (one HTTP GET to
a loopback server through the proxy).

    .venv/bin/python bench/plugin_calls.py [--calls 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import pct, quiet, summary
from aiohttp import web

from opencomputer.bot.plugins.discovery import discover
from opencomputer.bot.plugins.loader import PluginHost
from opencomputer.bot.plugins.sandbox import CallLimits, Sandbox

ADD = (
    "from opencomputer.bot.plugins.api import tool\n\n"
    '@tool\ndef add(a: int, b: int) -> int:\n    """Add."""\n    return a + b\n'
)
FETCH = (
    "from opencomputer.bot.plugins.api import PluginContext, tool\n\n"
    '@tool\nasync def fetch(url: str, ctx: PluginContext) -> str:\n    """Fetch."""\n'
    "    return (await ctx.http.get(url)).text\n"
)


def write_plugin(root: Path, name: str, tool: str, code: str, network: list[str]) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    manifest = {
        "name": name,
        "version": "1",
        "description": "d",
        "module": "tools",
        "tools": [{"name": tool}],
        "permissions": {"network": network},
    }
    (folder / "plugin.json").write_text(json.dumps(manifest))
    (folder / "tools.py").write_text(code)


async def timed(call: Callable[[], Awaitable[Any]], calls: int) -> list[float]:
    await call()  # warm caches
    out = []
    for _ in range(calls):
        started = time.perf_counter()
        await call()
        out.append(time.perf_counter() - started)
    return out


async def bare_bwrap() -> None:
    bwrap = shutil.which("bwrap") or "bwrap"
    argv = [bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--proc", "/proc"]
    proc = await asyncio.create_subprocess_exec(*argv, "--", sys.executable, "-c", "pass")
    await proc.wait()


async def web_server() -> tuple[web.AppRunner, int]:
    async def hello(_request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


async def main(calls: int) -> None:
    quiet()
    runner, port = await web_server()
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "plugins"
        write_plugin(root, "adder", "add", ADD, [])
        write_plugin(root, "fetcher", "fetch", FETCH, [f"127.0.0.1:{port}"])
        found = discover([str(root)], environ={}, packages=False)
        hosts = {
            mode: PluginHost(
                found, sandbox=Sandbox(mode=mode), data_root=Path(tmp) / "data", limits=CallLimits()
            )
            for mode in ("on", "off")
        }
        for host in hosts.values():
            host.tools("adder")
            host.tools("fetcher")
        on, off = hosts["on"], hosts["off"]
        args = {"a": 1, "b": 2}
        url = {"url": f"http://127.0.0.1:{port}/"}
        results["in-process (calculator)"] = await timed(
            lambda: on.call_tool("calculator", "calculate", {"expression": "1+2"}), calls
        )
        results["bare bwrap python -c pass"] = await timed(bare_bwrap, calls)
        results["worker, no sandbox (off)"] = await timed(
            lambda: off.call_tool("adder", "add", args), calls
        )
        results["sandbox, no network"] = await timed(
            lambda: on.call_tool("adder", "add", args), calls
        )
        try:
            results["sandbox + proxy, 1 GET"] = await timed(
                lambda: on.call_tool("fetcher", "fetch", url), calls
            )
        except Exception as exc:  # the proxy is part of the figure: say why it is missing
            print(f"sandbox + proxy: not measured ({type(exc).__name__}: {exc})")
        results["worker off, 1 GET"] = await timed(
            lambda: off.call_tool("fetcher", "fetch", url), calls
        )
    await runner.cleanup()
    for name, values in results.items():
        print(summary(name, values))

    def p50(name: str) -> float:
        return pct(results[name], 50)

    ratios = [
        ("sandbox / bare bwrap", p50("sandbox, no network") / p50("bare bwrap python -c pass")),
        ("sandbox / plain worker", p50("sandbox, no network") / p50("worker, no sandbox (off)")),
    ]
    if "sandbox + proxy, 1 GET" in results:
        proxied = p50("sandbox + proxy, 1 GET")
        ratios.append(("sandbox+proxy GET / sandbox add", proxied / p50("sandbox, no network")))
        ratios.append(("sandbox+proxy GET / plain GET", proxied / p50("worker off, 1 GET")))
    for name, ratio in ratios:
        print(f"{name + ' (p50)':<40} {ratio:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=30)
    asyncio.run(main(parser.parse_args().calls))
