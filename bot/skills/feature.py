"""The ``skills`` feature: Agent Skills folders offered to the model (``docs/skills.md``).

On the seam: a turn layer at stage ``input`` appends the names and descriptions of the skills
enabled for this person in this chat to the system prompt; ``oc_turn_tools`` offers
``use_skill``, ``read_skill_file`` and, where the plugin sandbox isolates, ``run_skill_script``
(only while some skill exists, so a server without skills sends the model nothing new);
``oc_commands`` adds ``/skills``.

Learned skills and missing capabilities (:mod:`bot.skills.learning`) hang on the same layer
(what the turn did, read from its checkpoint), on ``oc_reply_sent`` (the reply id),
``oc_reaction`` (after the feedback feature stored the vote) and ``oc_ready`` (the report).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from opencomputer.bot.commands import CommandRouter
from opencomputer.bot.events import Address, Reaction
from opencomputer.bot.hooks import DataRights, TurnCall, TurnLayer, TurnNext, hookimpl
from opencomputer.bot.plugins.sandbox import Sandbox
from opencomputer.bot.skills.catalog import SkillCatalog
from opencomputer.bot.skills.commands import register_skill_commands
from opencomputer.bot.skills.evidence import RULE
from opencomputer.bot.skills.gaps import CapabilityGaps
from opencomputer.bot.skills.learned import LearnedSkills
from opencomputer.bot.skills.learning import Learning
from opencomputer.bot.skills.scripts import scripts_refusal
from opencomputer.bot.skills.service import SkillService, prompt_section
from opencomputer.bot.skills.state import SkillStates
from opencomputer.bot.skills.tools import make_skill_tools
from opencomputer.bot.tools import Tool

__all__ = ["setup"]

logger = logging.getLogger(__name__)


async def setup(app: Any) -> None:
    """Feature entry point: find skills, offer them to the agent, add ``/skills``."""
    settings = app.settings
    catalog = SkillCatalog(settings.skill_dirs, settings.data_dir)
    rng = app.extras.get("skills_rng")  # tests and the simulation draw reproducibly
    rule = app.extras.get("skills_rule", RULE)  # tests decide on a few ratings
    learned = LearnedSkills(app.store.engine, settings, audit_to=app.store, rng=rng, rule=rule)
    service = SkillService(
        catalog, SkillStates(app.store.engine), app.runtime.person_of, learned=learned
    )
    learning = Learning(app, service, learned, CapabilityGaps(app.store.engine))
    service.learning = learning
    app.extras["skills"] = service
    app.on_stop.append(learning.stop)
    sandbox = Sandbox(mode=settings.plugin_sandbox, protect=_protected(settings))
    refusal = await asyncio.to_thread(scripts_refusal, sandbox)
    if refusal is not None:
        logger.info("skill scripts will not run: %s", refusal)
    runner = sandbox if refusal is None else None
    app.hooks.register(_Skills(service, app.store, runner), "skills")
    app.hooks.register(DataRights(learning.forget, learning.export), "skills-data")


def _protected(settings: Any) -> list[Path]:
    """What a script's sandbox must never see, even under a mounted skill folder."""
    paths = [Path(settings.data_dir), Path(".env").resolve()]
    url = settings.resolved_database_url
    if url.startswith("sqlite") and ":///" in url:
        paths.append(Path(url.split(":///", 1)[1]))
    return paths


class _Skills:
    """Skills on the seam: the prompt's list, the tools, ``/skills``, learning."""

    def __init__(self, service: SkillService, store: Any, sandbox: Sandbox | None) -> None:
        self.service = service
        self.store = store
        self.tools = make_skill_tools(service, sandbox)
        assert service.learning is not None and service.learned is not None
        self.learning = service.learning
        self.learned = service.learned

    @hookimpl
    def oc_turn_layers(self) -> list[tuple[str, TurnLayer]]:
        return [("input", self.list_skills)]

    async def list_skills(self, call: TurnCall, call_next: TurnNext) -> Any:
        """Name the skills usable in this turn in its system prompt (bodies stay out); note
        what the turn did for learning.
        """
        ctx = call.ctx
        learned_any = bool(await self.learned.rows())
        # a few directory listings (~50 µs): cheaper in the loop than a hop to a thread
        if not learned_any and not self.service.catalog.has_any():
            return await self.learning.observe(call, call_next, {})  # no person lookup
        seen = await self.service.visible(ctx.user, ctx.address, ctx.chat_kind)
        shared = {n: s for n, s in seen.enabled.items() if s.source != "learned"}
        arms: dict[str, bool] = {}
        if learned_any:
            person = seen.person
            offer = await self.learned.offer(person, call.text, taken=seen.scan_names)
            shared.update({n: s for n, s in offer.listed.items() if seen.on.get(n, True)})
            arms = {n: o for n, o in offer.arms.items() if seen.on.get(n, True)}
        if shared:
            ctx.system_prompt = f"{ctx.system_prompt.rstrip()}\n\n{prompt_section(shared)}"
        return await self.learning.observe(call, call_next, arms)

    @hookimpl
    def oc_turn_tools(self, address: Address) -> list[Tool]:
        has = self.service.catalog.has_any() or self.learned.cached_any()
        return self.tools if has else []

    @hookimpl
    def oc_reply_sent(self, record: Any) -> Any:
        return self.learning.on_reply(record)

    @hookimpl(trylast=True)  # after the feedback feature stored the vote this reaction makes
    def oc_reaction(self, reaction: Reaction, reply_id: int | None) -> Any:
        return self.learning.on_reaction(reaction, reply_id)

    @hookimpl
    def oc_ready(self) -> Any:
        return self.learning.start()

    @hookimpl
    def oc_commands(self, router: CommandRouter) -> None:
        register_skill_commands(router, self.service, self.store)
