"""Human approval of dangerous tool calls, inside the graph.

The tool node asks :func:`review_calls` before running anything. If the model asked for a tool
marked ``dangerous``, the graph pauses with a LangGraph ``interrupt`` (the pending step is
checkpointed) and the turn ends with an approval request. When a person decides, the runtime
resumes the thread with ``Command(resume={"approved": ..., "by": ...})``: the tool node runs
again from its start, ``interrupt`` now returns that decision, and only approved calls run.
Because the check sits in the node itself, every way into the node (a new message, ``/retry``,
a resume after a restart) meets it.
"""

from __future__ import annotations

import logging
from typing import Any

from langgraph.types import interrupt

from bot.tools import Tool

__all__ = ["APPROVAL_KIND", "REJECTED", "review_calls"]

logger = logging.getLogger(__name__)

APPROVAL_KIND = "tool_approval"
REJECTED = "error: a person declined this action ({name}); do not try it again unless asked"


def review_calls(calls: list[dict[str, Any]], available: dict[str, Tool]) -> dict[int, str]:
    """Pause for approval if any call is dangerous; return refusals by call index.

    All dangerous calls of one model message are approved or rejected together, so a person
    answers one question per pause. Calls to unknown tools are left to the node to report.
    """
    dangerous = [
        (i, fn)
        for i, fn in enumerate(calls)
        if (tool := available.get(str(fn.get("name", "")))) is not None and tool.dangerous
    ]
    if not dangerous:
        return {}
    request = {
        "kind": APPROVAL_KIND,
        "calls": [
            {"name": fn.get("name"), "arguments": fn.get("arguments") or {}} for _, fn in dangerous
        ],
    }
    decision = interrupt(request)  # pauses here the first time; returns the decision on resume
    approved = isinstance(decision, dict) and decision.get("approved") is True
    logger.info(
        "dangerous tool calls %s %s",
        [fn.get("name") for _, fn in dangerous],
        "approved" if approved else "rejected",
    )
    if approved:
        return {}
    return {i: REJECTED.format(name=fn.get("name")) for i, fn in dangerous}
