"""Run a skill's script in the plugin sandbox, never on the host.

A skill's scripts are code from whoever wrote the skill, so they get what a plugin without
permissions gets (``bot/plugins/sandbox.py``): bubblewrap with no network, no programs
(seccomp: no ``fork``/``execve``), the skill's folder read-only, a scratch folder of their own
(deleted afterwards) and the server's Python libraries, bounded CPU, memory, processes and time.
The Agent Skills format has no field granting more, so nothing more is granted: a script that
needs the network belongs in a plugin. Only Python scripts run (no shell: it would need
``execve``). With ``OC_PLUGIN_SANDBOX=off`` or without bubblewrap scripts do not run at all.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

from opencomputer.bot.plugins.sandbox import CallLimits, Sandbox, SandboxError, SandboxPolicy
from opencomputer.bot.skills.files import SkillFileError, confined
from opencomputer.bot.skills.format import Skill

__all__ = ["SCRIPT_LIMITS", "ScriptError", "run_script", "scripts_refusal"]

SCRIPT_LIMITS = CallLimits(timeout=30.0, memory_mb=512, cpu_seconds=20, processes=16)


class ScriptError(ValueError):
    """A script that was not run or did not finish; ``str()`` is one line for the model."""


def scripts_refusal(sandbox: Sandbox) -> str | None:
    """Why skill scripts cannot run here (None: they can). Blocking the first time (it tries
    bubblewrap once).
    """
    if not sandbox.isolated:
        return (
            "skill scripts run only in the plugin sandbox, which is off here "
            "(OC_PLUGIN_SANDBOX=off, or bubblewrap is missing)"
        )
    return sandbox.refusal()


async def run_script(
    skill: Skill,
    path: str,
    args: list[str],
    sandbox: Sandbox,
    limits: CallLimits = SCRIPT_LIMITS,
) -> str:
    """Run ``path`` (relative to the skill's folder) with ``args``; return its output."""
    refusal = await asyncio.to_thread(scripts_refusal, sandbox)
    if refusal is not None:
        raise ScriptError(refusal)
    try:
        parts = await asyncio.to_thread(confined, skill, path)
    except SkillFileError as exc:
        raise ScriptError(str(exc)) from None
    root = skill.folder.resolve()
    script = root.joinpath(*parts)
    if script.suffix != ".py":
        raise ScriptError(f"{path!r}: only Python scripts (.py) run here; read it and follow it")
    scratch = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="oc-skill-"))
    try:
        request = {
            "kind": "hook",
            "plugin": f"skill-{skill.name}",
            "package": "opencomputer.bot.skills",
            "module": "runner",
            "target": "run_script",
            "event": {"script": str(script), "args": list(args), "workdir": str(scratch)},
            "data_dir": str(scratch),
            "network": [],
            "process": False,
            "settings": {},
        }
        policy = SandboxPolicy(plugin=f"skill-{skill.name}", code_dir=root, data_dir=scratch)
        try:
            answer = await sandbox.run(request, policy, limits)
        except SandboxError as exc:
            raise ScriptError(f"{path!r} did not finish: {exc}") from None
    finally:
        await asyncio.to_thread(shutil.rmtree, scratch, True)
    result = answer.get("result")
    if not answer.get("ok") or not isinstance(result, dict):
        raise ScriptError(f"{path!r} could not be run: {answer.get('error') or 'no answer'}")
    output = str(result.get("output") or "").strip() or "(no output)"
    code = result.get("exit", 0)
    return output if code == 0 else f"{output}\n(exit status {code})"
