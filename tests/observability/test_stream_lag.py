"""``oc_stream_lag`` / ``oc_stream_pending`` read from real Redis streams (scale-out backlog)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bot.metrics import Metrics
from bot.observability import StreamLagMonitor
from bot.scale.bus import WORKER_GROUP, Keys

pytestmark = pytest.mark.redis


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_lag_and_pending_over_partitions(redis: Redis) -> None:
    prefix = f"oc-test-lag-{uuid.uuid4().hex[:8]}"
    keys = Keys(prefix)
    metrics = Metrics()
    monitor = StreamLagMonitor(redis, metrics, prefix=prefix, partitions=3)
    try:
        assert await monitor.refresh() == (0, 0)  # no stream yet
        # partition 0: workers joined, read two of five entries and acknowledged one
        s0 = keys.inbound(0)
        await redis.xgroup_create(s0, WORKER_GROUP, id="0", mkstream=True)
        ids = [await redis.xadd(s0, {"n": str(i)}) for i in range(5)]
        await redis.xreadgroup(WORKER_GROUP, "w1", {s0: ">"}, count=2)
        await redis.xack(s0, WORKER_GROUP, ids[0])
        # partition 2: published before any worker created the group
        for i in range(4):
            await redis.xadd(keys.inbound(2), {"n": str(i)})

        assert await monitor.refresh() == (3 + 4, 1)
        text = metrics.render().decode()
        assert "oc_stream_lag 7.0" in text and "oc_stream_pending 1.0" in text

        # trimming makes Redis unable to compute the lag: the monitor counts entries instead
        await redis.xdel(s0, ids[3])
        assert await monitor.refresh() == (2 + 4, 1)
    finally:
        await redis.delete(*(keys.inbound(p) for p in range(3)))
