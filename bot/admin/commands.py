"""Admin-only commands.

Non-admins never see them in ``/help`` or native menus (their spec says ``admin``), and the
router refuses and audits any attempt; every run is audited too.
"""

from __future__ import annotations

import datetime as dt
import functools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from opencomputer.bot import __version__
from opencomputer.bot.access.policy import chat_subject, user_subject
from opencomputer.bot.admin.model_choice import GLOBAL
from opencomputer.bot.admin.plugin_commands import register_plugin_commands
from opencomputer.bot.commands import CommandContext, CommandHandler, CommandRouter
from opencomputer.bot.events import Address, ChatKind
from opencomputer.bot.storage.models import InboundRow, ReplyRow

if TYPE_CHECKING:
    from opencomputer.bot.admin.services import AdminServices

__all__ = ["register_admin_commands"]

_IN = InboundRow.__table__  # type: ignore[attr-defined]
_REPLY = ReplyRow.__table__  # type: ignore[attr-defined]


def register_admin_commands(router: CommandRouter, services: AdminServices) -> None:
    """Add the admin commands."""
    app = services.app

    def admin(name: str, args: str = "") -> Callable[[CommandHandler], CommandHandler]:
        """``router.command(admin=True)`` plus an audit entry for every run."""

        def wrap(fn: CommandHandler) -> CommandHandler:
            @functools.wraps(fn)
            async def audited(ctx: CommandContext) -> str | None:
                await services.audit(
                    ctx.event.user.key, f"command.{name}", {"args": ctx.args[:200]}
                )
                return await fn(ctx)

            return router.command(name, admin=True, args=args)(audited)

        return wrap

    register_plugin_commands(admin, services)

    @admin("status")
    async def status(ctx: CommandContext) -> str:
        """Uptime, version, model, connectors, queue depth, turns today."""
        runtime = app.runtime
        midnight = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        async with app.store.engine.connect() as conn:
            turns = await conn.scalar(
                select(func.count())
                .select_from(_REPLY)
                .where(_REPLY.c.created_at >= midnight.timestamp())
            )
        uptime = dt.timedelta(seconds=int(time.time() - runtime.started_at))
        health = await app.readiness()
        for platform, connector in runtime.connectors.items():
            health.setdefault(platform, str(connector.state))
        lines = [
            f"opencomputer {__version__}, up {uptime}",
            f"model: {runtime.choose_model(ctx.event.address)} ({app.model_status})",
            *(f"{name}: {state}" for name, state in health.items() if name not in ("model",)),
            f"queue depth: {runtime.queue_depth}",
            f"turns today: {int(turns or 0)}",
        ]
        return "\n".join(lines)

    @admin("model", "[name] [global|reset]")
    async def model(ctx: CommandContext) -> str:
        """Show or change the model for this chat (or globally)."""
        address = ctx.event.address
        words = ctx.args.split()
        if not words:
            current = services.models.choose(address)
            return f"Model here: {current} ({services.models.scope_of(address)})."
        name, scope = words[0], GLOBAL if "global" in words[1:] else address.key
        if name == "reset":
            await services.models.set(scope, None, by=ctx.event.user.key)
            return f"Model choice cleared; now {services.models.choose(address)}."
        try:
            available = await app.llm.tags()
        except Exception as exc:
            return f"Cannot check the model with Ollama right now ({type(exc).__name__})."
        if name not in available:
            known = ", ".join(sorted(available)) or "none"
            return f"Ollama has no model {name!r}. Available: {known}."
        await services.models.set(scope, name, by=ctx.event.user.key)
        await services.audit(ctx.event.user.key, "model.set", {"scope": scope, "model": name})
        return f"Model set to {name} {'everywhere' if scope == GLOBAL else 'in this chat'}."

    @admin("allow", "[code | platform:user_id]")
    async def allow(ctx: CommandContext) -> str:
        """Let a person (pairing code or account) or this group chat use the assistant."""
        arg, actor = ctx.args.strip(), ctx.event.user.key
        if not arg:
            if ctx.event.chat.kind is not ChatKind.GROUP:
                return "Usage: /allow <pairing code> | platform:user_id (or /allow in a group)."
            await services.policy.grant(chat_subject(ctx.event.chat.key), "allowed", by=actor)
            await services.audit(actor, "access.allow_chat", {"chat": ctx.event.chat.key})
            return "This chat is allowed: I will answer here."
        if ":" in arg:
            subject = arg if arg.startswith(("chat:", "user:")) else user_subject(arg)
            await services.policy.grant(subject, "allowed", by=actor)
            await services.audit(actor, "access.allow", {"subject": subject})
            return f"Allowed {subject.split(':', 1)[1]}."
        pairing = await services.policy.redeem(arg)
        if pairing is None:
            return "That pairing code is unknown or expired."
        await services.policy.grant(user_subject(pairing.user_key), "allowed", by=actor)
        await services.audit(actor, "access.allow", {"subject": user_subject(pairing.user_key)})
        try:
            await app.runtime.say(pairing.address, "You're in: an admin allowed you. Say hello!")
        except LookupError:
            pass
        return f"Allowed {pairing.user_name or pairing.user_key} ({pairing.user_key})."

    @admin("deny", "[platform:user_id]")
    async def deny(ctx: CommandContext) -> str:
        """Stop a person (or, with no argument in a group, this chat) from using the assistant."""
        arg, actor = ctx.args.strip(), ctx.event.user.key
        if not arg:
            if ctx.event.chat.kind is not ChatKind.GROUP:
                return "Usage: /deny platform:user_id (or /deny in a group)."
            await services.policy.revoke(chat_subject(ctx.event.chat.key))
            await services.audit(actor, "access.deny_chat", {"chat": ctx.event.chat.key})
            return "I will no longer answer in this chat."
        if arg.startswith("chat:"):
            await services.policy.revoke(arg)
            await services.audit(actor, "access.deny_chat", {"chat": arg})
            return f"Chat {arg[5:]} is no longer allowed."
        key = arg.removeprefix("user:")
        if key in app.settings.admins or key.startswith("terminal:"):
            return f"{key} is an admin from OC_ADMINS (or the local owner); change that setting."
        await services.policy.grant(user_subject(key), "denied", by=actor)
        await services.audit(actor, "access.deny", {"subject": user_subject(key)})
        return f"Denied {key}."

    @admin("admins", "[add|remove platform:user_id]")
    async def admins(ctx: CommandContext) -> str:
        """List, add or remove admins."""
        words, actor = ctx.args.split(), ctx.event.user.key
        if len(words) == 2 and words[0] in ("add", "remove"):
            subject = user_subject(words[1].removeprefix("user:"))
            if words[0] == "add":
                await services.policy.grant(subject, "admin", by=actor)
            else:
                await services.policy.grant(subject, "allowed", by=actor)
            await services.audit(actor, f"access.admin_{words[0]}", {"subject": subject})
            return f"{words[1]}: {'now an admin' if words[0] == 'add' else 'no longer an admin'}."
        found = services.policy.admins()
        lines = [f"- {key} ({source})" for key, source in found]
        return "Admins (the terminal owner always is one):\n" + ("\n".join(lines) or "- none")

    @admin("broadcast", "<text>")
    async def broadcast(ctx: CommandContext) -> str:
        """Send a message to every conversation the assistant has had."""
        text = ctx.args.strip()
        if not text:
            return "Usage: /broadcast <text>"
        async with app.store.engine.connect() as conn:
            keys = [row[0] for row in await conn.execute(select(_IN.c.conversation).distinct())]
        sent = failed = 0
        for key in sorted(keys):
            address = Address.parse(key)
            if address.platform not in app.runtime.connectors:
                continue
            if services.policy.role(user_subject(key)) == "denied":
                continue  # a direct chat with someone who was denied
            try:
                await app.runtime.say(address, text)
                sent += 1
            except Exception:
                failed += 1
        return f"Broadcast sent to {sent} conversations" + (
            f", {failed} failed." if failed else "."
        )

    @admin("audit", "[n]")
    async def audit(ctx: CommandContext) -> str:
        """Show the newest audit-log entries."""
        arg = ctx.args.strip()
        n = min(int(arg), 100) if arg.isdigit() else 10
        entries = await services.audit_recent(n)
        lines = [
            f"#{e.seq} {dt.datetime.fromtimestamp(e.at, dt.UTC):%Y-%m-%d %H:%M} "
            f"{e.actor} {e.action}"
            f"{' ' + str(e.detail) if e.detail else ''}"
            for e in entries
        ]
        return "Audit log (newest first):\n" + ("\n".join(lines) or "(empty)")
