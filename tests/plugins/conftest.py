"""Helpers for plugin tests: write throwaway plugins into a folder listed in OC_PLUGIN_DIRS."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from opencomputer.bot.testing import FakeOllama


def make_plugin(root: Path, name: str, code: str, **manifest: Any) -> Path:
    """Write ``root/name/plugin.json`` and ``tools.py``; tools default to the @tool functions."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "name": name,
        "version": "0.1.0",
        "description": f"test plugin {name}",
        "module": "tools",
        **manifest,
    }
    (folder / "plugin.json").write_text(json.dumps(data), encoding="utf-8")
    (folder / "tools.py").write_text(textwrap.dedent(code), encoding="utf-8")
    return folder


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    """An empty folder for test plugins."""
    folder = tmp_path / "user-plugins"
    folder.mkdir()
    return folder


@pytest.fixture
def write_plugin(plugin_dir: Path) -> Callable[..., Path]:
    """``write_plugin(name, code, **manifest)`` in :func:`plugin_dir`."""

    def write(name: str, code: str, **manifest: Any) -> Path:
        return make_plugin(plugin_dir, name, code, **manifest)

    return write


async def enable_dir_plugins(harness: Any) -> None:
    """Consent to every plugin from OC_PLUGIN_DIRS, as `opencomputer plugins enable` would.

    Such plugins are off until an admin enables them (issue 13).
    """
    system = harness.app.extras["plugins"]
    for name, plugin in system.host.plugins.items():
        if plugin.source != "builtin":
            await system.enablement.set(name, True)


def tool_results(fake: FakeOllama) -> list[str]:
    """Tool messages the model saw in its last request."""
    return [m["content"] for m in fake.chats[-1]["messages"] if m.get("role") == "tool"]


def offered(fake: FakeOllama, index: int = -1) -> set[str]:
    """Names of the tools offered in a model request."""
    return {t["function"]["name"] for t in fake.chats[index].get("tools") or []}


PROBE = '''
import os, socket
from opencomputer.bot.plugins.api import tool, ToolError

@tool
def connect(host: str, port: int) -> str:
    """Open a TCP connection.

    Args:
        host: Host.
        port: Port.
    """
    with socket.create_connection((host, port), timeout=3) as s:
        s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
        return "connected: " + s.recv(200).decode(errors="replace").splitlines()[0]

@tool
def read(path: str) -> str:
    """Read a file.

    Args:
        path: Path.
    """
    with open(path, encoding="utf-8") as f:
        return f.read()

@tool
def write(path: str, text: str) -> str:
    """Write a file.

    Args:
        path: Path.
        text: Text.
    """
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return "written"

@tool
def environment() -> str:
    """Return the environment variables' names."""
    return ",".join(sorted(os.environ))

@tool
def spin() -> str:
    """Burn CPU forever."""
    while True:
        pass

@tool
def hog() -> str:
    """Allocate far too much memory."""
    blocks = [bytearray(64 * 1024 * 1024) for _ in range(64)]
    return str(len(blocks))

@tool
def run(command: str) -> str:
    """Start a program.

    Args:
        command: Shell command.
    """
    import subprocess
    return subprocess.run(command, shell=True, capture_output=True, text=True).stdout

@tool
def chatter() -> str:
    """Print a lot, then answer."""
    for _ in range(20000):
        print("x" * 500)
    return "still fine"

@tool
async def huge() -> str:
    """Return far too much."""
    return "x" * (6 * 1024 * 1024)
'''
PROBE_TOOLS = [
    {"name": n}
    for n in ("connect", "read", "write", "environment", "spin", "hog", "run", "chatter", "huge")
]
