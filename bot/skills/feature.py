"""The ``skills`` feature: Agent Skills folders offered to the model (``docs/skills.md``).

On the seam: a turn layer at stage ``input`` appends the names and descriptions of the skills
enabled for this person in this chat to the system prompt; ``oc_turn_tools`` offers
``use_skill`` and ``read_skill_file`` (only while some skill exists, so a server without skills
sends the model nothing new); ``oc_commands`` adds ``/skills``.
"""

from __future__ import annotations

from typing import Any

from bot.commands import CommandRouter
from bot.events import Address
from bot.hooks import TurnCall, TurnLayer, TurnNext, hookimpl
from bot.skills.catalog import SkillCatalog
from bot.skills.commands import register_skill_commands
from bot.skills.service import SkillService, prompt_section
from bot.skills.state import SkillStates
from bot.skills.tools import make_skill_tools
from bot.tools import Tool

__all__ = ["setup"]


async def setup(app: Any) -> None:
    """Feature entry point: find skills, offer them to the agent, add ``/skills``."""
    settings = app.settings
    catalog = SkillCatalog(settings.skill_dirs, settings.data_dir)
    service = SkillService(catalog, SkillStates(app.store.engine), app.runtime.person_of)
    app.extras["skills"] = service
    app.hooks.register(_Skills(service, app.store), "skills")


class _Skills:
    """Skills on the seam: the prompt's list, the two tools, ``/skills``."""

    def __init__(self, service: SkillService, store: Any) -> None:
        self.service = service
        self.store = store
        self.tools = make_skill_tools(service)

    @hookimpl
    def oc_turn_layers(self) -> list[tuple[str, TurnLayer]]:
        return [("input", self.list_skills)]

    async def list_skills(self, call: TurnCall, call_next: TurnNext) -> Any:
        """Name the skills usable in this turn in its system prompt (bodies stay out)."""
        ctx = call.ctx
        seen = await self.service.visible(ctx.user, ctx.address, ctx.chat_kind)
        if seen.enabled:
            ctx.system_prompt = f"{ctx.system_prompt.rstrip()}\n\n{prompt_section(seen.enabled)}"
        return await call_next(call)

    @hookimpl
    def oc_turn_tools(self, address: Address) -> list[Tool]:
        return self.tools if self.service.catalog.has_any() else []

    @hookimpl
    def oc_commands(self, router: CommandRouter) -> None:
        register_skill_commands(router, self.service, self.store)
