"""Human approval of tool calls, inside the graph.

The tool node asks :func:`review_calls` before running anything. A call needs a person's yes
when its tool is marked ``dangerous``, or when the conversation has read outside content and
the call has an effect that leaves the sandbox (the provenance policy of :mod:`bot.effects`).
Then the graph pauses with a LangGraph ``interrupt`` (the pending step is checkpointed) and the
turn ends with an approval request. When a person decides, the runtime resumes the thread with
``Command(resume={"approved": ..., "by": ...})``: the tool node runs again from its start,
``interrupt`` now returns that decision, and only approved calls run. Because the check sits in
the node itself, every way into the node (a new message, ``/retry``, a resume after a restart)
meets it; the taint it reads is in the checkpointed state, so a resume decides on the same calls.
"""

from __future__ import annotations

import logging
from typing import Any

from langgraph.types import interrupt

from opencomputer.bot.effects import ApprovalPolicy, effects_of, needs_approval
from opencomputer.bot.tools import Tool

__all__ = ["APPROVAL_KIND", "REJECTED", "review_calls", "seen_text"]

logger = logging.getLogger(__name__)

APPROVAL_KIND = "tool_approval"
REJECTED = "error: a person declined this action ({name}); do not try it again unless asked"


def seen_text(messages: list[dict[str, Any]], available: dict[str, Tool]) -> str:
    """What the conversation read that a link may be followed from without asking.

    The people's own messages and the pages network tools fetched; never the output of tools
    the model can make echo its arguments (code, calculator, notes), or a URL it built with
    private data in it would count as read.
    """
    parts = []
    for message in messages:
        role = message.get("role")
        if role == "tool":
            tool = available.get(str(message.get("tool_name", "")))
            effects = effects_of(tool) if tool is not None else frozenset()
            if "network" not in effects or effects - {"network"}:
                continue
        elif role != "user":
            continue
        parts.append(str(message.get("content", "")))
    return "\n".join(parts)


def review_calls(
    calls: list[dict[str, Any]],
    available: dict[str, Tool],
    *,
    taint: list[str] | None = None,
    messages: list[dict[str, Any]] | None = None,
    policy: ApprovalPolicy | None = None,
) -> dict[int, str]:
    """Pause for approval if any call needs it; return refusals by call index.

    All such calls of one model message are approved or rejected together, so a person answers
    one question per pause. Calls to unknown tools are left to the node to report.
    """
    policy = policy or ApprovalPolicy()
    tainted = bool(taint)
    seen = seen_text(messages or [], available) if tainted else ""
    asking: list[tuple[int, dict[str, Any], str]] = []
    for i, fn in enumerate(calls):
        tool = available.get(str(fn.get("name", "")))
        if tool is None:
            continue
        why = needs_approval(
            tool, fn.get("arguments") or {}, tainted=tainted, seen=seen, policy=policy
        )
        if why is not None:
            asking.append((i, fn, why))
    if not asking:
        return {}
    request = {
        "kind": APPROVAL_KIND,
        "calls": [
            {"name": fn.get("name"), "arguments": fn.get("arguments") or {}, "why": why}
            for _, fn, why in asking
        ],
        "taint": list(taint or []),
    }
    decision = interrupt(request)  # pauses here the first time; returns the decision on resume
    approved = isinstance(decision, dict) and decision.get("approved") is True
    logger.info(
        "tool calls %s needing approval %s",
        [fn.get("name") for _, fn, _ in asking],
        "approved" if approved else "rejected",
    )
    if approved:
        return {}
    return {i: REJECTED.format(name=fn.get("name")) for i, fn, _ in asking}
