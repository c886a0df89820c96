"""Assemble the agent graph: model -> (tools -> model)* -> end, checkpointed per conversation."""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import START, StateGraph

from bot.ollama import OllamaClient
from graphs.agent.nodes import ModelNode, ToolNode, route_after_model, run_tool_inprocess
from graphs.agent.state import AgentState, ToolExecutor, TurnContext

__all__ = ["build_graph"]


def build_graph(
    *,
    llm: OllamaClient,
    checkpointer: BaseCheckpointSaver[Any] | None,
    executor: ToolExecutor = run_tool_inprocess,
) -> Any:
    """Compile the agent graph. Nothing is built at import time."""
    graph = StateGraph(AgentState, context_schema=TurnContext)
    graph.add_node("model", ModelNode(llm))
    graph.add_node("tools", ToolNode(executor))
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", route_after_model, ["tools", "__end__"])
    graph.add_edge("tools", "model")
    return graph.compile(checkpointer=checkpointer, name="agent")
