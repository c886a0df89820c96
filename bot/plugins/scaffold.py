"""``opencomputer plugins new NAME``: a working plugin with a test, ready to edit."""

from __future__ import annotations

import json
import re
from pathlib import Path

from opencomputer.bot import __version__

__all__ = ["scaffold"]

TOOLS = '''"""{name}: {description}"""

from __future__ import annotations

from opencomputer import PluginContext, command, tool


@tool
async def greet(person: str, ctx: PluginContext) -> str:
    """Greet someone by name.

    Args:
        person: Who to greet.
    """
    count = await ctx.store.get("greetings", 0) + 1
    await ctx.store.set("greetings", count)
    return f"Hello, {{person}}! (greeting number {{count}})"


@command("{command}")
async def status(args: str, ctx: PluginContext) -> str:
    """Say how many greetings were sent."""
    return f"I have greeted {{await ctx.store.get('greetings', 0)}} times."
'''

TEST = '''"""Tests for the {name} plugin: run them with `pytest {folder}`."""

from __future__ import annotations

from pathlib import Path

from opencomputer.testing import PluginTestKit

PLUGIN = Path(__file__).parent


async def test_greet_tool() -> None:
    async with PluginTestKit(PLUGIN) as kit:
        assert await kit.call_tool("greet", person="Ada") == "Hello, Ada! (greeting number 1)"


async def test_the_model_can_use_greet() -> None:
    async with PluginTestKit(PLUGIN) as kit:
        kit.model.call_tool("greet", person="Ada")  # the fake model asks for the tool...
        kit.model.reply("I said hello to Ada.")  # ...then answers with the tool's result
        assert await kit.say("Please greet Ada") == "I said hello to Ada."
        assert kit.tool_results() == ["Hello, Ada! (greeting number 1)"]


async def test_status_command() -> None:
    async with PluginTestKit(PLUGIN) as kit:
        await kit.call_tool("greet", person="Ada")
        assert await kit.command("{command}") == "I have greeted 1 times."
'''

PYTEST_INI = """[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
asyncio_default_test_loop_scope = function
"""


def scaffold(name: str, parent: Path, description: str = "") -> Path:
    """Write ``parent/name`` with a manifest, code, a test and pytest settings."""
    if not re.fullmatch(r"[a-z][a-z0-9_-]{0,39}", name):
        raise ValueError("a plugin name is lower-case letters, digits, '-' or '_', e.g. 'weather'")
    folder = parent / name
    if folder.exists():
        raise FileExistsError(f"{folder} already exists")
    command = name.replace("-", "_")[:32]
    description = description or f"What {name} does (edit plugin.json)."
    manifest = {
        "name": name,
        "version": "0.1.0",
        "description": description,
        "author": "",
        "opencomputer": f">={__version__.rsplit('.', 1)[0]},<1",
        "module": "tools",
        "permissions": {
            "network": [],
            "files": {"read": [], "write": []},
            "process": False,
            "secrets": [],
        },
        "settings": {},
        "tools": [{"name": "greet", "description": "Greet someone by name."}],
        "commands": [{"name": command, "description": "Say how many greetings were sent."}],
    }
    folder.mkdir(parents=True)
    (folder / "plugin.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    (folder / "tools.py").write_text(
        TOOLS.format(name=name, description=description, command=command), encoding="utf-8"
    )
    test = TEST.format(name=name, folder=folder.name, command=command)
    (folder / f"test_{command}.py").write_text(test, encoding="utf-8")
    (folder / "pytest.ini").write_text(PYTEST_INI, encoding="utf-8")
    return folder
