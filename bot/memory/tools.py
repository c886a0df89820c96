"""The ``remember`` tool: the model saves a lasting fact about the person it talks to.

Tools get only their arguments; who is talking comes from the turn context LangGraph holds
for the running graph (``get_runtime``), so the model can never write into another person's
memory by naming them.
"""

from __future__ import annotations

from typing import Any

from opencomputer.bot.memory.store import MemoryStore, Origin
from opencomputer.bot.tools import Tool, ToolError, tool
from opencomputer.graphs.agent.state import TurnContext, current_turn

__all__ = ["make_memory_tools", "person_of_turn"]


async def person_of_turn(ctx: TurnContext) -> str:
    """The person id of the turn's user (linked accounts share it)."""
    person_of: Any = ctx.services.get("person_of")
    if person_of is None or ctx.user is None:
        raise ToolError("memory is not enabled on this server")
    return str(await person_of(ctx.user))


def make_memory_tools(store: MemoryStore) -> list[Tool]:
    """Tools bound to one memory store."""

    # persist: a memory is shown in later prompts; the receipt is ours, not outside content
    @tool(effects=["persist"], trusted_output=True)
    async def remember(fact: str) -> str:
        """Save a lasting fact or preference about the user, for later conversations on any app.

        Use it when the user tells you something worth keeping (names, dates, preferences,
        plans) or asks you to remember something.

        Args:
            fact: One self-contained sentence in the third person, e.g. "Their dog is Rex."
        """
        if not fact.strip():
            raise ToolError("fact is empty")
        ctx = current_turn()
        person = await person_of_turn(ctx)
        source = ctx.address.key if ctx.address is not None else ""
        origin = Origin.of(ctx.address, ctx.chat_kind)  # a DM fact never reaches a group
        memory = await store.add(person, fact, source=source, origin=origin)
        return f"remembered (memory {memory.id})"

    return [remember.__oc_tool__]  # type: ignore[attr-defined]
