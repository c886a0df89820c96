"""What the tool node tells the tools it runs about the turn, and hears back from them.

Tools get only their arguments (the model's); the turn's context reaches them through
LangGraph's runtime (``get_runtime``), but the graph *state* does not, and one thing in it
matters to a tool that runs an agent of its own (``delegate``, graphs/agent/subagent.py): the
outside content the conversation has read so far, which the child must start with, and the
outside content the child read, which must taint the parent when its result comes back. The
tool node opens a :class:`ToolScope` around its calls (a ``contextvars`` variable, so it
follows the tasks the calls run in) and adds what the tools report to the state's taint.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["ToolScope", "current_scope", "tool_scope"]


@dataclass(slots=True)
class ToolScope:
    """One tool round as its tools see it."""

    taint: list[str]
    """Outside content the conversation has read before this round (state and turn)."""
    calls: int = 1
    """How many calls the round runs together (the model asked for them in one message)."""
    read: list[str] = field(default_factory=list)
    """Outside content a tool reports having read besides its own output (a sub-agent's)."""


_SCOPE: contextvars.ContextVar[ToolScope | None] = contextvars.ContextVar(
    "oc_tool_scope", default=None
)


def current_scope() -> ToolScope | None:
    """The scope of the tool round running now; None outside a tool node."""
    return _SCOPE.get()


@contextlib.contextmanager
def tool_scope(taint: list[str], calls: int = 1) -> Iterator[ToolScope]:
    """Open a scope for the calls of one tool round."""
    scope = ToolScope(list(taint), calls)
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        _SCOPE.reset(token)
