"""What the server imports stays within its declared run-time dependencies.

``ollama`` is in the test extra only (a benchmark and a client test compare against it), and
python-telegram-bot is installed without extras (no job queue, rate limiter or tornado
webhooks): code that starts importing one of them must move the dependency back first.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVER = ("bot", "connectors", "graphs", "plugins")
NOT_AT_RUN_TIME = {"ollama", "tornado", "apscheduler", "aiolimiter"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_server_code_imports_no_test_only_package() -> None:
    files = [p for folder in SERVER for p in (ROOT / folder).rglob("*.py")]
    assert len(files) > 100
    offending = {
        str(p.relative_to(ROOT)): sorted(_imports(p) & NOT_AT_RUN_TIME)
        for p in files
        if _imports(p) & NOT_AT_RUN_TIME
    }
    assert offending == {}


def test_pyproject_keeps_them_out_of_the_run_time_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = [d.split(";")[0].strip() for d in project["dependencies"]]
    assert not [d for d in runtime if d.startswith("ollama")]
    [telegram] = [d for d in runtime if d.startswith("python-telegram-bot")]
    assert "[" not in telegram  # no extras
    assert any(d.startswith("ollama") for d in project["optional-dependencies"]["test"])
    assert project["license"] == "Apache-2.0"  # SPDX string, not the deprecated table
