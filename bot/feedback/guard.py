"""Tool failures, seen from the agent's outcome, so their ratings are not blamed on the prompt.

The runtime records model failures and crashes in ``ReplyRow.failure`` itself; a turn whose
tool calls failed still answers normally, so the runtime does not mark it. This turn layer
notes the run ids of such turns; the feedback reply listener then
records them in ``reply_failures`` (kind ``tool``), and votes on those replies are not blamed.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from opencomputer.bot.hooks import TurnCall, TurnNext

__all__ = ["ToolFailureTap"]

_REMEMBER = 1000  # run ids kept until their reply is recorded (a crash can drop a reply)


class ToolFailureTap:
    """A turn layer (stage ``observe``) noting the run ids of turns whose tool calls failed."""

    def __init__(self) -> None:
        self.failed_runs: OrderedDict[str, int] = OrderedDict()

    async def layer(self, call: TurnCall, call_next: TurnNext) -> Any:
        """Run the turn; remember its run id if any tool call failed."""
        outcome = await call_next(call)
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
