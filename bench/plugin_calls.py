"""What one plugin tool call costs: in-process (trusted built-in) vs a fresh bubblewrap worker
vs a plain worker process (OC_PLUGIN_SANDBOX=off), measured in the same run.

    .venv/bin/python bench/plugin_calls.py [--calls 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import quiet, summary

from bot.plugins.discovery import discover
from bot.plugins.loader import PluginHost
from bot.plugins.sandbox import CallLimits, Sandbox

TOOLS = (
    "from bot.plugins.api import tool\n\n@tool\ndef add(a: int, b: int) -> int:\n"
    "    '''Add.'''\n    return a + b\n"
)


async def timed(
    host: PluginHost, plugin: str, tool: str, args: dict[str, object], calls: int
) -> list[float]:
    await host.call_tool(plugin, tool, args)  # warm caches
    out = []
    for _ in range(calls):
        started = time.perf_counter()
        await host.call_tool(plugin, tool, args)
        out.append(time.perf_counter() - started)
    return out


async def main(calls: int) -> None:
    quiet()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "plugins" / "adder"
        folder.mkdir(parents=True)
        (folder / "plugin.json").write_text(
            json.dumps(
                {
                    "name": "adder",
                    "version": "1",
                    "description": "d",
                    "module": "tools",
                    "tools": [{"name": "add"}],
                }
            )
        )
        (folder / "tools.py").write_text(TOOLS)
        found = discover([str(folder.parent)], environ={}, packages=False)
        results = {}
        for mode in ("on", "off"):
            host = PluginHost(
                found, sandbox=Sandbox(mode=mode), data_root=Path(tmp) / "data", limits=CallLimits()
            )
            host.tools("adder")
            results[mode] = await timed(host, "adder", "add", {"a": 1, "b": 2}, calls)
        inproc = await timed(host, "calculator", "calculate", {"expression": "1+2"}, calls)
    print(summary("in-process (calculator)", inproc))
    print(summary("worker, no sandbox (off)", results["off"]))
    print(summary("worker in bubblewrap (on)", results["on"]))
    base = sorted(results["off"])[len(results["off"]) // 2]
    print(f"bubblewrap / plain worker p50 ratio: {sorted(results['on'])[calls // 2] / base:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=30)
    asyncio.run(main(parser.parse_args().calls))
