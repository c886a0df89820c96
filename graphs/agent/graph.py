"""Assemble the agent graph, checkpointed per conversation.

model -> (tools -> model)* -> end; inside a plan the model's answers go through ``advance``
(next step, revision or final answer) instead of ending. When a turn opens, the model node
first runs recall, compaction and planning if one of them has work (see
:mod:`opencomputer.graphs.agent.prepare`), so a simple turn is one superstep.

Nodes choose their successor themselves (LangGraph's ``Command``) instead of conditional
edges: a conditional edge is a traced runnable of its own, and per turn it cost a callback
manager, its start and end events (the end is shielded, one more task) and a task to run the
routing function in. The routers are the same functions, given the state as the node's update
leaves it; the channels a checkpoint holds (``branch:to:<node>``) are the same as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command

from opencomputer.bot.ollama import ModelClient
from opencomputer.graphs.agent.compose import ComposedModelNode
from opencomputer.graphs.agent.nodes import ModelNode, ToolNode, run_tool_inprocess
from opencomputer.graphs.agent.planning import (
    AdvanceNode,
    route_after_advance,
    route_after_planned_model,
)
from opencomputer.graphs.agent.prepare import PreparedModelNode, PrepareNode
from opencomputer.graphs.agent.reducer import merge_messages
from opencomputer.graphs.agent.state import AgentState, ToolExecutor, TurnContext

__all__ = ["build_graph"]

Node = Callable[[AgentState, Runtime[TurnContext]], Awaitable[dict[str, Any]]]
Router = Callable[[AgentState, Runtime[TurnContext]], str]


def _routed(node: Node, route: Router) -> Callable[..., Awaitable[Command[str]]]:
    """``node``, returning its update together with where ``route`` says to go next.

    ``route`` sees the state as the update leaves it (messages through the reducer, other keys
    replaced), as a conditional edge after the node would.
    """

    async def step(state: AgentState, runtime: Runtime[TurnContext]) -> Command[str]:
        update = await node(state, runtime)
        view: dict[str, Any] = {**state, **update}
        if "messages" in update:
            view["messages"] = merge_messages(state.get("messages"), update["messages"])
        return Command(update=update, goto=route(cast(AgentState, view), runtime))

    return step


def build_graph(
    *,
    llm: ModelClient,
    checkpointer: BaseCheckpointSaver[Any] | None,
    executor: ToolExecutor = run_tool_inprocess,
) -> Any:
    """Compile the agent graph. Nothing is built at import time."""
    graph = StateGraph(AgentState, context_schema=TurnContext)
    model = PreparedModelNode(PrepareNode(llm), ComposedModelNode(ModelNode(llm)))
    graph.add_node(
        "model",
        _routed(model, route_after_planned_model),
        destinations=("tools", "advance", "__end__"),
    )
    graph.add_node("tools", ToolNode(executor))
    graph.add_node(
        "advance",
        _routed(AdvanceNode(llm), lambda state, _runtime: route_after_advance(state)),
        destinations=("model", "__end__"),
    )
    graph.add_edge(START, "model")
    graph.add_edge("tools", "model")
    return graph.compile(checkpointer=checkpointer, name="agent")
