"""The admin side of ``/skills`` for learned skills and missing capabilities.

``/skills learned`` lists them with their evidence; ``approve``, ``pin``, ``unpin``, ``edit``
and ``delete`` change one (each audited by :class:`opencomputer.bot.skills.learned.LearnedSkills`);
``/skills gaps`` is the missing-capabilities report. Learned skills hold text drafted from
people's turns, so the list, and the report's examples, are shown only in a direct chat.
"""

from __future__ import annotations

from typing import Any

from opencomputer.bot.commands import CommandContext
from opencomputer.bot.skills.learned import LearnedError, LearnedSkills
from opencomputer.bot.skills.learned_models import Status

__all__ = ["LEARNED_VERBS", "learned_command", "pending_lines"]

LEARNED_VERBS = ("learned", "approve", "pin", "unpin", "edit", "delete", "gaps")
_USAGE = (
    "Usage: /skills learned · /skills approve|pin|unpin|delete <name> · "
    "/skills edit <name> <new instructions> · /skills gaps"
)


async def describe(learned: LearnedSkills, row: Any) -> str:
    """One line: name, status, owner, the two arms' ratings and uses, description."""
    arms = await learned.arms(row.name)
    off, held = arms.offered, arms.held_back
    flags = [row.status] + (["pinned"] if row.pinned else []) + (["tainted"] if row.tainted else [])
    whose = f"for {row.owner}" if row.owner else "for everyone"
    return (
        f"- {row.name} ({', '.join(flags)}; {whose}): offered 👍{off.up}/👎{off.down}, "
        f"held back 👍{held.up}/👎{held.down}, used {arms.used}× — {row.description}"
    )


async def pending_lines(learned: LearnedSkills) -> list[str]:
    """What admins see in ``/skills``: skills waiting for their approval."""
    rows = [r for r in await learned.all_rows() if r.status == Status.PENDING]
    if not rows:
        return []
    names = ", ".join(r.name for r in rows)
    return [f"- waiting for approval (learned after outside content): {names}; "
            "see /skills learned, then /skills approve NAME or /skills delete NAME"]  # fmt: skip


async def learned_command(ctx: CommandContext, learned: LearnedSkills, learning: Any) -> str:
    """Run one of :data:`LEARNED_VERBS` for an admin."""
    words = ctx.args.split(maxsplit=2)
    verb = words[0].lower()
    if not ctx.is_admin:
        return f"/skills {verb} is for admins only."
    direct = str(ctx.event.chat.kind) == "direct"
    actor = ctx.event.user.key
    if verb == "gaps":
        return str(await learning.report(examples=direct))
    if verb == "learned":
        if not direct:
            return "Learned skills hold text from people's chats: send /skills learned in a DM."
        rows = await learned.all_rows()
        lines = [await describe(learned, r) for r in rows]
        return "Learned skills:\n" + ("\n".join(lines) or "- none yet")
    if len(words) < 2:
        return _USAGE
    name = words[1]
    try:
        if verb == "approve":
            await learned.approve(name, actor=actor)
            return f"Learned skill {name} approved: a candidate now, offered in a share of turns."
        if verb in ("pin", "unpin"):
            await learned.pin(name, actor=actor, pinned=verb == "pin")
            if verb == "pin":
                return f"Learned skill {name} pinned: live, never retired automatically."
            return f"Learned skill {name} unpinned: the evidence decides again."
        if verb == "delete":
            await learned.delete(name, actor=actor)
            return f"Learned skill {name} deleted."
        if verb == "edit":
            if len(words) < 3:
                return "Usage: /skills edit <name> <new instructions>"
            await learned.edit(name, words[2], actor=actor)
            return f"Learned skill {name}: instructions replaced."
    except LearnedError as exc:
        return str(exc)
    return _USAGE
