"""The recall node: before the model answers, find what we remember about this person.

The memory service comes from ``TurnContext.services["memory"]`` (set by ``bot.memory``);
without it the node does nothing. It is told where the turn speaks (``Origin``): in a group,
memories learned in direct chats are never candidates (see ``opencomputer.bot.origin``). The
memories found are written to the state (``recalled``, checkpointed with the turn: the trace
of which memories the answer could use) and shown to the model by
:mod:`opencomputer.graphs.agent.compose`.
"""

from __future__ import annotations

import logging
from typing import Any

from langgraph.runtime import Runtime

from opencomputer.bot.origin import Origin
from opencomputer.graphs.agent.state import AgentState, TurnContext

__all__ = ["recall", "recall_due", "recalled_block"]

logger = logging.getLogger(__name__)


def _last_user_text(state: AgentState) -> str:
    for message in reversed(state.get("messages", [])):
        if message.get("role") == "user":
            return str(message.get("content") or "")
    return ""


async def recall_due(state: AgentState, ctx: TurnContext) -> bool:
    """Whether :func:`recall` has work this turn, answered from memory in the common case.

    A person with no memories needs no embedding call; the memory service's per-person count
    is cached (see ``MemoryStore.count``). Last turn's recalled memories must be cleared, so
    they count as work too. When in doubt (no ``count``, a lookup error) the answer is yes:
    the recall node then decides, and handles failures, as always.
    """
    if state.get("recalled"):
        return True
    memory = ctx.services.get("memory")
    person_of = ctx.services.get("person_of")
    if memory is None or person_of is None or ctx.user is None:
        return False
    count = getattr(memory, "count", None)
    if count is None:
        return True
    try:
        return int(await count(await person_of(ctx.user))) > 0
    except Exception:
        return True


async def recall(state: AgentState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
    """Look up the person's memories nearest the user's message (never fails the turn)."""
    ctx = runtime.context
    memory = ctx.services.get("memory")
    person_of = ctx.services.get("person_of")
    if memory is None or person_of is None or ctx.user is None:
        return {"recalled": []}
    try:
        person = await person_of(ctx.user)
        where = Origin.of(ctx.address, ctx.chat_kind)
        found = await memory.recall(person, _last_user_text(state), where=where)
    except Exception as exc:  # an embedding outage must not cost the user an answer
        logger.warning("memory recall failed: %s", exc)
        return {"recalled": []}
    return {"recalled": [{"id": m.id, "text": m.text, "score": round(m.score, 4)} for m in found]}


def recalled_block(recalled: list[dict[str, Any]]) -> str:
    """The system-prompt section listing recalled memories."""
    if not recalled:
        return ""
    lines = "\n".join(f"- [memory {m['id']}] {m['text']}" for m in recalled)
    return (
        "What you remember about this person from earlier conversations (use it when it "
        f"helps; it may be out of date):\n{lines}"
    )
