"""Manifests are validated without running code; tool schemas come from the source text."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from opencomputer.bot.plugins.discovery import BUILTIN_DIR, discover
from opencomputer.bot.plugins.feature import make_executor
from opencomputer.bot.plugins.introspect import describe_source
from opencomputer.bot.plugins.manifest import ManifestError, load_manifest
from opencomputer.bot.tools import Tool, ToolError, schema_for, tool
from tests.plugins.conftest import make_plugin


def test_every_builtin_manifest_is_valid():
    found = discover([], environ={"OC_HOME_DEVICES": "{}"}, packages=False)
    assert set(found.plugins) == {"clock", "calculator", "code", "web", "notes", "home"}
    assert not found.broken
    for plugin in found.plugins.values():
        described = plugin.describe()
        assert {t.name for t in plugin.manifest.tools} <= set(described.tools)
    assert found.plugins["clock"].in_process and not found.plugins["web"].in_process


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "Bad Name", "version": "1", "description": "x"}, "name"),
        ({"name": "ok", "description": "x"}, "version"),
        (
            {"name": "ok", "version": "1", "description": "x", "permissions": {"net": []}},
            "permissions.net",
        ),
        (
            {"name": "ok", "version": "1", "description": "x", "settings": {"K": {"secret": True}}},
            "must be listed in permissions.secrets",
        ),
        ({"name": "ok", "version": "1", "description": "x", "isolation": "none"}, None),
    ],
)
def test_manifest_errors_are_one_line(tmp_path, data, message):
    (tmp_path / "plugin.json").write_text(json.dumps(data))
    if message is None:
        assert load_manifest(tmp_path).isolation == "none"
        return
    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_isolation_none_is_honoured_for_builtins_only(plugin_dir):
    make_plugin(plugin_dir, "sneaky", "", isolation="none")
    found = discover([str(plugin_dir)], environ={}, packages=False)
    assert not found.plugins["sneaky"].in_process


def test_schema_from_source_matches_runtime_schema():
    source = '''
from typing import Literal
from opencomputer.bot.plugins.api import tool

@tool(name="book", dangerous=True)
async def book_table(place: str, people: int, when: str | None = None,
                     seating: Literal["inside", "outside"] = "inside",
                     tags: list[str] | None = None, *, ctx=None) -> str:
    """Book a table.

    Args:
        place: Restaurant name.
        people: How many.
        when: ISO time.
        seating: Where to sit.
        tags: Notes.
    """
'''
    namespace: dict[str, object] = {}
    exec(compile(source, "<t>", "exec"), namespace)  # the real decorator, for comparison
    runtime_tool: Tool = namespace["book_table"].__oc_tool__  # type: ignore[attr-defined]
    described = describe_source(source).tools["book"]
    assert described.parameters == runtime_tool.parameters
    assert described.description == runtime_tool.description == "Book a table."
    assert described.dangerous and described.function == "book_table"
    assert described.parameters["required"] == ["place", "people"]


def test_source_is_parsed_not_run():
    described = describe_source("raise SystemExit('ran')\n@tool\ndef t(x: int) -> str:\n  ''\n")
    assert set(described.tools) == {"t"}


async def test_dangerous_tools_go_through_the_approval_hook():
    @tool(dangerous=True)
    def wipe(target: str) -> str:
        """Wipe something.

        Args:
            target: What.
        """
        return f"wiped {target}"

    seen: list[tuple[str, dict[str, object]]] = []

    async def approve(t: Tool, arguments: dict[str, object]) -> bool | str:
        seen.append((t.name, arguments))
        return arguments["target"] == "tmp" or "not today"

    app = SimpleNamespace(extras={"approve_tool": approve})
    execute = make_executor(app, timeout=5)  # type: ignore[arg-type]
    wiped = wipe.__oc_tool__  # type: ignore[attr-defined]
    assert await execute(wiped, {"target": "tmp"}) == "wiped tmp"
    with pytest.raises(ToolError, match="not today"):
        await execute(wiped, {"target": "home"})
    assert seen == [("wipe", {"target": "tmp"}), ("wipe", {"target": "home"})]
    assert schema_for(wipe)[0] == "Wipe something."


def test_manifest_danger_flag_reaches_the_tool(plugin_dir, tmp_path):
    from opencomputer.bot.plugins.loader import PluginHost
    from opencomputer.bot.plugins.sandbox import CallLimits, Sandbox

    make_plugin(
        plugin_dir,
        "risky",
        "from opencomputer.bot.plugins.api import tool\n@tool\ndef purge() -> str:"
        "\n    '''Purge.'''\n    return 'ok'\n",
        tools=[{"name": "purge", "dangerous": True}],
    )
    host = PluginHost(
        discover([str(plugin_dir)], environ={}, packages=False),
        sandbox=Sandbox(),
        data_root=tmp_path,
        limits=CallLimits(),
    )
    (purge,) = host.tools("risky")
    assert purge.dangerous and purge.plugin == "risky"
    assert BUILTIN_DIR.name == "plugins"


def test_arguments_are_coerced_to_the_schema():
    from opencomputer.bot.plugins.loader import coerce_arguments

    schema = {
        "properties": {
            "n": {"type": "integer"},
            "x": {"type": "number"},
            "on": {"type": "boolean"},
            "s": {"type": "string"},
        }
    }
    got = coerce_arguments({"n": "3", "x": "2.5", "on": "false", "s": 7, "extra": 1}, schema)
    assert got == {"n": 3, "x": 2.5, "on": False, "s": 7}
    assert coerce_arguments({"n": "three"}, schema) == {"n": "three"}
    assert coerce_arguments({"n": 4.0}, schema) == {"n": 4}
