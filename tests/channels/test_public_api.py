"""The public ``opencomputer`` package: complete, cheap to import, and what our own plugins,
scaffolds and docs use (so a plugin author copying any of them never imports internals).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import opencomputer
from opencomputer.bot.plugins.scaffold import scaffold

ROOT = Path(__file__).resolve().parents[2]


def test_every_public_name_resolves_and_the_version_is_the_distributions() -> None:
    from importlib.metadata import version

    for name in opencomputer.__all__:
        assert getattr(opencomputer, name) is not None, name
    assert opencomputer.__version__ == version("opencomputer")
    assert "supported" in (opencomputer.__doc__ or "")
    from opencomputer.testing import FakeOllama, Harness, PluginTestKit

    assert FakeOllama and Harness and PluginTestKit


def test_importing_it_loads_no_server_machinery() -> None:
    """Plugins import it inside their sandbox, on every call: it must stay light."""
    code = (
        "import sys, opencomputer\n"
        "heavy = [m for m in ('opencomputer.bot.config', 'opencomputer.bot.doctor',"
        " 'opencomputer.bot.app', 'opencomputer.bot.runtime', 'typer',"
        " 'aiohttp', 'sqlalchemy', 'langgraph', 'pydantic_settings') if m in sys.modules]\n"
        "assert heavy == [], heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return found


def _internal(module: str) -> bool:
    """A module behind the public API: ``opencomputer.bot…`` and the others (or their
    top-level names, which exist only in a checkout)."""
    parts = module.split(".")
    inside = ("bot", "connectors", "graphs", "plugins")
    return parts[0] in inside or (
        parts[0] == "opencomputer" and parts[1:2] != [] and parts[1] in inside
    )


def test_built_in_plugins_import_only_the_public_api() -> None:
    files = sorted((ROOT / "plugins").glob("*/*.py"))
    assert len(files) >= 6
    for path in files:
        internal = [m for m in _imports(path) if _internal(m)]
        assert internal == [], f"{path.relative_to(ROOT)} imports {internal}"


def test_the_scaffold_and_the_channel_example_import_only_the_public_api(tmp_path: Path) -> None:
    folder = scaffold("weather", tmp_path)
    files = [*folder.glob("*.py"), *(ROOT / "examples" / "opencomputer-irc").rglob("*.py")]
    for path in files:
        internal = [m for m in _imports(path) if _internal(m)]
        assert internal == [], f"{path} imports {internal}"
    assert "from opencomputer import" in (folder / "tools.py").read_text(encoding="utf-8")


def test_the_plugin_guide_shows_the_public_api() -> None:
    guide = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    assert "from opencomputer import" in guide
    assert "from bot." not in guide
