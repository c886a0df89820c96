"""Rate limits per user and per chat: token buckets, in-process or shared through Redis.

A bucket holds ``capacity`` tokens and refills ``capacity`` tokens every ``period`` seconds;
each message takes one. The first refused message gets one polite answer; the ones after it
are dropped silently until a token is available again, so a flood never answers a flood.
With ``OC_REDIS_URL`` the buckets live in Redis and one Lua script reads, refills and takes
atomically, so every gateway process shares the same limits.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from opencomputer.bot.events import Command, Message, Reaction, User
from opencomputer.bot.middleware import Handler, Middleware

__all__ = [
    "Bucket",
    "Decision",
    "Limiter",
    "LocalLimiter",
    "RedisLimiter",
    "parse_rate",
    "rate_limit_middleware",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Bucket:
    """``capacity`` messages per ``period`` seconds."""

    capacity: float
    period: float

    @property
    def rate(self) -> float:
        """Tokens added per second."""
        return self.capacity / self.period


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether to let a message through, and whether this refusal should be announced."""

    allowed: bool
    notify: bool = False
    retry_after: float = 0.0


def parse_rate(text: str) -> Bucket | None:
    """``"20/60"`` = 20 messages per 60 s; ``"0"`` or empty turns the limit off."""
    text = text.strip()
    if not text or text == "0":
        return None
    count, _, seconds = text.partition("/")
    try:
        bucket = Bucket(float(count), float(seconds or 60))
    except ValueError:
        bucket = Bucket(0, 0)
    if bucket.capacity <= 0 or bucket.period <= 0:
        raise ValueError(f"bad rate {text!r}: expected count/seconds, e.g. 20/60")
    return bucket


class Limiter(Protocol):
    """Takes one token from a named bucket."""

    async def take(self, key: str, bucket: Bucket) -> Decision:
        """Take a token if there is one."""
        ...


class LocalLimiter:
    """Buckets in this process's memory."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._state: dict[str, tuple[float, float, bool]] = {}  # tokens, stamp, notified

    async def take(self, key: str, bucket: Bucket) -> Decision:
        """Refill by elapsed time, then take one token or refuse."""
        now = self.clock()
        tokens, stamp, notified = self._state.get(key, (bucket.capacity, now, False))
        tokens = min(bucket.capacity, tokens + (now - stamp) * bucket.rate)
        if tokens >= 1:
            self._state[key] = (tokens - 1, now, False)
            return Decision(True)
        self._state[key] = (tokens, now, True)
        return Decision(False, not notified, (1 - tokens) / bucket.rate)


_SCRIPT = """
local cap = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local data = redis.call('HMGET', KEYS[1], 'tokens', 'stamp', 'notified')
local tokens = tonumber(data[1]) or cap
local stamp = tonumber(data[2]) or now
local notified = data[3] or '0'
tokens = math.min(cap, tokens + math.max(0, now - stamp) * rate)
local allowed, notify = 0, 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
  notified = '0'
elseif notified ~= '1' then
  notify = 1
  notified = '1'
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now),
  'notified', notified)
redis.call('PEXPIRE', KEYS[1], math.ceil(cap / rate * 1000) + 1000)
return {allowed, notify, tostring((1 - tokens) / rate)}
"""


class RedisLimiter:
    """Buckets in Redis, shared by every process; one atomic script per message."""

    def __init__(self, client: Any, *, prefix: str = "oc:ratelimit:") -> None:
        self.client = client
        self.prefix = prefix
        self._script = client.register_script(_SCRIPT)
        self._fallback = LocalLimiter()
        self._degraded = False

    async def take(self, key: str, bucket: Bucket) -> Decision:
        """Run the bucket script for ``key``; while Redis is unreachable, limit in-process.

        A message must never be refused because the limiter's store is down.
        """
        from redis.exceptions import RedisError

        try:
            allowed, notify, wait = await self._script(
                keys=[self.prefix + key], args=[bucket.capacity, bucket.rate]
            )
        except RedisError as exc:
            if not self._degraded:
                logger.warning("rate limits fall back to in-process: Redis unavailable (%s)", exc)
                self._degraded = True
            return await self._fallback.take(key, bucket)
        self._degraded = False
        return Decision(bool(allowed), bool(notify), max(0.0, float(wait)) if not allowed else 0.0)


SLOW_DOWN = "You are sending messages faster than I can answer. Please wait about {seconds} s."


def rate_limit_middleware(
    limiter: Limiter,
    *,
    per_user: Bucket | None,
    per_chat: Bucket | None,
    exempt: Callable[[User], bool],
    say: Callable[..., Awaitable[object]],
) -> Middleware:
    """Limit messages and commands per account and per chat (reactions pass: they are cheap)."""

    async def mw(event: Message | Reaction | Command, call_next: Handler) -> None:
        if isinstance(event, Reaction) or exempt(event.user):
            await call_next(event)
            return
        checks = [(f"user:{event.user.key}", per_user), (f"chat:{event.chat.key}", per_chat)]
        for key, bucket in checks:
            if bucket is None:
                continue
            decision = await limiter.take(key, bucket)
            if decision.allowed:
                continue
            logger.info("rate limit hit for %s", key)
            if decision.notify:
                seconds = max(1, math.ceil(decision.retry_after))
                try:
                    await say(event.address, SLOW_DOWN.format(seconds=seconds))
                except Exception as exc:
                    logger.warning("could not send the rate-limit notice: %s", exc)
            return
        await call_next(event)

    return mw
