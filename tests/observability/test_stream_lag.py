"""``oc_stream_lag`` / ``oc_stream_pending`` read from real Redis streams (scale-out backlog)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from types import SimpleNamespace

import pytest
from redis.asyncio import Redis

from opencomputer.bot.metrics import Metrics
from opencomputer.bot.observability import StreamLagMonitor
from opencomputer.bot.scale.bus import WORKER_GROUP, Keys

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


async def test_scale_out_roles_poll_the_backlog_until_stopped(redis: Redis, redis_url: str) -> None:
    from opencomputer.bot.observability import _start_lag_monitor

    prefix = f"oc-test-lag-{uuid.uuid4().hex[:8]}"
    await redis.xadd(Keys(prefix).inbound(1), {"n": "1"})
    settings = SimpleNamespace(redis_url=redis_url, redis_prefix=prefix, partitions=2)
    app = SimpleNamespace(settings=settings, metrics=Metrics(), on_stop=[], extras={})
    try:
        await _start_lag_monitor(app, interval=0.05)  # type: ignore[arg-type]
        assert isinstance(app.extras["stream_lag"], StreamLagMonitor)
        for _ in range(200):  # the first refresh runs as soon as the task starts
            if "oc_stream_lag 1.0" in app.metrics.render().decode():
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("the backlog was never read")
        (stop,) = app.on_stop
        await stop()
    finally:
        await redis.delete(Keys(prefix).inbound(1))


class _SwallowingMonitor(StreamLagMonitor):
    """A refresh whose Redis call swallows the cancel (redis-py did, dropping a connection
    while Redis restarted): the process then hung on SIGTERM, waiting for this loop.
    """

    def __init__(self, redis: Redis) -> None:
        super().__init__(redis, Metrics(), prefix=f"oc-test-{uuid.uuid4().hex[:8]}", partitions=1)
        self.inside = asyncio.Event()

    async def refresh(self) -> tuple[int, int]:
        self.inside.set()
        try:
            await asyncio.Event().wait()  # a Redis call that is cancelled...
        except asyncio.CancelledError:
            pass  # ...and does not pass the cancel on
        return 0, 0


async def test_a_cancel_swallowed_inside_redis_still_stops_the_loop(redis: Redis) -> None:
    monitor = _SwallowingMonitor(redis)
    task = asyncio.create_task(monitor.run(3600))
    await monitor.inside.wait()
    task.cancel()
    async with asyncio.timeout(10):
        await asyncio.wait({task})
    assert task.done()
