"""One outbound gate for every Web API call the connector makes.

Slack answers a call over its rate tier with HTTP 429, ``{"error": "ratelimited"}`` and a
``Retry-After`` header. Every call goes through :class:`OutboundLimiter`, which then holds all
calls back until that moment and retries the one that was refused, so a 429 in the middle of a
streamed answer delays it but never loses the final text.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from slack_sdk.errors import SlackApiError

__all__ = ["OutboundLimiter", "retry_after"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


def retry_after(error: SlackApiError, default: float = 1.0) -> float | None:
    """Seconds Slack asked us to wait, or None when the error is not a rate limit."""
    response = error.response
    if response is None or response.status_code != 429:
        return None
    headers = response.headers or {}
    value: Any = None
    for key in ("Retry-After", "retry-after"):
        value = headers.get(key) if hasattr(headers, "get") else None
        if value is not None:
            break
    if isinstance(value, list):  # some transports give header lists
        value = value[0] if value else None
    try:
        return max(0.0, float(value)) if value is not None else default
    except (TypeError, ValueError):
        return default


class OutboundLimiter:
    """Waits out ``ratelimited`` answers and retries; callers just ``await limiter.call(...)``.

    Args:
        max_attempts: tries per call before the 429 is raised to the caller.
        max_wait: longest single pause honoured (a buggy header must not park us for hours).
    """

    def __init__(self, max_attempts: int = 8, max_wait: float = 120.0) -> None:
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self._resume_at = 0.0
        self.waits: list[float] = []
        """Every pause taken (seconds), for metrics and tests."""

    async def call(self, method: str, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn`` (one Web API call) when allowed, retrying after each 429."""
        for attempt in range(1, self.max_attempts + 1):
            delay = self._resume_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                return await fn()
            except SlackApiError as exc:
                wait = retry_after(exc)
                if wait is None or attempt == self.max_attempts:
                    raise
                wait = min(wait, self.max_wait)
                self._resume_at = max(self._resume_at, time.monotonic() + wait)
                self.waits.append(wait)
                logger.warning(
                    "Slack rate-limited %s; waiting %.1f s (attempt %d)", method, wait, attempt
                )
        raise AssertionError("unreachable")  # pragma: no cover
