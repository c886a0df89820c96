"""The skills one person sees in one chat, and the prompt section naming them.

Progressive disclosure, as the Agent Skills format intends: the system prompt carries only each
skill's name and description (a few dozen tokens each); the body is read when the model calls
``use_skill``, a resource when it calls ``read_skill_file``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opencomputer.bot.events import Address, User
from opencomputer.bot.skills.catalog import Scan, SkillCatalog
from opencomputer.bot.skills.format import Skill
from opencomputer.bot.skills.state import SkillStates

if TYPE_CHECKING:
    from opencomputer.bot.skills.learned import LearnedSkills

__all__ = ["MAX_LISTED_SKILLS", "SkillService", "Visible", "prompt_section"]

MAX_LISTED_SKILLS = 60
"""More skills than this are not listed in the prompt (their names would crowd it out)."""

PersonOf = Callable[[User], Awaitable[str]]


@dataclass(slots=True)
class Visible:
    """What one person may use in one chat: the enabled skills, and every skill they could see
    there (enabled or not, for ``/skills``) with the refusals.
    """

    enabled: dict[str, Skill]
    scan: Scan
    on: dict[str, bool]
    person: str | None = None
    """The person asking, in a direct chat only (None in a group)."""
    scan_names: set[str] = field(default_factory=set)
    """The names the folders hold (a learned skill never takes one)."""


class SkillService:
    """The catalog, the enablement decisions and who is who, for the tools, layer and commands."""

    def __init__(
        self,
        catalog: SkillCatalog,
        states: SkillStates,
        person_of: PersonOf,
        *,
        learned: LearnedSkills | None = None,
    ) -> None:
        self.catalog = catalog
        self.states = states
        self.person_of = person_of
        self.learned = learned
        self.learning: Any = None  # opencomputer.bot.skills.learning.Learning, set by the feature

    async def visible(self, user: User | None, address: Address | None, kind: str) -> Visible:
        """The skills ``user`` sees in the chat at ``address`` (of kind ``kind``).

        A person's own skills (and learned skills drafted for them) count only in a direct
        chat: in a group the listing, the bodies and the files would all reach the other members.
        Learned skills (candidates and live ones) come after the folders' and never take a name.
        """
        person = await self.person_of(user) if user is not None and kind == "direct" else None
        scan = await asyncio.to_thread(self.catalog.scan, person)
        names = set(scan.skills)
        if self.learned is not None:
            for name, skill in (await self.learned.usable(person)).items():
                scan.skills.setdefault(name, skill)
        decisions = await self.states.decisions()
        chat = f"{address.platform}:{address.chat_id}" if address is not None else None
        on = {name: SkillStates.is_on(decisions, name, chat) for name in scan.skills}
        enabled = {name: skill for name, skill in scan.skills.items() if on[name]}
        return Visible(enabled, scan, on, person, names)


def prompt_section(skills: dict[str, Skill]) -> str:
    """The system prompt's list of skills: names and descriptions only."""
    lines = [
        "## Skills you can use",
        "Each skill holds instructions for one kind of task. When a request matches a skill's "
        "description, call use_skill with its name before answering, then follow what it says "
        "(read_skill_file reads the files it mentions).",
    ]
    names = sorted(skills)
    lines += [f"- {name}: {skills[name].description}" for name in names[:MAX_LISTED_SKILLS]]
    if len(names) > MAX_LISTED_SKILLS:
        lines.append(f"- ({len(names) - MAX_LISTED_SKILLS} more; ask an admin to turn some off)")
    return "\n".join(lines)
