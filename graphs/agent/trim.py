"""Fit the history into the model's context window.

Token counts are estimated (about 3.5 characters a token, plus per-message overhead): exact
counts would need the model's tokenizer, and a safety margin covers the error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["estimate_tokens", "trim_history"]

_PER_MESSAGE = 6


def estimate_tokens(message: dict[str, Any]) -> int:
    """Rough token count of one message, tool calls included."""
    size = len(message.get("content") or "")
    for call in message.get("tool_calls") or ():
        size += len(str(call))
    return int(size / 3.5) + _PER_MESSAGE


def trim_history(
    messages: Sequence[dict[str, Any]], budget: int, *, keep_last: int = 1
) -> list[dict[str, Any]]:
    """Drop the oldest exchanges until the estimate fits ``budget`` tokens.

    Cuts only at a user message, so a tool result is never separated from the call that asked
    for it; the newest ``keep_last`` user turns are always kept.
    """
    sizes = [estimate_tokens(m) for m in messages]
    total = sum(sizes)
    if total <= budget:
        return list(messages)
    starts = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    protected = starts[-keep_last] if len(starts) >= keep_last else 0
    cut = 0
    for start in starts:
        if start > protected:
            break
        if total - sum(sizes[:start]) <= budget:
            cut = start
            break
        cut = start
    return list(messages[cut:])
