"""Wrap the model node so the prompt carries the summary, recalled memories and the plan.

The wrapped :class:`~graphs.agent.nodes.ModelNode` is left untouched: this wrapper hands it a
copy of the turn context with a longer system prompt (and the effective context window), so the
model node's own trimming budgets for everything that is added.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from langgraph.runtime import Runtime

from opencomputer.graphs.agent.compaction import effective_window, summary_block
from opencomputer.graphs.agent.planning import plan_block
from opencomputer.graphs.agent.recall import recalled_block
from opencomputer.graphs.agent.state import AgentState, TurnContext

__all__ = ["ComposedModelNode", "compose_prompt"]


def compose_prompt(base: str, state: AgentState) -> str:
    """The system prompt with every section the state calls for."""
    sections = [
        summary_block(state.get("summary", "")),
        recalled_block(state.get("recalled", [])),
        plan_block(state.get("plan") or {}),
    ]
    extra = "\n\n".join(s for s in sections if s)
    return f"{base}\n\n{extra}" if extra else base


class ComposedModelNode:
    """Call the inner model node with the composed prompt and the effective window."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, state: AgentState, runtime: Runtime[TurnContext]) -> Any:
        """Run the inner model node with the composed context."""
        ctx = runtime.context
        plan = state.get("plan") or {}
        changes: dict[str, Any] = {
            "system_prompt": compose_prompt(ctx.system_prompt, state),
            "num_ctx": await effective_window(ctx),
        }
        if plan.get("active") and plan.get("status") == "running":
            changes["stream"] = None  # step chatter stays off the progress message
        return await self.inner(
            state, runtime.override(context=dataclasses.replace(ctx, **changes))
        )
