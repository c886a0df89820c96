"""Before the model answers: recall, compaction and planning, inside the model's own step.

Each LangGraph superstep costs a few tenths of a millisecond (task setup, channel updates,
checkpoint bookkeeping), and so does a conditional edge; recall, compact and plan used to be
three supersteps per turn, about a millisecond, even when none had anything to do, which is
the common case. Now the graph's ``model`` node is a :class:`PreparedModelNode`:

- when the turn opens (the newest message is the user's), :func:`prepare_due` decides in
  memory whether any of the three has work: the person has memories (the memory service's
  cached count), last turn's recall must be cleared, the prompt nears the window, the text
  asks for a plan or a plan is open. A simple turn goes straight to the model call: one
  superstep for the whole turn.
- otherwise :class:`PrepareNode` runs all three in their old order, each still its own
  function (``recall``, ``CompactNode``, ``PlanNode``), each seeing the updates of the ones
  before; the model then answers from the prepared state (or the planner's follow-up question
  is the answer), and the node returns one merged update.

Tool rounds and plan steps come back to the node with a tool or assistant message last, so
they are never prepared twice. A retried turn whose model call failed prepares again.
"""

from __future__ import annotations

import logging
from typing import Any

from langgraph.runtime import Runtime

from opencomputer.bot.ollama import ModelClient
from opencomputer.graphs.agent.compaction import CompactNode, compaction_due
from opencomputer.graphs.agent.planning import PlanNode, plan_due, route_after_plan
from opencomputer.graphs.agent.recall import recall, recall_due
from opencomputer.graphs.agent.reducer import merge_messages
from opencomputer.graphs.agent.state import AgentState, TurnContext

__all__ = ["PrepareNode", "PreparedModelNode", "prepare_due"]

logger = logging.getLogger(__name__)


async def prepare_due(state: AgentState, ctx: TurnContext) -> bool:
    """Whether recall, compaction or planning has work this turn (no model call to decide).

    Cheapest test first. A check that fails answers yes: the three steps handle their own
    failures, as they always did.
    """
    try:
        return (
            plan_due(state, ctx) or await recall_due(state, ctx) or await compaction_due(state, ctx)
        )
    except Exception as exc:
        logger.debug("preparation check failed, preparing fully: %s", exc)
        return True


def _apply(view: dict[str, Any], update: dict[str, Any], out: dict[str, Any]) -> None:
    """Fold one step's update into the running view and the merged update."""
    for key, value in out.items():
        if key == "messages":  # the reducer's semantics: drop markers, then appends
            update["messages"] = [*update.get("messages", []), *value]
            view["messages"] = merge_messages(view.get("messages"), value)
        else:
            update[key] = view[key] = value


class PrepareNode:
    """Recall, then compaction, then planning; one merged state update."""

    def __init__(self, llm: ModelClient) -> None:
        self.compact = CompactNode(llm)
        self.plan = PlanNode(llm)

    async def __call__(self, state: AgentState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
        """Run the three steps in order, as the separate nodes did, and merge their updates."""
        view: dict[str, Any] = dict(state)
        update: dict[str, Any] = {}
        for step in (recall, self.compact, self.plan):
            _apply(view, update, await step(view, runtime))  # type: ignore[arg-type]
        return update


class PreparedModelNode:
    """The graph's model step: prepare the turn first when something is due, then answer."""

    def __init__(self, prepare: PrepareNode, model: Any) -> None:
        self.prepare = prepare
        self.model = model

    async def __call__(self, state: AgentState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
        """The model's update, preceded by the preparation's when the turn needed one."""
        messages = state.get("messages", [])
        opens_turn = bool(messages) and messages[-1].get("role") == "user"
        if not opens_turn or not await prepare_due(state, runtime.context):
            return dict(await self.model(state, runtime))
        update = await self.prepare(state, runtime)
        view: dict[str, Any] = {**state, **update}
        view["messages"] = merge_messages(messages, update.get("messages"))
        if route_after_plan(view) == "__end__":  # type: ignore[arg-type]
            return update  # the planner's follow-up question is this turn's answer
        _apply(view, update, await self.model(view, runtime))
        return update
