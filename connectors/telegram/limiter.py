"""One outbound limiter for everything the Telegram connector sends.

Telegram asks for about one message per second per chat (twenty a minute in groups) and thirty
a second overall, and answers ``429`` with ``retry_after`` when a bot goes faster. Spacing calls
up front keeps 429s rare; when one comes anyway the chat is paused for ``retry_after`` and the
call is retried, so the final edit of a streamed reply is never dropped. Edits of the same
message coalesce: an edit still waiting when a newer one for the same message arrives is
skipped, because only the newest text matters.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import logging
import time
import warnings
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import TypeVar

from telegram.error import RetryAfter

__all__ = ["LimiterConfig", "OutboundLimiter", "retry_seconds"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LimiterConfig:
    """Spacing rules (seconds between calls, and how many may go back to back)."""

    chat_interval: float = 1.0
    chat_burst: int = 3
    group_interval: float = 3.0
    group_burst: int = 5
    global_rate: float = 30.0
    global_burst: int = 10
    max_retries: int = 8
    """429s tolerated for one call before its error is raised."""


def retry_seconds(exc: RetryAfter) -> float:
    """``retry_after`` in seconds, whichever type this python-telegram-bot version returns."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PTB 22 warns that the type will become timedelta
        value = exc.retry_after
    if isinstance(value, dtm.timedelta):
        return value.total_seconds()
    return float(value)


class _Gcra:
    """Generic cell rate algorithm: a token bucket kept as one timestamp."""

    __slots__ = ("burst", "interval", "tat")

    def __init__(self, interval: float, burst: int) -> None:
        self.interval = interval
        self.burst = max(1, burst)
        self.tat = 0.0

    def earliest(self, now: float) -> float:
        """When the next call may go (``now`` if the bucket has a token)."""
        return max(now, self.tat - (self.burst - 1) * self.interval)

    def take(self, at: float) -> None:
        """Spend a token for a call made at ``at``."""
        self.tat = max(self.tat, at) + self.interval


class OutboundLimiter:
    """Spaces calls per chat and overall; retries after 429 once the pause is over."""

    def __init__(
        self,
        config: LimiterConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or LimiterConfig()
        self._clock = clock
        self._global = _Gcra(1.0 / self.config.global_rate, self.config.global_burst)
        self._chats: dict[str, _Gcra] = {}
        self._paused: dict[str, float] = {}
        self._generation: dict[Hashable, int] = {}

    async def call(
        self,
        chat_id: str,
        fn: Callable[[], Awaitable[T]],
        *,
        coalesce: Hashable | None = None,
    ) -> T | None:
        """Run ``fn`` within the limits; None when a newer call with ``coalesce`` replaced it."""
        generation = 0
        if coalesce is not None:
            generation = self._generation.get(coalesce, 0) + 1
            self._generation[coalesce] = generation
        retries = 0
        try:
            while True:
                await self._acquire(chat_id)
                if coalesce is not None and self._generation.get(coalesce) != generation:
                    return None
                try:
                    return await fn()
                except RetryAfter as exc:
                    retries += 1
                    wait = retry_seconds(exc)
                    self._paused[chat_id] = max(
                        self._paused.get(chat_id, 0.0), self._clock() + wait
                    )
                    if retries > self.config.max_retries:
                        raise
                    logger.warning(
                        "telegram flood control in chat %s: waiting %.0fs before retrying",
                        chat_id,
                        wait,
                    )
        finally:
            if coalesce is not None and self._generation.get(coalesce) == generation:
                del self._generation[coalesce]

    async def _acquire(self, chat_id: str) -> None:
        while True:
            pause = self._paused.get(chat_id, 0.0) - self._clock()
            if pause > 0:
                await asyncio.sleep(pause)
                continue
            self._paused.pop(chat_id, None)
            now = self._clock()
            chat = self._bucket(chat_id)
            at = max(chat.earliest(now), self._global.earliest(now))
            chat.take(at)  # booked now, so callers queue in order
            self._global.take(at)
            if at > now:
                await asyncio.sleep(at - now)
            if self._paused.get(chat_id, 0.0) <= self._clock():
                return

    def _bucket(self, chat_id: str) -> _Gcra:
        bucket = self._chats.get(chat_id)
        if bucket is None:
            if len(self._chats) > 10_000:  # forget idle chats; their buckets are full again
                now = self._clock()
                self._chats = {k: b for k, b in self._chats.items() if b.tat > now}
            cfg = self.config
            group = chat_id.startswith("-")  # Telegram group and channel ids are negative
            bucket = _Gcra(
                cfg.group_interval if group else cfg.chat_interval,
                cfg.group_burst if group else cfg.chat_burst,
            )
            self._chats[chat_id] = bucket
        return bucket
