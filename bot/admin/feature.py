"""The admin feature's wiring: access, rate limits, identity, approvals, audit, commands.

The ``admin`` entry point of ``opencomputer.features`` (it cannot be turned off); ``setup`` runs
after the runtime exists and before connectors start (so their native command lists include
ours).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opencomputer.bot import audit as audit_log
from opencomputer.bot.access import AccessPolicy, access_middleware
from opencomputer.bot.access.models import GrantRow, PairingRow  # noqa: F401  (tables)
from opencomputer.bot.admin.model_choice import ModelChoice
from opencomputer.bot.approvals import NO, YES, ApprovalGate, Approvals
from opencomputer.bot.commands import CommandContext, CommandRouter
from opencomputer.bot.effects import ApprovalPolicy
from opencomputer.bot.events import Address, Chat, ChatKind, Message, Reaction, User
from opencomputer.bot.hooks import TurnLayer, hookimpl
from opencomputer.bot.identity import IdentityLinks
from opencomputer.bot.middleware import Middleware
from opencomputer.bot.ratelimit import LocalLimiter, RedisLimiter, parse_rate, rate_limit_middleware
from opencomputer.bot.runtime import Job, ReplyRecord, Runtime

if TYPE_CHECKING:
    from opencomputer.bot.features import Host as App

__all__ = ["AdminServices", "setup"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class AdminServices:
    """What the admin commands share; on ``app.extras["admin"]``."""

    app: App
    policy: AccessPolicy
    identity: IdentityLinks
    approvals: Approvals
    models: ModelChoice
    started_at: float = field(default_factory=time.time)
    forget_pending: dict[str, float] = field(default_factory=dict)

    async def audit(self, actor: str, action: str, detail: dict[str, Any] | None = None) -> int:
        """Append to the audit log."""
        return await audit_log.audit(self.app.store, actor, action, detail)

    async def audit_recent(self, n: int, *, actor: str | None = None) -> list[audit_log.AuditEntry]:
        """The newest audit entries."""
        return await audit_log.recent(self.app.store, n, actor=actor)

    async def person_accounts(self, user: User) -> tuple[str, list[str]]:
        """The person id and every linked account of ``user``."""
        return self.identity.person_key(user.key), self.identity.accounts_of(user.key)

    async def decide(self, approval_id: int, approved: bool, by: User) -> str | None:
        """Record a decision on an approval and queue the paused turn to resume."""
        row = await self.approvals.get(approval_id)
        if row is None or row.status not in ("pending", "approved", "rejected"):
            return f"There is no open approval #{approval_id}."
        # The very account that asked (not any account linked to it), or an admin.
        if not (by.key == row.user_key or self.app.runtime.is_admin(by)):
            await self.audit(by.key, "approval.denied", {"approval": approval_id})
            return "Only the person who asked, or an admin, can decide this."
        status = "approved" if approved else "rejected"
        await self.approvals.set_status(approval_id, status, by=by.key)
        tools = [c.get("name") for c in _calls(row)]
        await self.audit(by.key, f"approval.{status}", {"approval": approval_id, "tools": tools})
        if approved:
            await self.audit(
                row.user_key, "tool.dangerous", {"approval": approval_id, "tools": tools}
            )
        await _requeue(self.app.runtime, row, await _chat_kind(self.app, row.conversation))
        return None if approved else "Rejected; the action will not run."


async def _chat_kind(app: App, conversation: str) -> ChatKind:
    """A group stays a group when its turn resumes (memories it learns are not private)."""
    from opencomputer.bot.schedules.feature import chat_kind

    kind = await chat_kind(app, conversation)
    return ChatKind.DIRECT if kind == ChatKind.DIRECT else ChatKind.GROUP


async def _requeue(runtime: Runtime, row: Any, kind: ChatKind = ChatKind.GROUP) -> None:
    """Queue the paused conversation; its next turn resumes the thread (see ApprovalGate)."""
    address = Address.parse(row.conversation)
    platform, _, user_id = row.user_key.partition(":")
    message = Message(
        platform=address.platform,
        event_id=f"approval-{row.id}-{time.time_ns()}",
        chat=Chat(address.platform, address.chat_id, kind),
        user=User(platform, user_id, row.user_name),
        thread_id=address.thread_id,
        text="",
    )
    await runtime.route(Job(message, None))  # the lane keeps it in order with the chat's turns


def _calls(row: Any) -> list[dict[str, Any]]:
    import orjson

    return list(orjson.loads(row.calls or "[]"))


async def setup(app: App) -> None:
    """Feature entry point: build the services and register them on the seam."""
    runtime, engine, settings = app.runtime, app.store.engine, app.settings
    identity = IdentityLinks(engine)
    policy = AccessPolicy(settings, engine, accounts_of=identity.accounts_of)
    approvals = Approvals(engine)
    models = ModelChoice(engine, settings.model)
    for part in (identity, policy, approvals, models):
        await part.load()
    if app.changes is not None:  # other processes hold copies of these tables
        policy.announce = app.changes.watch("access", policy.load)
        identity.announce = app.changes.watch("identity", identity.load)
        models.announce = app.changes.watch("models", models.load)
    services = AdminServices(app, policy, identity, approvals, models)
    app.extras["admin"] = services

    async def on_request(approval_id: int, ctx: Any, calls: list[dict[str, Any]]) -> None:
        actor = ctx.user.key if ctx.user is not None else "system"
        tools = [c.get("name") for c in calls]
        await services.audit(actor, "approval.requested", {"approval": approval_id, "tools": tools})

    gate = ApprovalGate(
        runtime.agent.graph,
        approvals,
        on_request,
        settings.secret_values(),
        policy=ApprovalPolicy.from_settings(settings),
        is_owner=runtime.is_admin,
    )
    limiter = await _rate_limiter(app, policy)
    app.hooks.register(_Admin(services, gate, limiter), "admin")

    async def on_denied(ctx: CommandContext) -> None:
        await services.audit(ctx.event.user.key, "command.denied", {"command": ctx.event.name})

    app.commands.on_denied.append(on_denied)


class _Admin:
    """The admin feature on the seam: who is admin and who a person is, which model answers,
    access and rate-limit rules, the approval gate, approvals decided by reactions, commands.
    """

    def __init__(self, services: AdminServices, gate: ApprovalGate, limiter: Middleware) -> None:
        self.services = services
        self.gate = gate
        say = services.app.runtime.say
        self.rules = [
            ("access", access_middleware(services.policy, say)),
            ("rate_limit", limiter),
        ]

    @hookimpl
    def oc_is_admin(self, user: User) -> bool:
        return self.services.policy.is_admin(user)

    @hookimpl
    def oc_person_of(self, user: User) -> Awaitable[str]:
        return self.services.identity.person_of(user)

    @hookimpl
    def oc_choose_model(self, address: Address) -> str:
        return self.services.models.choose(address)

    @hookimpl
    def oc_inbound_rules(self) -> list[tuple[str, Middleware]]:
        return self.rules

    @hookimpl
    def oc_turn_layers(self) -> list[tuple[str, TurnLayer]]:
        return [("approvals", self.gate.layer)]

    @hookimpl
    async def oc_reply_sent(self, record: ReplyRecord) -> None:
        approvals = self.services.approvals
        if approvals.asked_in(record.meta.run_id):
            await approvals.attach_reply(record.meta.run_id, record.reply_id)

    @hookimpl
    async def oc_reaction(self, reaction: Reaction, reply_id: int | None) -> None:
        if reply_id is None or not reaction.added or reaction.emoji not in YES | NO:
            return
        services = self.services
        rows = await services.approvals.find(reply_id=reply_id)
        if rows and rows[0].status == "pending":
            answer = await services.decide(int(rows[0].id), reaction.emoji in YES, reaction.user)
            if answer:
                await services.app.runtime.say(reaction.address, answer)

    @hookimpl
    def oc_commands(self, router: CommandRouter) -> None:
        from opencomputer.bot.admin.commands import register_admin_commands
        from opencomputer.bot.admin.user_commands import register_user_commands

        register_user_commands(router, self.services)
        register_admin_commands(router, self.services)


async def _rate_limiter(app: App, policy: AccessPolicy) -> Any:
    settings = app.settings
    limiter: Any
    if settings.redis_url:
        import redis.asyncio as redis

        client = redis.from_url(settings.redis_url)
        app.on_stop.append(client.aclose)
        limiter = RedisLimiter(client, prefix=f"{settings.redis_prefix}:ratelimit:")
    else:
        limiter = LocalLimiter()
    return rate_limit_middleware(
        limiter,
        per_user=parse_rate(settings.rate_limit_user),
        per_chat=parse_rate(settings.rate_limit_chat),
        exempt=policy.is_owner_or_configured_admin,
        say=app.runtime.say,
    )
