"""The agent: one LangGraph state machine that calls the model and tools in a loop."""

from opencomputer.graphs.agent.graph import build_graph
from opencomputer.graphs.agent.state import AgentState, TurnContext, TurnStream

__all__ = ["AgentState", "TurnContext", "TurnStream", "build_graph"]
