"""``use_skill`` and ``read_skill_file``: the model loads a skill when it decides to use one.

Tools get only their arguments; who is asking and where comes from the running graph's turn
context, so the model can name only skills visible to this person in this chat (a person's own
skill never answers in a group or to anyone else).

Scripts a skill ships are not run: ``read_skill_file`` returns their text, for the model to
follow as instructions. Running them belongs in the plugin sandbox with the skill's declared
grants, which is not built yet (docs/skills.md).
"""

from __future__ import annotations

import asyncio

from langgraph.runtime import get_runtime

from bot.skills.files import SkillFileError, list_files, read_file
from bot.skills.format import Skill
from bot.skills.service import SkillService
from bot.tools import Tool, ToolError, tool
from graphs.agent.state import TurnContext

__all__ = ["make_skill_tools", "skill_text"]


def _turn() -> TurnContext:
    try:
        ctx = get_runtime(TurnContext).context
    except Exception as exc:  # called outside a graph run
        raise ToolError("skills can only be used during a conversation") from exc
    if not isinstance(ctx, TurnContext):
        raise ToolError("skills can only be used during a conversation")
    return ctx


def skill_text(skill: Skill, files: list[str]) -> str:
    """What ``use_skill`` returns: the instructions, then the files the skill holds."""
    parts = [f"Skill {skill.name}: {skill.description}", "", skill.body.strip() or "(no body)"]
    if files:
        parts += [
            "",
            "Files in this skill (read one with read_skill_file; scripts are not run here, "
            "follow them by hand with your other tools):",
            *(f"- {path}" for path in files),
        ]
    return "\n".join(parts)


def make_skill_tools(service: SkillService) -> list[Tool]:
    """The two tools, bound to one skill service."""

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
        return skill_text(found, await asyncio.to_thread(list_files, found))

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

    return [
        use_skill.__oc_tool__,  # type: ignore[attr-defined]
        read_skill_file.__oc_tool__,  # type: ignore[attr-defined]
    ]
