"""The ``messages`` reducer: append, or drop a compacted prefix first.

A node returns ``{"messages": [drop_marker(n), *new]}`` to remove the ``n`` oldest messages
(compaction summarised them into the state); anything else is appended, as ``operator.add``
did. The marker is a plain dict, so pending writes serialise like any message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["DROP_ROLE", "drop_marker", "merge_messages", "merge_taint"]

DROP_ROLE = "__drop__"


def drop_marker(count: int) -> dict[str, Any]:
    """Return an update item that removes the ``count`` oldest messages."""
    return {"role": DROP_ROLE, "count": int(count)}


def merge_messages(
    current: Sequence[dict[str, Any]] | None, update: Sequence[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    """Apply drop markers in order, append the other items."""
    merged = list(current or [])
    for item in update or ():
        if item.get("role") == DROP_ROLE:
            del merged[: max(0, int(item.get("count", 0)))]
        else:
            merged.append(item)
    return merged


def merge_taint(current: Sequence[str] | None, update: Sequence[str] | None) -> list[str]:
    """Union of taint sources, in first-seen order (taint is never removed, only a new thread)."""
    merged = list(current or [])
    merged += [s for s in dict.fromkeys(update or ()) if s not in merged]
    return merged
