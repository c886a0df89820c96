"""``/skills``: see the skills usable here; admins turn them on and off (audited).

Everyone may list and show what they can use in this chat (their own skills only in a direct
chat); ``enable``/``disable`` are for admins, for this chat or with ``global`` everywhere.
"""

from __future__ import annotations

import asyncio
from typing import Any

from opencomputer.bot import audit as audit_log
from opencomputer.bot.commands import CommandContext, CommandRouter
from opencomputer.bot.skills.files import list_files
from opencomputer.bot.skills.learned_commands import LEARNED_VERBS, learned_command, pending_lines
from opencomputer.bot.skills.service import SkillService
from opencomputer.bot.skills.state import GLOBAL

__all__ = ["register_skill_commands"]

_USAGE = (
    "Usage: /skills [list] · /skills show <name> · /skills enable|disable <name> [global] · "
    "(admins) /skills learned|gaps · /skills approve|pin|unpin|edit|delete <name>"
)
_SHOWN_BODY = 1500


def register_skill_commands(router: CommandRouter, service: SkillService, store: Any) -> None:
    """Add ``/skills`` to the router; ``store`` is where audit entries go."""

    @router.command(
        "skills", args="[list|show|enable|disable|learned|gaps] [name] [global]", aliases=("skill",)
    )
    async def skills(ctx: CommandContext) -> str:
        """List the skills I can use here, show one, or (admins) turn one on or off and steer
        learned skills.
        """
        words = ctx.args.split()
        verb = words[0].lower() if words else "list"
        event = ctx.event
        if verb in LEARNED_VERBS and service.learned is not None:
            return await learned_command(ctx, service.learned, service.learning)
        seen = await service.visible(event.user, event.address, str(event.chat.kind))
        if verb in ("list", "ls"):
            lines = [
                f"- {name} ({'on' if seen.on[name] else 'off'}"
                f"{', yours' if skill.owner else ''}{_learned(skill.metadata, skill.source)}): "
                f"{skill.description}"
                for name, skill in sorted(seen.scan.skills.items())
            ]
            if ctx.is_admin and seen.scan.refused:
                lines += [f"- refused: {line}" for line in seen.scan.refused]
            if ctx.is_admin and service.learned is not None:
                lines += await pending_lines(service.learned)
            return "Skills here:\n" + ("\n".join(lines) or "- none")
        if len(words) < 2:
            return _USAGE
        name = words[1]
        skill = seen.scan.skills.get(name)
        if skill is None:
            return f"There is no skill {name!r} here. Send /skills to see them."
        if verb == "show":
            files = await asyncio.to_thread(list_files, skill)
            body = skill.body.strip()
            if len(body) > _SHOWN_BODY:
                body = body[:_SHOWN_BODY] + "\n[…]"
            head = [
                f"{skill.name} ({'on' if seen.on[name] else 'off'} here; from {skill.source})",
                skill.description,
            ]
            if skill.allowed_tools:
                head.append("allowed tools: " + " ".join(skill.allowed_tools))
            if files:
                head.append("files: " + ", ".join(files))
            return "\n".join([*head, "", body])
        if verb not in ("enable", "disable"):
            return _USAGE
        if not ctx.is_admin:
            return f"/skills {verb} is for admins only."
        chat = event.chat
        scope = GLOBAL if "global" in (w.lower() for w in words[2:]) else chat.key
        on = verb == "enable"
        await service.states.set(name, on, scope)
        await audit_log.audit(
            store, event.user.key, f"skill.{verb}", {"skill": name, "scope": scope}
        )
        where = "everywhere" if scope == GLOBAL else "in this chat"
        return f"Skill {name} {'enabled' if on else 'disabled'} {where}."


def _learned(metadata: dict[str, Any], source: str) -> str:
    """The marker of a learned skill in the list, e.g. ", learned candidate"."""
    return f", learned {metadata.get('status', '')}".rstrip() if source == "learned" else ""
