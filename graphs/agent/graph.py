"""Assemble the agent graph, checkpointed per conversation.

recall -> compact -> plan -> model -> (tools -> model)* -> end; inside a plan the model's
answers go through ``advance`` (next step, revision or final answer) instead of ending.
recall, compact and plan do nothing unless their services are on the turn context.
"""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import START, StateGraph

from bot.ollama import ModelClient
from graphs.agent.compaction import CompactNode
from graphs.agent.compose import ComposedModelNode
from graphs.agent.nodes import ModelNode, ToolNode, run_tool_inprocess
from graphs.agent.planning import (
    AdvanceNode,
    PlanNode,
    route_after_advance,
    route_after_plan,
    route_after_planned_model,
)
from graphs.agent.recall import recall
from graphs.agent.state import AgentState, ToolExecutor, TurnContext

__all__ = ["build_graph"]


def build_graph(
    *,
    llm: ModelClient,
    checkpointer: BaseCheckpointSaver[Any] | None,
    executor: ToolExecutor = run_tool_inprocess,
) -> Any:
    """Compile the agent graph. Nothing is built at import time."""
    graph = StateGraph(AgentState, context_schema=TurnContext)
    graph.add_node("recall", recall)
    graph.add_node("compact", CompactNode(llm))
    graph.add_node("plan", PlanNode(llm))
    graph.add_node("model", ComposedModelNode(ModelNode(llm)))
    graph.add_node("tools", ToolNode(executor))
    graph.add_node("advance", AdvanceNode(llm))
    graph.add_edge(START, "recall")
    graph.add_edge("recall", "compact")
    graph.add_edge("compact", "plan")
    graph.add_conditional_edges("plan", route_after_plan, ["model", "__end__"])
    graph.add_conditional_edges("model", route_after_planned_model, ["tools", "advance", "__end__"])
    graph.add_edge("tools", "model")
    graph.add_conditional_edges("advance", route_after_advance, ["model", "__end__"])
    return graph.compile(checkpointer=checkpointer, name="agent")
