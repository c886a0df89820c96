"""Graph state and the per-turn context.

Messages are kept in Ollama's own wire format (plain dicts): no conversion on the hot path,
and checkpoints serialise them cheaply.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol, TypedDict

from opencomputer.bot.effects import ApprovalPolicy
from opencomputer.bot.events import Address, User
from opencomputer.bot.tools import Tool, ToolError
from opencomputer.graphs.agent.reducer import merge_messages, merge_taint

__all__ = ["AgentState", "ChatMessage", "TurnContext", "TurnStream", "current_turn"]

ChatMessage = dict[str, Any]
"""``{"role": "user"|"assistant"|"tool"|"system", "content": str, ...}`` as Ollama takes it."""


class AgentState(TypedDict, total=False):
    """What is checkpointed per conversation."""

    messages: Annotated[list[ChatMessage], merge_messages]
    tool_rounds: int
    summary: str  # older turns, compacted (graphs/agent/compaction.py)
    recalled: list[dict[str, Any]]  # memories used in this turn, cited by id
    plan: dict[str, Any]  # the newest plan and its progress (graphs/agent/planning.py)
    # Where outside content entered this conversation (tool names, "group message from ...").
    # Sticky for the thread: what was read stays in the history the model sees (bot/effects.py).
    taint: Annotated[list[str], merge_taint]
    # The stored message the newest turn answers (``TurnContext.turn_key``): a re-run after a
    # crash that came after the checkpoint but before the reply was recorded finds it done.
    turn: str


class TurnStream(Protocol):
    """Where streamed model output goes while a turn runs."""

    async def token(self, text: str) -> None:
        """A piece of the answer being written."""

    async def restart(self) -> None:
        """A new model round begins (after tools ran); text streamed so far was interim."""


ToolExecutor = Callable[[Tool, dict[str, Any]], Awaitable[str]]


@dataclass(slots=True)
class TurnContext:
    """Run-scoped inputs of one turn (LangGraph's ``context``), never checkpointed."""

    model: str
    system_prompt: str
    num_ctx: int
    tools: list[Tool] = field(default_factory=list)
    stream: TurnStream | None = None
    options: dict[str, Any] = field(default_factory=dict)
    keep_alive: str | None = None
    max_tool_rounds: int = 8
    # Who is talking and where (memory is per person, schedules deliver to the chat).
    user: User | None = None
    address: Address | None = None
    chat_kind: str = "direct"  # "group": others' messages may be outside content
    # Run-scoped services features put on ``Runtime.turn_services`` (memory, planner...).
    services: dict[str, Any] = field(default_factory=dict)
    # Outside content the turn starts with (a stranger's message in a group), written into
    # ``AgentState.taint`` with the message; and when effects ask the owner (bot/effects.py).
    taint: list[str] = field(default_factory=list)
    approval_policy: ApprovalPolicy = field(default_factory=ApprovalPolicy)
    # The stored message this turn answers (``in<inbound id>``); None for turns without one.
    turn_key: str | None = None
    # Images sent with this turn's message: base64 of bot.media.images.prepare_image's output.
    # Sent to the model with the message for this turn only; the checkpointed message keeps an
    # "[image]" placeholder per image (graphs/agent/images.py).
    images: list[str] = field(default_factory=list)


def current_turn() -> TurnContext:
    """The context of the turn whose graph is running this tool (features' tools share it)."""
    from langgraph.runtime import get_runtime

    try:
        ctx = get_runtime(TurnContext).context
    except Exception as exc:  # called outside a graph run
        raise ToolError("this tool can only be used during a conversation") from exc
    if not isinstance(ctx, TurnContext) or ctx.user is None:
        raise ToolError("this tool can only be used during a conversation")
    return ctx
