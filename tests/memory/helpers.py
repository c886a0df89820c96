"""Helpers for the memory suite: scripted embeddings, waiting for conditions, settings."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

TOPICS: dict[str, tuple[str, ...]] = {
    "food": ("pizza", "food", "eat", "dinner", "cook"),
    "pet": ("cat", "dog", "pet", "zorro"),
    "work": ("job", "work", "office", "boss"),
    "music": ("music", "song", "jazz", "band"),
    "family": ("daughter", "son", "mia", "family", "born"),
}


def topic_embedding(text: str) -> list[float]:
    """One dimension per topic whose keyword the text contains, plus a small constant."""
    low = text.lower()
    return [1.0 if any(w in low for w in words) else 0.0 for words in TOPICS.values()] + [0.1]


def open_settings(**extra: Any) -> dict[str, Any]:
    """Settings values that let test users talk without pairing or rate limits."""
    values: dict[str, Any] = {
        "OC_DM_POLICY": "open",
        "OC_RATE_LIMIT_USER": "0",
        "OC_RATE_LIMIT_CHAT": "0",
    }
    values.update(extra)
    return values


async def until(check: Callable[[], bool], limit: float = 5.0) -> None:
    """Wait for ``check()`` to hold (an event the test cannot await directly)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def system_prompt(body: dict[str, Any]) -> str:
    """The system message of a recorded ``/api/chat`` body."""
    messages = body.get("messages", [])
    return (
        str(messages[0].get("content", ""))
        if messages and messages[0].get("role") == "system"
        else ""
    )
