"""Token buckets in process and on the real Redis; one polite answer, then silence."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
import redis.asyncio as redis

from opencomputer.bot.config import ConfigError, Settings, load_settings
from opencomputer.bot.ratelimit import Bucket, Decision, LocalLimiter, RedisLimiter, parse_rate
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.harness import Harness

from .conftest import ADMIN


def test_parse_rate() -> None:
    assert parse_rate("20/60") == Bucket(20, 60)
    assert parse_rate("5") == Bucket(5, 60)
    assert parse_rate("0") is None and parse_rate("") is None
    with pytest.raises(ValueError, match="count/seconds"):
        parse_rate("-1/60")


def test_bad_rate_setting_is_one_clear_line() -> None:
    with pytest.raises(ConfigError, match=r"OC_RATE_LIMIT_USER: .*expected count/seconds"):
        load_settings(OC_RATE_LIMIT_USER="lots")


async def test_local_bucket_refills_and_notifies_once() -> None:
    now = [100.0]
    limiter = LocalLimiter(clock=lambda: now[0])
    bucket = Bucket(2, 10)  # one token every 5 s
    assert [await limiter.take("k", bucket) for _ in range(2)] == [Decision(True), Decision(True)]
    third = await limiter.take("k", bucket)
    assert (third.allowed, third.notify, third.retry_after) == (False, True, 5.0)
    assert (await limiter.take("k", bucket)).notify is False  # no second notice
    now[0] += 5
    assert (await limiter.take("k", bucket)).allowed
    refused = await limiter.take("k", bucket)
    assert not refused.allowed and refused.notify  # a new episode gets a new notice
    assert (await limiter.take("other", bucket)).allowed


async def test_redis_bucket(redis_url: str) -> None:
    client = redis.from_url(redis_url)
    prefix = f"oc-test-{uuid.uuid4().hex}:"
    try:
        limiter = RedisLimiter(client, prefix=prefix)
        bucket = Bucket(2, 0.2)  # refills within 0.1 s per token
        assert (await limiter.take("k", bucket)).allowed
        assert (await limiter.take("k", bucket)).allowed
        third = await limiter.take("k", bucket)
        assert not third.allowed and third.notify and 0 < third.retry_after <= 0.1
        assert not (await limiter.take("k", bucket)).notify
        # A second process (another client) shares the same bucket.
        other = RedisLimiter(redis.from_url(redis_url), prefix=prefix)
        assert not (await other.take("k", bucket)).allowed
        await other.client.aclose()
        ttl = await client.pttl(prefix + "k")
        assert 0 < ttl <= 1200
        import asyncio

        await asyncio.sleep(0.15)  # the bucket refills with time: waiting is the behaviour
        assert (await limiter.take("k", bucket)).allowed
    finally:
        keys = await client.keys(prefix + "*")
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_redis_down_falls_back_to_in_process() -> None:
    client = redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        limiter = RedisLimiter(client)
        bucket = Bucket(1, 60)
        assert (await limiter.take("k", bucket)).allowed
        refused = await limiter.take("k", bucket)
        assert not refused.allowed and refused.notify
    finally:
        await client.aclose()


async def _flood(h: Harness, n: int, user: str = "alice") -> list[str]:
    return [await h.say(f"msg {i}", user=user) for i in range(n)]


async def test_messages_over_the_limit_get_one_notice(
    admin_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    settings = admin_settings(OC_DM_POLICY="open", OC_RATE_LIMIT_USER="3/60")
    async with Harness(settings) as h:
        answers = await _flood(h, 6)
        assert answers[:3] == ["echo: msg 0", "echo: msg 1", "echo: msg 2"]
        assert answers[3].startswith("You are sending messages faster than I can answer")
        assert answers[4:] == ["", ""]
        assert len(fake_ollama.chats) == 3
        assert await h.app.store.count_inbound() == 3  # refused messages are not stored
        assert (await _flood(h, 1, user="bob")) == ["echo: msg 0"]  # per user
        assert (await _flood(h, 5, user=ADMIN))[-1] == "echo: msg 4"  # admins are exempt


async def test_chat_limit_in_groups_on_redis(
    admin_settings: Callable[..., Settings], fake_ollama: FakeOllama, redis_url: str
) -> None:
    prefix = f"oc-test-{uuid.uuid4().hex}"
    settings = admin_settings(
        OC_DM_POLICY="open",
        OC_RATE_LIMIT_CHAT="2/60",
        OC_REDIS_URL=redis_url,
        OC_REDIS_PREFIX=prefix,
    )
    async with Harness(settings) as h:
        answers = [
            await h.say(f"g{i}", user=u, chat="room", group=True) for i, u in enumerate("abc")
        ]
        assert answers[:2] == ["echo: g0", "echo: g1"]
        assert "faster than I can answer" in answers[2]
    client = redis.from_url(redis_url)
    try:
        keys = sorted(k.decode() for k in await client.keys(prefix + ":*"))
        assert keys == [f"{prefix}:ratelimit:chat:test:room"]
        await client.delete(*keys)
    finally:
        await client.aclose()
