"""Feature entry point (``opencomputer.features``: feedback): reactions tune prompt variants."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from opencomputer.bot.commands import CommandRouter
from opencomputer.bot.events import Message, Reaction
from opencomputer.bot.feedback.commands import register_commands
from opencomputer.bot.feedback.guard import ToolFailureTap
from opencomputer.bot.feedback.service import FeedbackService
from opencomputer.bot.feedback.tuner import AuditHook
from opencomputer.bot.hooks import DataRights, hookimpl

if TYPE_CHECKING:
    from opencomputer.bot.features import Host as App

__all__ = ["setup"]

logger = logging.getLogger(__name__)


async def setup(app: App) -> None:
    """Wire feedback into the runtime: prompt choice, reaction and reply listeners, commands.

    ``app.extras["feedback"]`` holds the service; every tuning event goes to the audit log and
    to any other hook appended to ``service.tuner.audit_hooks``.
    """
    rng = app.extras.get("feedback_rng")
    service = FeedbackService(app.settings, app.store, llm=app.llm, rng=rng)
    hook = audit_hook(app.store)
    if hook is not None:
        service.tuner.audit_hooks.append(hook)
    await service.start()
    app.hooks.register(_Feedback(service), "feedback")
    app.extras["feedback"] = service
    app.on_stop.append(service.stop)

    async def forget(_person: str, accounts: list[str]) -> str:
        votes, notes = await service.repo.forget(accounts)
        service.selector.assignments.drop(await service.repo.forget_assignments(accounts))
        return f"{votes} feedback ratings and {notes} feedback notes"

    async def export(_person: str, accounts: list[str]) -> dict[str, Any]:
        return await service.repo.export(accounts)

    app.hooks.register(DataRights(forget, export), "feedback-data")


class _Feedback:
    """Prompt choice, reaction and reply observers, the tool-failure tap, "why" notes."""

    def __init__(self, service: FeedbackService) -> None:
        self.service = service
        service.tools_tap = self.tap = ToolFailureTap()

    @hookimpl
    def oc_choose_prompt(self, message: Message) -> Awaitable[tuple[str | None, int | None]]:
        return self.service.selector.choose(message)

    @hookimpl
    def oc_reaction(self, reaction: Reaction, reply_id: int | None) -> Awaitable[None]:
        return self.service.on_reaction(reaction, reply_id)

    @hookimpl
    def oc_reply_sent(self, record: Any) -> Awaitable[None]:
        return self.service.on_reply(record)

    @hookimpl
    def oc_inbound_rules(self) -> list[tuple[str, Any]]:
        return [("annotate", self.service.reason_middleware)]

    @hookimpl
    def oc_turn_layers(self) -> list[tuple[str, Any]]:
        return [("observe", self.tap.layer)]

    @hookimpl
    def oc_commands(self, router: CommandRouter) -> None:
        register_commands(router, self.service)


def audit_hook(store: object) -> AuditHook | None:
    """A tuning-event hook writing to the shared audit log (``bot/audit.py``), if installed."""
    try:
        from opencomputer.bot import audit as audit_log
    except ImportError:  # the audit feature is not part of this build
        return None

    async def forward(event: Any) -> None:
        detail = {
            "variant": event.variant_id,
            "event": event.id,
            "reason": event.reason,
            "changes": json.loads(event.changes or "[]"),
        }
        await audit_log.audit(store, event.actor or "system", f"prompt.{event.kind}", detail)

    return forward
