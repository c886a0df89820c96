"""Before the model answers: recall, compaction and planning, in one graph step, or none.

Each LangGraph superstep costs a few tenths of a millisecond (task setup, channel updates,
checkpoint bookkeeping), so these three used to cost about a millisecond per turn even when
none had anything to do, which is the common case. Now:

- :func:`route_start` decides from memory whether any of them has work this turn (the
  person has memories, last turn's recall must be cleared, the prompt nears the window, the
  text asks for a plan or a plan is open). A simple turn goes straight to the model.
- Otherwise :class:`PrepareNode` runs all three in their old order within one step, each
  still its own function (``recall``, ``CompactNode``, ``PlanNode``), each seeing the
  updates of the ones before, and returns their updates merged into one.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from langgraph.runtime import Runtime

from bot.ollama import ModelClient
from graphs.agent.compaction import CompactNode, compaction_due
from graphs.agent.planning import PlanNode, plan_due
from graphs.agent.recall import recall, recall_due
from graphs.agent.reducer import merge_messages
from graphs.agent.state import AgentState, TurnContext

__all__ = ["PrepareNode", "route_start"]

logger = logging.getLogger(__name__)


async def route_start(
    state: AgentState, runtime: Runtime[TurnContext]
) -> Literal["prepare", "model"]:
    """``prepare`` if recall, compaction or planning has work this turn, else ``model``.

    Cheapest test first; none of them calls a model. A check that fails sends the turn
    through ``prepare``, whose nodes handle their own failures.
    """
    ctx = runtime.context
    try:
        if plan_due(state, ctx) or await recall_due(state, ctx) or await compaction_due(state, ctx):
            return "prepare"
    except Exception as exc:
        logger.debug("start routing check failed, preparing fully: %s", exc)
        return "prepare"
    return "model"


class PrepareNode:
    """Recall, then compaction, then planning: one superstep, one merged state update."""

    def __init__(self, llm: ModelClient) -> None:
        self.compact = CompactNode(llm)
        self.plan = PlanNode(llm)

    async def __call__(self, state: AgentState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
        """Run the three steps in order, as the separate nodes did, and merge their updates."""
        view: dict[str, Any] = dict(state)
        update: dict[str, Any] = {}
        for step in (recall, self.compact, self.plan):
            out = await step(view, runtime)  # type: ignore[arg-type]
            for key, value in out.items():
                if key == "messages":  # the reducer's semantics: drop markers, then appends
                    update["messages"] = [*update.get("messages", []), *value]
                    view["messages"] = merge_messages(view.get("messages"), value)
                else:
                    update[key] = view[key] = value
        return update
