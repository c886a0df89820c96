"""Redis Streams layout shared by gateways and workers.

Inbound events go to ``P`` partition streams (``{prefix}:in:{p}``, partition = hash of the
conversation), so one conversation always lands in one stream and is read, in order, by the one
worker holding that partition's lease. Outbound operations (stream a reply, show typing) go to
one stream per platform, read by the gateway that runs that platform's connector; answers come
back on a stream per worker.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from opencomputer.bot.runtime import Job
from opencomputer.bot.scale.codec import encode_event

__all__ = ["GATEWAY_GROUP", "WORKER_GROUP", "Keys", "ensure_group", "partition_of", "publish"]

WORKER_GROUP = "workers"
GATEWAY_GROUP = "gateways"


def partition_of(conversation: str, partitions: int) -> int:
    """Stable partition of a conversation key (the same in every process)."""
    return zlib.crc32(conversation.encode()) % partitions


@dataclass(frozen=True, slots=True)
class Keys:
    """Every Redis key name, under one prefix (tests use a unique one each)."""

    prefix: str = "oc"

    def inbound(self, partition: int) -> str:
        """Stream of accepted events for one partition."""
        return f"{self.prefix}:in:{partition}"

    def outbound(self, platform: str) -> str:
        """Stream of reply operations for the gateway running ``platform``."""
        return f"{self.prefix}:out:{platform}"

    def answers(self, worker: str) -> str:
        """Stream of RPC answers for one worker."""
        return f"{self.prefix}:ans:{worker}"

    def lease(self, partition: int) -> str:
        """Which worker owns a partition (expires unless renewed)."""
        return f"{self.prefix}:lease:{partition}"

    @property
    def workers(self) -> str:
        """Sorted set of live workers, scored by their last heartbeat (ms)."""
        return f"{self.prefix}:workers"

    @property
    def capabilities(self) -> str:
        """Hash platform -> JSON capabilities, published by gateways."""
        return f"{self.prefix}:caps"


async def publish(redis: Redis, keys: Keys, partitions: int, job: Job) -> None:
    """Append a job to its conversation's partition stream (raises ``RedisError``)."""
    stream = keys.inbound(partition_of(job.event.address.key, partitions))
    fields = {"ev": encode_event(job.event), "in": str(job.inbound_id or "")}
    # Capped as a safety net: entries are deleted once handled, and anything ever trimmed
    # unhandled is still in the database, where the republisher finds it.
    await redis.xadd(stream, fields, maxlen=100_000, approximate=True)  # type: ignore[arg-type]


async def ensure_group(redis: Redis, stream: str, group: str) -> None:
    """Create the consumer group (and stream) unless it exists: after a Redis restart too."""
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
