"""docs/plugins.md, "Your first plugin in ten minutes", followed as written.

The guide's code blocks are read from the document itself (each carries a ``guide-test``
comment saying what to do with it), so an edit that breaks the guide breaks this test: shell
blocks run in bash with this installation's ``bin`` first on ``PATH`` (what ``source
.venv/bin/activate`` gives) and a scratch ``HOME``; Python blocks are appended to the files the
guide names; the JSON block replaces the manifest's keys. The last step chats through the real
CLI with a fake Ollama that calls the new tool, which runs sandboxed (bubblewrap) as in
production. The ``plugins test`` line for a missing pytest is checked too.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.fake_ollama import Reply

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "plugins.md"
PREFIXES = ("OC_", "OLLAMA_", "TELEGRAM_", "DISCORD_", "SLACK_", "MATRIX_")
BLOCK = re.compile(
    r"<!-- guide-test: (?P<what>[^>]*?) -->\n```(?P<lang>\w+)\n(?P<body>.*?)```", re.S
)


def guide_steps() -> list[tuple[str, str]]:
    """``(instruction, code)`` for each annotated block of the quick-start section, in order."""
    text = GUIDE.read_text(encoding="utf-8")
    section = text.split("## Your first plugin in ten minutes", 1)[1].split("\n## ", 1)[0]
    steps = [(m["what"], m["body"]) for m in BLOCK.finditer(section)]
    fenced = section.count("\n```") // 2
    assert len(steps) == fenced, "every code block of the quick start needs a guide-test comment"
    return steps


def _respond(body: dict[str, Any]) -> Reply:
    """A model that says goodbye with the plugin's new tool, then reports its result."""
    messages = body.get("messages") or []
    if messages and messages[-1].get("role") == "tool":
        return Reply(f"The tool said: {messages[-1].get('content')}")
    names = [t["function"]["name"] for t in body.get("tools") or []]
    farewell = [n for n in names if n.endswith("farewell")]
    if farewell and "goodbye" in str(messages[-1].get("content", "")):
        return Reply.tool(farewell[0], person="Ada", formal=True)
    return Reply("ok")


async def _bash(script: str, cwd: Path, env: dict[str, str], stdin: bytes) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "bash", "-euo", "pipefail", "-c", script, cwd=cwd, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(stdin), timeout=300)
    return proc.returncode or 0, out.decode()


@pytest.mark.timeout(900)
async def test_the_quick_start_works_as_written(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    state = tmp_path / "cwd"
    cwd = home
    async with FakeOllama() as model:
        model.responder = _respond
        clean = {k: v for k, v in os.environ.items() if not k.startswith(PREFIXES)}
        env = {
            **clean,
            "HOME": str(home),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{clean.get('PATH', '')}",
            "OC_DATA_DIR": str(tmp_path / "data"),
            "OLLAMA_HOST": model.url,
        }
        for what, code in guide_steps():
            if what == "setup":
                _check_setup(code)
            elif what.startswith("shell"):
                said = re.findall(r'opencomputer chat\s+# "([^"]+)"', code)
                stdin = "".join(f"{line}\n" for line in said).encode()
                script = f"{code}\npwd > {shlex.quote(str(state))}\n"
                status, out = await _bash(script, cwd, env, stdin)
                assert status == 0, (code, out)
                assert "Traceback" not in out, out
                cwd = Path(state.read_text().strip())
                for expected in re.findall(r'expect "([^"]+)"', what):
                    assert expected in out, (code, out)
                if what.endswith("chat"):
                    _check_chat(out, model)
            elif what.startswith("append "):
                target = cwd / what.split(" ", 1)[1]
                assert target.is_file(), f"the guide appends to {target}, which step 1 did not make"
                with target.open("a", encoding="utf-8") as f:
                    f.write("\n\n" + code)
            elif what.startswith("manifest "):
                target = cwd / what.split(" ", 1)[1]
                manifest = json.loads(target.read_text(encoding="utf-8"))
                manifest.update(json.loads("{" + code + "}"))
                target.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
            else:
                raise AssertionError(f"unknown guide-test instruction {what!r}")


def _check_setup(code: str) -> None:
    """The extra the guide installs exists and brings what step 2 needs; the venv is the
    one the README's quick start makes.
    """
    extras = re.findall(r"\.\[([a-z-]+)\]", code)
    assert extras, code
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for extra in extras:
        names = {re.split(r"[<>=;\[ ]", r, maxsplit=1)[0] for r in declared[extra]}
        assert {"pytest", "pytest-asyncio"} <= names, declared[extra]
    assert "source .venv/bin/activate" in code
    assert " -m venv .venv" in (ROOT / "scripts" / "start").read_text()


def _check_chat(out: str, model: FakeOllama) -> None:
    lines = out.splitlines()
    assert any(re.match(r"hello\s.*\boff\b", line) for line in lines), out  # listed, still off
    assert "The tool said: Farewell, Ada." in out, out  # the new tool ran, sandboxed
    assert any(m.get("role") == "tool" for body in model.chats for m in body["messages"])


async def test_plugins_test_says_what_to_install_without_pytest(tmp_path: Path) -> None:
    """The quick start's venv has no pytest: one line with the command that adds it."""
    (tmp_path / "hello").mkdir()
    (tmp_path / "hello" / "plugin.json").write_text("{}")
    hide = "import sys; sys.modules['pytest'] = None; from opencomputer.bot.cli import main; main()"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", hide, "plugins", "test", "hello", cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 2, (out, err)
    assert err.decode().splitlines() == [
        f"pytest not installed: {shlex.quote(sys.executable)} -m pip install -e "
        f"{shlex.quote(str(ROOT) + '[plugin-dev]')}"
    ]
    assert out == b""
