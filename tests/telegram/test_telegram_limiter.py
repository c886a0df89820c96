"""The outbound limiter: spacing per chat and overall, 429 retries, coalesced edits."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest
from telegram.error import RetryAfter

from opencomputer.connectors.telegram.limiter import LimiterConfig, OutboundLimiter


def _config(**kw: float) -> LimiterConfig:
    base = {
        "chat_interval": 0.05,
        "chat_burst": 2,
        "group_interval": 0.1,
        "group_burst": 1,
        "global_rate": 1000.0,
        "global_burst": 100,
    }
    base.update(kw)
    return LimiterConfig(**base)  # type: ignore[arg-type]


async def _times(limiter: OutboundLimiter, chat: str, n: int) -> list[float]:
    stamps: list[float] = []

    async def call() -> None:
        stamps.append(time.monotonic())

    await asyncio.gather(*(limiter.call(chat, call) for _ in range(n)))
    return stamps


async def test_per_chat_burst_then_interval() -> None:
    limiter = OutboundLimiter(_config(chat_interval=0.2))
    stamps = await _times(limiter, "42", 4)
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert gaps[0] < 0.1  # the burst of two goes at once
    assert all(g >= 0.18 for g in gaps[1:])  # then one per interval


async def test_chats_do_not_wait_for_each_other() -> None:
    limiter = OutboundLimiter(_config(chat_interval=1.0, chat_burst=1))
    start = time.monotonic()
    await asyncio.gather(*(_times(limiter, str(chat), 1) for chat in range(10)))
    assert time.monotonic() - start < 0.5


async def test_groups_are_slower_and_global_rate_caps_all() -> None:
    limiter = OutboundLimiter(_config(global_rate=50.0, global_burst=1))
    start = time.monotonic()
    await asyncio.gather(*(_times(limiter, str(chat), 1) for chat in range(6)))
    assert time.monotonic() - start >= 5 / 50 - 0.01  # 6 calls at 50/s overall
    group = await _times(limiter, "-100", 3)
    assert group[2] - group[0] >= 0.19  # 0.1 s apart in a group


async def test_retry_after_pauses_and_retries() -> None:
    limiter = OutboundLimiter(_config())
    attempts: list[float] = []

    async def call() -> str:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            raise RetryAfter(1)
        return "sent"

    assert await limiter.call("42", call) == "sent"
    assert attempts[1] - attempts[0] >= 0.95


async def test_gives_up_after_max_retries() -> None:
    limiter = OutboundLimiter(_config(max_retries=1))

    async def call() -> None:
        raise RetryAfter(0)

    with pytest.raises(RetryAfter):
        await limiter.call("42", call)


async def test_waiting_edit_is_superseded_by_newer_one() -> None:
    limiter = OutboundLimiter(_config(chat_interval=0.2, chat_burst=1))
    sent: list[str] = []

    def edit(text: str):
        async def call() -> str:
            sent.append(text)
            return text

        return call

    await limiter.call("42", edit("first"))  # uses the slot: the next ones wait
    results = await asyncio.gather(
        limiter.call("42", edit("v1"), coalesce=("42", "m1")),
        limiter.call("42", edit("v2"), coalesce=("42", "m1")),
        limiter.call("42", edit("other"), coalesce=("42", "m2")),
    )
    assert results == [None, "v2", "other"]
    assert sent == ["first", "v2", "other"]
