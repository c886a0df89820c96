"""The gateway role: run connectors, publish accepted events to Redis, perform reply operations.

Accepted messages are stored in the database first (so ``emit`` can let the platform's ack go)
and then published; if Redis is down the message waits in the database and the republisher
publishes it once Redis is back. Workers never talk to a platform: they send reply operations
here, and every platform call goes through the connector this process runs.

Replies with a durable key (``in<inbound id>``, ``reply<reply id>``) keep their posted messages
and whether they were finished in the database (``reply_posts``), not in this process's
memory: a restarted gateway edits a reply's messages instead of posting them again, and answers
a repeated final operation with the ids it delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import bindparam, or_, select

from opencomputer.bot.events import Address
from opencomputer.bot.hooks import hookimpl
from opencomputer.bot.reply import ReplyStream, is_durable_key
from opencomputer.bot.runtime import Job, message_from_row
from opencomputer.bot.scale.backoff import Outage
from opencomputer.bot.scale.bus import GATEWAY_GROUP, Keys, ensure_group, publish
from opencomputer.bot.storage.models import InboundRow, ReplyRow

if TYPE_CHECKING:
    from opencomputer.bot.features import Host as App

__all__ = ["Gateway"]

logger = logging.getLogger(__name__)

_KEEP_FINISHED = 10_000
_IN = InboundRow.__table__  # type: ignore[attr-defined]
_REPLY = ReplyRow.__table__  # type: ignore[attr-defined]
# Only what is due is read, so a backlog of fresh messages is not fetched on every pass.
_STALE_INBOUND = (
    select(_IN)
    .where(
        _IN.c.status.in_(("accepted", "processing", "replying")),
        _IN.c.received_at <= bindparam("cutoff"),
        or_(
            _IN.c.status == "accepted",
            _IN.c.claimed_at.is_(None),
            _IN.c.claimed_at <= bindparam("alive"),
        ),
    )
    .order_by(_IN.c.id)
)
_STALE_REPLIES = (
    select(_REPLY)
    .where(
        _REPLY.c.status == "pending",
        _REPLY.c.inbound_id.is_(None),
        _REPLY.c.created_at <= bindparam("cutoff"),
    )
    .order_by(_REPLY.c.id)
)


class Gateway:
    """Publishes inbound work and serves the workers' reply operations."""

    def __init__(
        self,
        app: App,
        redis: Redis,
        *,
        keys: Keys,
        partitions: int,
        republish_after: float,
        stale_after: float = 18.0,
    ) -> None:
        self.app = app
        self.redis = redis
        self.keys = keys
        self.partitions = partitions
        self.republish_after = republish_after
        self.stale_after = stale_after
        self._streams: OrderedDict[str, ReplyStream] = OrderedDict()
        self._finished: OrderedDict[str, list[str]] = OrderedDict()  # keys not stored only
        self._tails: dict[str, asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    # --- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Serve reply operations and republish what was lost (the app routes jobs here)."""
        for platform in self.app.runtime.connectors:
            self._tasks.append(asyncio.create_task(self._serve(platform), name=f"out:{platform}"))
        self._tasks.append(asyncio.create_task(self._republish_loop(), name="republish"))

    async def stop(self) -> None:
        """Stop background loops (connectors are stopped by the app)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._tails.values(), return_exceptions=True)

    # --- inbound -----------------------------------------------------------------------
    @hookimpl
    def oc_route(self, job: Job) -> Awaitable[None]:
        """Every accepted job goes to the workers (bot/hooks.py)."""
        return self.publish(job)

    async def publish(self, job: Job) -> None:
        """Put an accepted job on its conversation's partition stream."""
        try:
            await publish(self.redis, self.keys, self.partitions, job)
        except RedisError as exc:
            if job.inbound_id is None:  # commands are not stored: say so rather than drop
                logger.warning("Redis unavailable, command /%s not queued: %s", job.event, exc)
                with contextlib.suppress(Exception):
                    await self.app.runtime.say(
                        job.event.address, "I am restarting: try again shortly."
                    )
                return
            logger.warning(
                "Redis unavailable; message %s is stored and will be published later",
                job.inbound_id,
            )

    async def _republish_loop(self) -> None:
        while True:
            await asyncio.sleep(max(0.2, self.republish_after / 4))
            try:
                await self.republish_stale()
                await self.deliver_stale_replies()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("republish pass failed: %s", exc)

    async def republish_stale(self) -> int:
        """Publish again messages nobody has answered for a while (lost in a Redis restart,
        or claimed by a worker that died). Workers claim rows, so a copy is never answered twice.
        """
        now = time.time()
        params = {"cutoff": now - self.republish_after, "alive": now - self.stale_after}
        async with self.app.store.engine.connect() as conn:  # claimed and alive: a worker is on it
            rows = list(await conn.execute(_STALE_INBOUND, params))
        count = 0
        for row in rows:
            if row.platform not in self.app.runtime.connectors:
                continue
            await self.publish(Job(message_from_row(row), int(row.id)))
            count += 1
        return count

    async def deliver_stale_replies(self) -> None:
        """Send replies recorded without a stored message behind them (a resumed approval...)
        that no worker got delivered. Replies to stored messages are delivered, in their
        conversation's order, by the worker that republishing hands the message to.
        """
        async with self.app.store.engine.connect() as conn:
            params = {"cutoff": time.time() - self.republish_after}
            rows = list(await conn.execute(_STALE_REPLIES, params))
        for row in rows:
            if row.platform not in self.app.runtime.connectors:
                continue
            address = Address(row.platform, row.chat_id, row.thread_id)
            key = f"reply{row.id}"

            async def deliver(row: Any = row, address: Address = address, key: str = key) -> None:
                ids = await self._finish(key, address, None, row.text)
                await self.app.store.mark_reply_sent(int(row.id), address, ids)

            self._chain(key, deliver)  # in line with the worker's own operations on this reply

    # --- outbound ----------------------------------------------------------------------
    async def _serve(self, platform: str) -> None:
        stream = self.keys.outbound(platform)
        consumer = f"gw-{platform}"
        backlog = True  # first our own unacknowledged operations, then new ones
        grouped = False
        outage = Outage(f"reading {stream}", logger)
        while True:
            try:
                if not grouped:
                    await ensure_group(self.redis, stream, GATEWAY_GROUP)
                    grouped = True
                resp: Any = await self.redis.xreadgroup(
                    GATEWAY_GROUP,
                    consumer,
                    {stream: "0" if backlog else ">"},
                    count=100,
                    block=1000,
                )
            except asyncio.CancelledError:
                raise
            except RedisError as exc:  # includes NOGROUP after a Redis restart
                grouped = backlog = False
                await asyncio.sleep(outage.failed(exc))
                continue
            outage.succeeded()
            entries = [e for _s, batch in resp or [] for e in batch]
            if backlog and not entries:
                backlog = False
            for entry_id, fields in entries:
                op = orjson.loads(fields[b"op"])
                if backlog:  # read again after a restart: it may have been applied before
                    op.pop("n", None)
                self._chain(
                    op.get("k") or entry_id.decode(), partial(self._apply, stream, entry_id, op)
                )

    def _chain(self, key: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run operations on one reply strictly in order, different replies concurrently."""
        previous = self._tails.get(key)

        async def run() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            await work()

        task = asyncio.create_task(run())
        self._tails[key] = task

        def forget(done: asyncio.Task[None]) -> None:
            if self._tails.get(key) is done:
                del self._tails[key]

        task.add_done_callback(forget)

    async def _apply(self, stream: str, entry_id: bytes, op: dict[str, Any]) -> None:
        address = Address(*op["a"])
        result: dict[str, Any] = {}
        try:
            if op["op"] == "typing":
                connector = self.app.runtime.connectors.get(address.platform)
                if connector is not None and connector.capabilities.can_type:
                    await connector.typing(address)
            elif op.get("final"):
                result["ids"] = await self._finish(
                    op["k"], address, op.get("r"), op["x"], fresh=bool(op.get("n"))
                )
            elif op["k"] not in self._finished:
                sink = await self._stream(op["k"], address, op.get("r"), fresh=bool(op.get("n")))
                if sink.delivered is None:  # a late snapshot never overwrites the answer
                    await sink.show(op["x"])
        except Exception as exc:
            logger.warning("reply operation on %s failed: %s", address.key, exc)
            result["error"] = f"{type(exc).__name__}: {exc}"
        with contextlib.suppress(RedisError):  # the answer and the ack: one round trip
            async with self.redis.pipeline(transaction=False) as pipe:
                if op.get("rid"):
                    answer = orjson.dumps({"rid": op["rid"], **result})
                    pipe.xadd(
                        self.keys.answers(op["w"]), {"a": answer}, maxlen=10_000, approximate=True
                    )
                pipe.xack(stream, GATEWAY_GROUP, entry_id)
                await pipe.execute()

    async def _stream(
        self, key: str, address: Address, reply_to: str | None, *, fresh: bool = False
    ) -> ReplyStream:
        """The reply's stream; one this process has not seen yet first reads what an earlier
        gateway (or an earlier run of the turn) posted for it: one read per reply. A worker's
        first operation on a first attempt says ``fresh`` (``n``): nothing can have been
        posted for it, so the read is skipped (not for a repeat, nor for an operation read
        again from this gateway's backlog, which an earlier run of it may have applied).
        """
        stream = self._streams.get(key)
        if stream is None:
            connector = self.app.runtime.connectors[address.platform]
            keeps = is_durable_key(key) and connector.capabilities.keeps_messages
            ledger = self.app.store if keeps else None
            stream = ReplyStream(connector, address, reply_to, key=key, ledger=ledger)
            if not fresh:
                await stream.resume()
            self._streams[key] = stream
            while len(self._streams) > _KEEP_FINISHED:
                self._streams.popitem(last=False)
        return stream

    async def _finish(
        self, key: str, address: Address, reply_to: str | None, text: str, *, fresh: bool = False
    ) -> list[str]:
        """Deliver the final text once per key: a repeated final returns the same message ids
        (from the database for durable keys, so a gateway restart does not answer twice).
        """
        if key in self._finished:
            return self._finished[key]
        stream = await self._stream(key, address, reply_to, fresh=fresh)
        if stream.delivered is not None:
            ids = stream.delivered
        else:
            ids = await stream.finish(text)
            if stream.key is not None:
                await self.app.store.finish_posts(stream.key, len(ids))
        self._streams.pop(key, None)
        if stream.key is None:
            self._finished[key] = ids
            while len(self._finished) > _KEEP_FINISHED:
                self._finished.popitem(last=False)
        return ids
