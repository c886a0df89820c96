"""Assemble the agent graph, checkpointed per conversation.

model -> (tools -> model)* -> end; inside a plan the model's answers go through ``advance``
(next step, revision or final answer) instead of ending. When a turn opens, the model node
first runs recall, compaction and planning if one of them has work (see
:mod:`opencomputer.graphs.agent.prepare`), so a simple turn is one superstep.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import START, StateGraph
from langgraph.runtime import Runtime

from opencomputer.bot.ollama import ModelClient
from opencomputer.graphs.agent.compose import ComposedModelNode
from opencomputer.graphs.agent.nodes import ModelNode, ToolNode, run_tool_inprocess
from opencomputer.graphs.agent.planning import (
    AdvanceNode,
    route_after_advance,
    route_after_planned_model,
)
from opencomputer.graphs.agent.prepare import PreparedModelNode, PrepareNode
from opencomputer.graphs.agent.state import AgentState, ToolExecutor, TurnContext

__all__ = ["build_graph"]

Route = Callable[[AgentState, Runtime[TurnContext]], Awaitable[str]]


def _inline(route: Callable[..., str]) -> Route:
    """Wrap a plain routing function in a coroutine.

    LangGraph runs a synchronous branch function in a thread pool, a thread hop (a few tenths
    of a millisecond, more on a busy machine) for a test that takes microseconds; a coroutine
    runs inline on the event loop.
    """
    wants_runtime = "runtime" in inspect.signature(route).parameters

    async def branch(state: AgentState, runtime: Runtime[TurnContext]) -> str:
        return route(state, runtime) if wants_runtime else route(state)

    branch.__name__ = branch.__qualname__ = route.__name__
    return branch


def build_graph(
    *,
    llm: ModelClient,
    checkpointer: BaseCheckpointSaver[Any] | None,
    executor: ToolExecutor = run_tool_inprocess,
) -> Any:
    """Compile the agent graph. Nothing is built at import time."""
    graph = StateGraph(AgentState, context_schema=TurnContext)
    graph.add_node("model", PreparedModelNode(PrepareNode(llm), ComposedModelNode(ModelNode(llm))))
    graph.add_node("tools", ToolNode(executor))
    graph.add_node("advance", AdvanceNode(llm))
    graph.add_edge(START, "model")
    graph.add_conditional_edges(
        "model", _inline(route_after_planned_model), ["tools", "advance", "__end__"]
    )
    graph.add_edge("tools", "model")
    graph.add_conditional_edges("advance", _inline(route_after_advance), ["model", "__end__"])
    return graph.compile(checkpointer=checkpointer, name="agent")
