"""Commands everyone may use: data rights (``/forget``, ``/export``), linking, approvals.

``/forget`` and ``/export`` answer only in a direct chat: in a group everyone would read the
answer (see :mod:`opencomputer.bot.admin.linking` for ``/link``).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import orjson

from opencomputer.bot.admin.data import export_person, forget_person
from opencomputer.bot.admin.linking import dm_only, in_direct_chat, register_link_commands
from opencomputer.bot.commands import CommandContext, CommandRouter
from opencomputer.bot.outfiles import FileSender, OutFile

if TYPE_CHECKING:
    from opencomputer.bot.admin.services import AdminServices

__all__ = ["register_user_commands"]

logger = logging.getLogger(__name__)

CONFIRM_WINDOW = 300.0
KEPT = (
    "Kept: your permission to use this assistant, the audit-log entries that name your account "
    "(the audit log is append-only and holds no message text) and anonymous counters."
)


def register_user_commands(router: CommandRouter, services: AdminServices) -> None:
    """Add the commands every allowed user has."""
    app = services.app

    @router.command("forget", args="[confirm]")
    async def forget(ctx: CommandContext) -> str:
        """Delete everything stored about you (asks for confirmation)."""
        if not in_direct_chat(ctx):
            return dm_only("forget")
        user = ctx.event.user
        deadline = services.forget_pending.get(user.key, 0.0)
        if ctx.args.strip().lower() != "confirm" or deadline < time.time():
            services.forget_pending[user.key] = time.time() + CONFIRM_WINDOW
            return (
                "This deletes your messages, my replies to them, your reactions, feedback, "
                "memories, plugin data (such as notes) and conversation history, on every "
                "linked account. It cannot be undone. Send `/forget confirm` within 5 minutes "
                "to go ahead."
            )
        services.forget_pending.pop(user.key, None)
        person, accounts = await services.person_accounts(user)
        done = await forget_person(app, person, accounts)
        await services.audit(user.key, "data.forget", {"accounts": len(accounts)})
        return "Deleted:\n" + "\n".join(f"- {line}" for line in done) + "\n\n" + KEPT

    @router.command("export")
    async def export(ctx: CommandContext) -> str:
        """Get everything stored about you, as a JSON file."""
        if not in_direct_chat(ctx):
            return dm_only("export")
        person, accounts = await services.person_accounts(ctx.event.user)
        data = await export_person(app, person, accounts)
        await services.audit(ctx.event.user.key, "data.export", {"accounts": len(accounts)})
        body = orjson.dumps(data, option=orjson.OPT_INDENT_2)
        name = f"export-{time.strftime('%Y-%m-%d', time.gmtime())}.json"
        if await _send_export(ctx, OutFile(name, "application/json", body)):
            return f"Everything stored about you is in {name}."
        return f"Everything stored about you:\n```json\n{body.decode()}\n```"

    async def _send_export(ctx: CommandContext, file: OutFile) -> bool:
        """Send the export as a file where the platform takes one that big; False: as text."""
        connector = app.runtime.connectors.get(ctx.event.platform)
        if not isinstance(connector, FileSender):
            return False
        limit = connector.capabilities.max_file_bytes if hasattr(connector, "capabilities") else 0
        if limit and file.size > limit:
            return False
        try:
            await connector.send_file(
                ctx.event.address, file, reply_to=ctx.event.message_id or None
            )
        except Exception as exc:  # the text form still reaches the person
            logger.warning("export file to %s not sent: %s", ctx.event.address.key, exc)
            return False
        return True

    register_link_commands(router, services)

    async def _decide(ctx: CommandContext, approved: bool) -> str | None:
        arg = ctx.args.strip().lstrip("#")
        if arg.isdigit():
            approval_id: int | None = int(arg)
        else:
            rows = await services.approvals.find(
                conversation=ctx.event.address.key, status="pending"
            )
            # In a group several people may be waiting: the caller's own request comes first.
            own = [r for r in rows if r.user_key == ctx.event.user.key]
            approval_id = int((own or rows)[0].id) if rows else None
        if approval_id is None:
            return "There is nothing waiting for approval here."
        return await services.decide(approval_id, approved, ctx.event.user)

    @router.command("approve", args="[id]")
    async def approve(ctx: CommandContext) -> str | None:
        """Allow an action I asked permission for."""
        return await _decide(ctx, True)

    @router.command("reject", args="[id]")
    async def reject(ctx: CommandContext) -> str | None:
        """Refuse an action I asked permission for."""
        return await _decide(ctx, False)
