"""The ``skills`` feature: Agent Skills folders offered to the model (``docs/skills.md``).

On the seam: a turn layer at stage ``input`` appends the names and descriptions of the skills
enabled for this person in this chat to the system prompt; ``oc_turn_tools`` offers
``use_skill``, ``read_skill_file`` and, where the plugin sandbox isolates, ``run_skill_script``
(only while some skill exists, so a server without skills sends the model nothing new);
``oc_commands`` adds ``/skills``.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from bot.commands import CommandRouter
from bot.events import Address
from bot.hooks import TurnCall, TurnLayer, TurnNext, hookimpl
from bot.plugins.sandbox import Sandbox
from bot.skills.catalog import SkillCatalog
from bot.skills.commands import register_skill_commands
from bot.skills.scripts import scripts_refusal
from bot.skills.service import SkillService, prompt_section
from bot.skills.state import SkillStates
from bot.skills.tools import make_skill_tools
from bot.tools import Tool

__all__ = ["setup"]

logger = logging.getLogger(__name__)


async def setup(app: Any) -> None:
    """Feature entry point: find skills, offer them to the agent, add ``/skills``."""
    settings = app.settings
    catalog = SkillCatalog(settings.skill_dirs, settings.data_dir)
    service = SkillService(catalog, SkillStates(app.store.engine), app.runtime.person_of)
    app.extras["skills"] = service
    sandbox = Sandbox(mode=settings.plugin_sandbox, protect=_protected(settings))
    refusal = await asyncio.to_thread(scripts_refusal, sandbox)
    if refusal is not None:
        logger.info("skill scripts will not run: %s", refusal)
    runner = sandbox if refusal is None else None
    app.hooks.register(_Skills(service, app.store, runner), "skills")


def _protected(settings: Any) -> list[Path]:
    """What a script's sandbox must never see, even under a mounted skill folder."""
    paths = [Path(settings.data_dir), Path(".env").resolve()]
    url = settings.resolved_database_url
    if url.startswith("sqlite") and ":///" in url:
        paths.append(Path(url.split(":///", 1)[1]))
    return paths


class _Skills:
    """Skills on the seam: the prompt's list, the tools, ``/skills``."""

    def __init__(self, service: SkillService, store: Any, sandbox: Sandbox | None) -> None:
        self.service = service
        self.store = store
        self.tools = make_skill_tools(service, sandbox)

    @hookimpl
    def oc_turn_layers(self) -> list[tuple[str, TurnLayer]]:
        return [("input", self.list_skills)]

    async def list_skills(self, call: TurnCall, call_next: TurnNext) -> Any:
        """Name the skills usable in this turn in its system prompt (bodies stay out)."""
        ctx = call.ctx
        if not await asyncio.to_thread(self.service.catalog.has_any):
            return await call_next(call)  # no skill anywhere: no person lookup, no query
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
