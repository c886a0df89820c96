"""``/memory``: the owner lists, adds, edits and deletes their memories.

Only in a direct chat: in a group the listing would show everyone what the person told the
bot in private, so there it answers one line and reveals nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime

from opencomputer.bot.commands import CommandContext, CommandRouter
from opencomputer.bot.events import ChatKind
from opencomputer.bot.memory.store import MemoryStore

__all__ = ["register_memory_commands"]

_USAGE = (
    "Usage: /memory (list) · /memory add <fact> · /memory edit <id> <new text> · "
    "/memory delete <id> [id...] · /memory clear"
)


def register_memory_commands(router: CommandRouter, store: MemoryStore) -> None:
    """Add ``/memory`` to the router."""

    @router.command("memory", args="[list|add|edit|delete|clear] ...", aliases=("memories",))
    async def memory(ctx: CommandContext) -> str:
        """See, edit or delete what I remember about you."""
        if ctx.event.chat.kind != ChatKind.DIRECT:
            return "/memory works only in a direct message: send it to me privately."
        person = await ctx.runtime.person_of(ctx.event.user)
        verb, _, rest = ctx.args.strip().partition(" ")
        verb = verb.lower() or "list"
        rest = rest.strip()
        if verb in ("list", "ls", "show"):
            items = await store.list_of(person)
            if not items:
                return "I don't remember anything about you yet."
            lines = [
                f"#{m.id} {m.text} ({datetime.fromtimestamp(m.created_at, UTC):%Y-%m-%d})"
                for m in items
            ]
            return "What I remember about you:\n" + "\n".join(lines)
        if verb == "add" and rest:
            added = await store.add(person, rest, source=ctx.event.address.key)
            return f"Remembered #{added.id}."
        if verb == "edit":
            ident, _, text = rest.partition(" ")
            if not ident.lstrip("#").isdigit() or not text.strip():
                return _USAGE
            ok = await store.edit(person, int(ident.lstrip("#")), text)
            return f"Updated #{ident.lstrip('#')}." if ok else f"You have no memory #{ident}."
        if verb in ("delete", "del", "rm", "forget"):
            ids = [
                int(x.lstrip("#"))
                for x in rest.replace(",", " ").split()
                if x.lstrip("#").isdigit()
            ]
            if not ids:
                return _USAGE
            count = await store.delete(person, ids)
            return f"Deleted {count} memor{'y' if count == 1 else 'ies'}."
        if verb == "clear":
            count = await store.forget(person)
            return f"Deleted all {count} memories."
        return _USAGE
