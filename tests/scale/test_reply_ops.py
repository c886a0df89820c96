"""Reply operations at the gateway: a worker's 'fresh' hint (``n``: nothing was posted for this
reply yet) saves reading the reply's posts, but never where it could post an answer twice.
"""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as redis

from opencomputer.bot.events import Address
from opencomputer.bot.scale.bus import GATEWAY_GROUP, Keys, ensure_group
from opencomputer.bot.storage.store import SqlStore
from tests.scale.cluster import Cluster, RedisServer

ADDRESS = Address("test", "c1", None)


def _final(key: str, text: str) -> dict[str, Any]:
    return {
        "a": ["test", "c1", None],
        "r": None,
        "k": key,
        "op": "stream",
        "x": text,
        "final": True,
        "n": 1,
        "rid": "r1",
        "w": "w-test",
    }


async def _posted_before(cluster: Cluster, key: str) -> None:
    """An earlier run of this reply posted its first message (recorded, not finished)."""
    store = SqlStore(str(cluster.env["OC_DATABASE_URL"]))
    await store.start()
    try:
        await store.record_post(key, ADDRESS, 0, "old1")
    finally:
        await store.stop()


async def _answer(client: redis.Redis, keys: Keys) -> dict[str, Any]:
    resp: Any = await client.xread({keys.answers("w-test"): "0-0"}, count=1, block=30_000)
    assert resp, "the gateway did not answer the operation"
    return dict(orjson.loads(resp[0][1][0][1][b"a"]))


async def test_an_operation_read_again_from_the_backlog_reads_the_posts(
    cluster: Cluster, redis_server: RedisServer
) -> None:
    """A gateway killed after applying a fresh final operation, before acknowledging it, reads
    it again at start: it must edit the message it posted, not post the answer again.
    """
    keys = Keys(str(cluster.env["OC_REDIS_PREFIX"]))
    client = redis.from_url(redis_server.url)
    try:
        await cluster.start_gateway()  # the schema and the consumer group
        assert cluster.gateway is not None
        await cluster.gateway.stop()
        await _posted_before(cluster, "in7")
        stream = keys.outbound("test")
        await ensure_group(client, stream, GATEWAY_GROUP)
        await client.xadd(stream, {"op": orjson.dumps(_final("in7", "hello"))})
        # delivered to the gateway's consumer and never acknowledged: its backlog
        await client.xreadgroup(GATEWAY_GROUP, "gw-test", {stream: ">"}, count=10)
        await cluster.start_gateway()
        answer = await _answer(client, keys)
        assert answer["ids"] == ["old1"]
        assert cluster.connector is not None
        actions = [(c.action, c.message_id, c.text) for c in cluster.connector.calls]
        assert actions == [("edit", "old1", "hello")]
    finally:
        await client.aclose()


async def test_a_fresh_operation_skips_reading_the_posts(
    cluster: Cluster, redis_server: RedisServer
) -> None:
    """The hint is trusted on a new operation (the worker claimed the message while it was
    still 'accepted', so nothing was posted): no read, the answer is posted.
    """
    keys = Keys(str(cluster.env["OC_REDIS_PREFIX"]))
    client = redis.from_url(redis_server.url)
    try:
        await cluster.start_gateway()
        await _posted_before(cluster, "in8")  # only this test's way to see the read skipped
        await client.xadd(keys.outbound("test"), {"op": orjson.dumps(_final("in8", "hi"))})
        answer = await _answer(client, keys)
        assert cluster.connector is not None
        sends = [c for c in cluster.connector.calls if c.action == "send"]
        assert len(sends) == 1 and answer["ids"] == [sends[0].message_id]
        assert cluster.connector.messages[sends[0].message_id] == "hi"
    finally:
        await client.aclose()
