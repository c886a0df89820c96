"""Tool failures, seen from the agent's outcome, so their ratings are not blamed on the prompt.

The runtime records model failures and crashes in ``ReplyRow.failure`` itself; a turn whose
tool calls failed still answers normally, so the runtime does not mark it. This thin wrapper
around the runtime's agent notes the run ids of such turns; the feedback reply listener then
records them in ``reply_failures`` (kind ``tool``), and votes on those replies are not blamed.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

__all__ = ["ToolFailureTap"]

_REMEMBER = 1000  # run ids kept until their reply is recorded (a crash can drop a reply)


class ToolFailureTap:
    """Wraps ``runtime.agent``; everything but ``run_turn`` is the wrapped agent's."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.failed_runs: OrderedDict[str, int] = OrderedDict()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def run_turn(self, thread_id: str, text: str, ctx: Any, **kw: Any) -> Any:
        """Run the turn; remember its run id if any tool call failed."""
        outcome = await self.inner.run_turn(thread_id, text, ctx, **kw)
        errors = int(getattr(outcome, "tool_errors", 0) or 0)
        run_id = str(getattr(outcome, "run_id", "") or "")
        if errors and run_id:
            self.failed_runs[run_id] = errors
            while len(self.failed_runs) > _REMEMBER:
                self.failed_runs.popitem(last=False)
        return outcome

    def take(self, run_id: str) -> int:
        """How many tool calls failed in this run (0 if none); forgets the run."""
        return self.failed_runs.pop(run_id, 0) if run_id else 0
