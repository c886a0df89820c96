"""Rate limits per user and per chat: token buckets, in-process or shared through Redis.

A bucket holds ``capacity`` tokens and refills ``capacity`` tokens every ``period`` seconds;
each message takes one. The first refused message gets one polite answer; the ones after it
are dropped silently until a token is available again, so a flood never answers a flood.
With ``OC_REDIS_URL`` the buckets live in Redis and one Lua script reads, refills and takes
atomically, so every gateway process shares the same limits.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from opencomputer.bot.events import Command, Message, Reaction, User
from opencomputer.bot.middleware import Handler, Middleware

__all__ = [
    "MAX_KEYS",
    "Bucket",
    "Decision",
    "Limiter",
    "LocalLimiter",
    "RedisLimiter",
    "client_network",
    "parse_rate",
    "rate_limit_middleware",
]

logger = logging.getLogger(__name__)

MAX_KEYS = 50_000
"""Keys one in-process limiter tracks at most (about 14 MB with client-address keys); see
:class:`LocalLimiter`."""
_OVERFLOW_BUCKETS = 16


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


def client_network(address: str | None) -> str:
    """Whom a per-address limit counts: an IPv4 address, or an IPv6 address's /64 (one
    client is given a whole /64 and could otherwise take a new address per request).
    """
    try:
        ip = ipaddress.ip_address((address or "").split("%")[0])
    except ValueError:
        return address or "?"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class Limiter(Protocol):
    """Takes one token from a named bucket."""

    async def take(self, key: str, bucket: Bucket) -> Decision:
        """Take a token if there is one."""
        ...


class LocalLimiter:
    """Buckets in this process's memory, never more than ``max_keys`` of them.

    A bucket that has filled up again is the same as no bucket, so it is dropped: buckets are
    kept in order of last use, and each new key first drops the refilled ones from the oldest
    end (each is dropped once, so this costs O(1) a call on average). Without that, every
    distinct client address ever seen would stay in memory. When the table is full of buckets
    that are all still refilling (a flood of distinct keys), a new key is not added: it is
    charged to one shared overflow bucket instead, so the flood's new keys are limited
    together (failing safe, never open) while keys already tracked keep their own buckets.
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, *, max_keys: int = MAX_KEYS
    ) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.clock = clock
        self.max_keys = max_keys
        self._state: OrderedDict[str, _State] = OrderedDict()
        self._overflow: dict[Bucket, _State] = {}

    def __len__(self) -> int:
        """How many keys are tracked now (the overflow buckets not counted)."""
        return len(self._state)

    async def take(self, key: str, bucket: Bucket) -> Decision:
        """Refill by elapsed time, then take one token or refuse."""
        now = self.clock()
        state = self._state.get(key)
        if state is not None:
            self._state.move_to_end(key)
            decision, self._state[key] = _take(state, bucket, now)
            return decision
        self._expire(now)
        if len(self._state) < self.max_keys:
            decision, self._state[key] = _take(None, bucket, now)
            return decision
        if len(self._overflow) > _OVERFLOW_BUCKETS:  # only a few Bucket values exist
            self._overflow.clear()
        decision, self._overflow[bucket] = _take(self._overflow.get(bucket), bucket, now)
        return decision

    def _expire(self, now: float) -> None:
        """Drop refilled buckets from the least recently used end."""
        while self._state:
            key, state = next(iter(self._state.items()))
            if state.full_at > now:
                return
            del self._state[key]


class _State(NamedTuple):
    """A bucket as last seen (a tuple: cheap to make, one is made per call)."""

    tokens: float
    stamp: float
    notified: bool
    full_at: float
    """When the bucket is full again (from then on it can be forgotten)."""


def _take(state: _State | None, bucket: Bucket, now: float) -> tuple[Decision, _State]:
    """One token from a bucket (None: a full one), and the bucket's new state."""
    if state is None:
        tokens, stamp, notified = bucket.capacity, now, False
    else:
        tokens, stamp, notified = state.tokens, state.stamp, state.notified
    tokens = min(bucket.capacity, tokens + max(0.0, now - stamp) * bucket.rate)
    if tokens >= 1:
        tokens -= 1
        decision, notified = Decision(True), False
    else:
        decision = Decision(False, not notified, (1 - tokens) / bucket.rate)
        notified = True
    full_at = now + (bucket.capacity - tokens) / bucket.rate
    return decision, _State(tokens, now, notified, full_at)


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
