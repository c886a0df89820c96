"""The agent graph routes inside its nodes (``Command``), not through conditional edges.

A conditional edge is a traced runnable of its own: per turn a callback manager, start and
end events and two more asyncio tasks. The routes themselves are exercised by the turn tests
(tool rounds, plans, follow-up questions in ``test_prepare.py``, approvals elsewhere); this
keeps the shape from sliding back and the drawn graph complete.
"""

from __future__ import annotations

from typing import Any

from opencomputer.graphs.agent.graph import build_graph


class NoModel:
    """Never called: the graph is only built and drawn."""

    host = "none"

    async def chat(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("not called")


def test_no_conditional_edges_and_every_route_still_drawn() -> None:
    graph = build_graph(llm=NoModel(), checkpointer=None)  # type: ignore[arg-type]
    assert dict(graph.builder.branches) == {}
    edges = {(e.source, e.target) for e in graph.get_graph().edges}
    assert {
        ("__start__", "model"),
        ("model", "tools"),
        ("model", "advance"),
        ("model", "__end__"),
        ("tools", "model"),
        ("advance", "model"),
        ("advance", "__end__"),
    } <= edges
