"""A skill's script runs only in the plugin sandbox: no network, no programs, no server files,
its skill folder read-only; limits end it; with the sandbox off it is not offered at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from opencomputer.bot.config import Settings
from opencomputer.bot.plugins.sandbox import CallLimits, Sandbox
from opencomputer.bot.skills.catalog import SkillCatalog
from opencomputer.bot.skills.scripts import ScriptError, run_script
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.harness import Harness
from tests.skills.helpers import tool_names, write_skill

PROBE = """
import os, socket, sys
print("args", sys.argv[1:])
def attempt(label, fn):
    try:
        fn()
        print(label, "ALLOWED")
    except BaseException as exc:
        print(label, "refused", type(exc).__name__)
attempt("network", lambda: socket.create_connection(("1.1.1.1", 80), timeout=2))
attempt("database", lambda: open(sys.argv[1], "rb").read(1))
attempt("program", lambda: os.system("true") == 0 or (_ for _ in ()).throw(OSError()))
attempt("skill-write", lambda: open(os.path.join(os.path.dirname(__file__), "x"), "w"))
attempt("scratch-write", lambda: open("out.txt", "w").write("ok"))
"""


def _refusal() -> str | None:
    return Sandbox(mode="on").refusal()


needs_sandbox = pytest.mark.skipif(
    _refusal() is not None, reason=f"the plugin sandbox is unavailable: {_refusal()}"
)


def _probe_skill(root: Path) -> Path:
    folder = write_skill(
        root, "probe", "---\nname: probe\ndescription: Probe the sandbox.\n---\nRun it.\n"
    )
    (folder / "scripts").mkdir()
    (folder / "scripts" / "probe.py").write_text(PROBE, encoding="utf-8")
    (folder / "scripts" / "spin.py").write_text("while True:\n    pass\n", encoding="utf-8")
    (folder / "scripts" / "run.sh").write_text("#!/bin/sh\necho hi\n", encoding="utf-8")
    return folder


@needs_sandbox
async def test_script_runs_sandboxed_in_a_turn(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama, tmp_path: Path
) -> None:
    _probe_skill(tmp_path / "skills")
    settings = make_settings(OC_SKILL_DIRS=str(tmp_path / "skills"))
    database = settings.data_dir / "opencomputer.db"
    async with Harness(settings) as h:
        fake_ollama.call_tool("use_skill", skill="probe")
        fake_ollama.call_tool(
            "run_skill_script", skill="probe", script="scripts/probe.py", args=[str(database)]
        )
        fake_ollama.call_tool("run_skill_script", skill="probe", script="scripts/run.sh")
        fake_ollama.call_tool("run_skill_script", skill="probe", script="../probe/SKILL.md")
        fake_ollama.reply("probed")
        assert await h.say("probe the sandbox") == "probed"
        assert database.exists()
        results = [m["content"] for m in fake_ollama.chats[-1]["messages"] if m["role"] == "tool"]
        assert "run_skill_script" in results[-4]  # use_skill says how scripts run
        probe = results[-3]
        assert f"args ['{database}']" in probe
        for label in ("network", "database", "program", "skill-write"):
            assert f"{label} refused" in probe, probe
        assert "scratch-write ALLOWED" in probe
        assert "only Python scripts" in results[-2]
        assert "'..' is not allowed" in results[-1]


@needs_sandbox
async def test_a_spinning_script_is_stopped(tmp_path: Path) -> None:
    _probe_skill(tmp_path / "skills")
    skill = SkillCatalog([tmp_path / "skills"], tmp_path / "d").scan().skills["probe"]
    limits = CallLimits(timeout=3.0, memory_mb=256, cpu_seconds=1, processes=8)
    started = asyncio.get_running_loop().time()
    with pytest.raises(ScriptError, match="did not finish"):
        await run_script(skill, "scripts/spin.py", [], Sandbox(mode="on"), limits)
    assert asyncio.get_running_loop().time() - started < 3.5


async def test_sandbox_off_means_scripts_are_not_offered(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama, tmp_path: Path
) -> None:
    _probe_skill(tmp_path / "skills")
    settings = make_settings(OC_SKILL_DIRS=str(tmp_path / "skills"), OC_PLUGIN_SANDBOX="off")
    async with Harness(settings) as h:
        fake_ollama.call_tool("use_skill", skill="probe")
        fake_ollama.reply("ok")
        await h.say("probe")
        body = fake_ollama.chats[-1]
        assert "use_skill" in tool_names(body) and "run_skill_script" not in tool_names(body)
        assert "scripts are not run here" in body["messages"][-1]["content"]
    skill = SkillCatalog([tmp_path / "skills"], tmp_path / "d").scan().skills["probe"]
    with pytest.raises(ScriptError, match="only in the plugin sandbox"):
        await run_script(skill, "scripts/probe.py", [], Sandbox(mode="off"))
