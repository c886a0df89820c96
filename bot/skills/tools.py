"""``use_skill`` and ``read_skill_file``: the model loads a skill when it decides to use one.

Tools get only their arguments; who is asking and where comes from the running graph's turn
context, so the model can name only skills visible to this person in this chat (a person's own
skill never answers in a group or to anyone else).

``run_skill_script`` runs a Python script a skill ships, only in the plugin sandbox
(``bot/skills/scripts.py``); where the sandbox is off or missing the tool is not offered and
scripts can only be read.
"""

from __future__ import annotations

import asyncio

from langgraph.runtime import get_runtime

from opencomputer.bot.plugins.sandbox import Sandbox
from opencomputer.bot.skills.files import SkillFileError, list_files, read_file
from opencomputer.bot.skills.format import Skill
from opencomputer.bot.skills.scripts import ScriptError, run_script
from opencomputer.bot.skills.service import SkillService
from opencomputer.bot.tools import Tool, ToolError, tool
from opencomputer.graphs.agent.state import TurnContext

__all__ = ["make_skill_tools", "skill_text"]


def _turn() -> TurnContext:
    try:
        ctx = get_runtime(TurnContext).context
    except Exception as exc:  # called outside a graph run
        raise ToolError("skills can only be used during a conversation") from exc
    if not isinstance(ctx, TurnContext):
        raise ToolError("skills can only be used during a conversation")
    return ctx


def skill_text(skill: Skill, files: list[str], *, scripts: bool) -> str:
    """What ``use_skill`` returns: the instructions, then the files the skill holds."""
    parts = [f"Skill {skill.name}: {skill.description}", "", skill.body.strip() or "(no body)"]
    if files:
        how = (
            "run a .py script with run_skill_script (sandboxed, no network)"
            if scripts
            else "scripts are not run here: follow them by hand with your other tools"
        )
        parts += [
            "",
            f"Files in this skill (read one with read_skill_file; {how}):",
            *(f"- {path}" for path in files),
        ]
    return "\n".join(parts)


def make_skill_tools(service: SkillService, sandbox: Sandbox | None = None) -> list[Tool]:
    """The tools, bound to one skill service; ``run_skill_script`` only with a ``sandbox``
    that isolates (the caller checked it).
    """

    async def find(name: str) -> Skill:
        ctx = _turn()
        seen = await service.visible(ctx.user, ctx.address, ctx.chat_kind)
        skill = seen.enabled.get(name.strip())
        if skill is None:
            known = ", ".join(sorted(seen.enabled)) or "none"
            raise ToolError(f"no skill named {name!r} here (skills: {known})")
        return skill

    # The text is the admin's (a folder they configured or installed) or the person's own:
    # instructions they chose, not outside content, so reading it does not taint the turn.
    @tool(effects=[], trusted_output=True)
    async def use_skill(skill: str) -> str:
        """Load a skill's instructions before doing a task it covers (see Skills you can use).

        Args:
            skill: The skill's name, exactly as listed.
        """
        found = await find(skill)
        files = await asyncio.to_thread(list_files, found)
        return skill_text(found, files, scripts=sandbox is not None)

    @tool(effects=[], trusted_output=True)
    async def read_skill_file(skill: str, path: str) -> str:
        """Read a file a skill mentions (e.g. references/guide.md), after use_skill.

        Args:
            skill: The skill's name.
            path: The file's path inside the skill's folder, as use_skill listed it.
        """
        found = await find(skill)
        try:
            return await asyncio.to_thread(read_file, found, path)
        except SkillFileError as exc:
            raise ToolError(str(exc)) from None

    # No effect leaves the sandbox (no network, scratch folder deleted); the output is the
    # script's, computed from the model's arguments: not trusted (it may echo outside content).
    @tool(effects=[])
    async def run_skill_script(skill: str, script: str, args: list[str] | None = None) -> str:
        """Run a Python script a skill ships (e.g. scripts/report.py) in a sandbox, no network.

        Args:
            skill: The skill's name.
            script: The script's path inside the skill's folder, as use_skill listed it.
            args: Its command-line arguments.
        """
        found = await find(skill)
        assert sandbox is not None
        try:
            return await run_script(found, script, list(args or []), sandbox)
        except ScriptError as exc:
            raise ToolError(str(exc)) from None

    tools = [use_skill, read_skill_file] + ([run_skill_script] if sandbox is not None else [])
    return [fn.__oc_tool__ for fn in tools]  # type: ignore[attr-defined]
