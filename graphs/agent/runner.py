"""The runtime's view of the agent: run one turn of a conversation, get the answer."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from opencomputer.graphs.agent.images import stored_text
from opencomputer.graphs.agent.state import TurnContext

__all__ = ["GraphAgent", "TurnOutcome"]


@dataclass(frozen=True, slots=True)
class TurnOutcome:
    """The final answer of a turn and what produced it."""

    text: str
    run_id: str
    tool_calls: int = 0
    tool_errors: int = 0


class GraphAgent:
    """Runs the compiled graph for one conversation thread."""

    def __init__(self, graph: Any) -> None:
        self.graph = graph

    async def run_turn(
        self, thread_id: str, text: str, ctx: TurnContext, *, retry: bool = False
    ) -> TurnOutcome:
        """Add the user's message to the thread and run until the model answers.

        The checkpoint is written once, when the run exits (``durability="exit"``): one write
        per turn. A failed run is saved with its pending step, so a ``retry`` of the same
        message resumes it instead of adding the message a second time; a ``retry`` of a turn
        that finished (the process died before the reply was recorded) returns its answer
        without running again, so the model never sees the message twice.
        """
        run_id = uuid.uuid4().hex
        config = {"configurable": {"thread_id": thread_id}, "run_id": run_id}
        text = stored_text(text, len(ctx.images))  # images travel in ctx, not the checkpoint
        fresh: dict[str, Any] = {"messages": [{"role": "user", "content": text}], "tool_rounds": 0}
        if ctx.taint:  # stored with the message, so a pause and resume see the same taint
            fresh["taint"] = list(ctx.taint)
        if ctx.turn_key is not None:
            fresh["turn"] = ctx.turn_key
        payload: dict[str, Any] | None = fresh
        if retry:
            snapshot = await self.graph.aget_state(config)
            values = snapshot.values
            pending = values.get("messages", []) if snapshot.next else []
            if pending and pending[-1].get("role") == "user" and pending[-1].get("content") == text:
                payload = None
            elif not snapshot.next and ctx.turn_key and values.get("turn") == ctx.turn_key:
                return _outcome(values.get("messages", []), run_id)  # it finished before
        state = await self.graph.ainvoke(
            payload,
            config=config,
            context=ctx,
            durability="exit",
        )
        return _outcome(state["messages"], run_id)

    async def history(self, thread_id: str) -> list[dict[str, Any]]:
        """The checkpointed messages of a thread (for export and tests)."""
        snapshot = await self.graph.aget_state({"configurable": {"thread_id": thread_id}})
        return list(snapshot.values.get("messages", [])) if snapshot else []


def _outcome(messages: list[dict[str, Any]], run_id: str) -> TurnOutcome:
    """The turn's answer (the last message) and its tool calls since the user spoke."""
    answer = messages[-1].get("content", "") if messages else ""
    calls = errors = 0
    for message in reversed(messages):
        if message.get("role") == "user":
            break
        if message.get("role") == "tool":
            calls += 1
            errors += str(message.get("content", "")).startswith("error:")
    return TurnOutcome(answer, run_id, calls, errors)
