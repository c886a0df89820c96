"""Keeping every process's cached copy of shared tables in step.

Grants, account links and model choices are read on every event, so each process keeps them in
memory. In a gateway + workers deployment an admin command runs on a worker while the gateway
decides who may talk: without this, ``/allow`` would reach the gateway only at its next start.
A process that changes a table announces it on a Redis channel and every process reloads that
table at once; a reload every ``interval`` seconds catches announcements missed while Redis was
unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

__all__ = ["Changes", "announce_once", "changes_channel"]

logger = logging.getLogger(__name__)

Reload = Callable[[], Awaitable[None]]


def changes_channel(prefix: str) -> str:
    """The Redis channel announcements travel on (``OC_REDIS_PREFIX`` + ``:changes``)."""
    return f"{prefix}:changes"


async def announce_once(redis_url: str, channel: str, topic: str) -> bool:
    """Announce one change from a process without a feed (the CLI); False if Redis is down."""
    redis = Redis.from_url(redis_url)
    try:
        await redis.publish(channel, topic)
        return True
    except RedisError:
        return False
    finally:
        await redis.aclose()


class Changes:
    """Announces changes to shared tables and reloads the caches others announce."""

    def __init__(self, redis: Redis, channel: str, *, interval: float = 60.0) -> None:
        """``channel`` is ``changes_channel(prefix)``; ``interval`` paces the safety reload."""
        self.redis = redis
        self.channel = channel
        self.interval = interval
        self._reloads: dict[str, Reload] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.subscribed = asyncio.Event()

    def watch(self, topic: str, reload: Reload) -> Reload:
        """Reload with ``reload`` when ``topic`` changes; returns what announces a change."""
        self._reloads[topic] = reload

        async def announce() -> None:
            await self.changed(topic)

        return announce

    async def changed(self, topic: str) -> None:
        """Tell every process (this one included) that ``topic`` changed."""
        try:
            await self.redis.publish(self.channel, topic)
        except RedisError as exc:  # the periodic reload brings it to the others later
            logger.warning("could not announce a change of %s: %s", topic, exc)

    async def start(self) -> None:
        """Listen for announcements and reload periodically."""
        self._tasks = [
            asyncio.create_task(self._listen(), name="changes"),
            asyncio.create_task(self._periodic(), name="changes-periodic"),
        ]

    async def stop(self) -> None:
        """Stop listening."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _reload(self, topics: list[str]) -> None:
        for topic in topics:
            reload = self._reloads.get(topic)
            if reload is None:
                continue
            try:
                await reload()
            except Exception as exc:  # the database blinked: the next reload will do
                logger.warning("reloading %s failed: %s", topic, exc)

    async def _listen(self) -> None:
        missed = False
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.subscribed.set()
                if missed:  # announcements made while we were away are lost: catch up
                    await self._reload(list(self._reloads))
                    missed = False
                async for message in pubsub.listen():
                    data = message.get("data")
                    topic = data.decode() if isinstance(data, bytes) else str(data)
                    await self._reload([topic])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if not missed:
                    logger.warning("listening for changes failed (%s); retrying", exc)
                missed = True
                self.subscribed.clear()
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _periodic(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self._reload(list(self._reloads))
