"""The worker role: hold partition leases, run turns for the events in them, relay replies.

Each partition stream is read by exactly one worker at a time (a lease in Redis, renewed while
the worker lives, taken over by another when it stops being renewed). A worker takes its fair
share of partitions, so adding workers spreads conversations over them. Stream entries are
acknowledged only after the message was answered; a dead worker's unacknowledged entries are
claimed by the worker that takes its partitions over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
import uuid
import zlib
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from opencomputer.bot.events import Address, Command, Message
from opencomputer.bot.hooks import hookimpl
from opencomputer.bot.reply import ReplySink, reply_key
from opencomputer.bot.runtime import Job, RuntimeStopped, message_from_row
from opencomputer.bot.scale.backoff import Outage
from opencomputer.bot.scale.bus import WORKER_GROUP, Keys, ensure_group, partition_of, publish
from opencomputer.bot.scale.claims import claim_up_to, touch
from opencomputer.bot.scale.codec import decode_event

if TYPE_CHECKING:
    from opencomputer.bot.features import Host as App

__all__ = ["RemoteSink", "Worker"]

logger = logging.getLogger(__name__)

_RENEW = """
local kept = {}
for i, key in ipairs(KEYS) do
  if redis.call('get', key) == ARGV[1] then
    kept[i] = redis.call('pexpire', key, ARGV[2])
  else
    kept[i] = 0
  end
end
return kept
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class Worker:
    """Consumes partitions of the inbound streams and runs the agent for them."""

    def __init__(
        self,
        app: App,
        redis: Redis,
        *,
        keys: Keys,
        partitions: int,
        worker_id: str | None = None,
        lease_ms: int = 6000,
        reclaim_idle_ms: int = 30_000,
        rpc_timeout: float = 120.0,
        resend_after: float = 5.0,
    ) -> None:
        self.app = app
        self.redis = redis
        self.keys = keys
        self.partitions = partitions
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.lease_ms = lease_ms
        self.reclaim_idle_ms = reclaim_idle_ms
        self.rpc_timeout = rpc_timeout
        self.resend_after = resend_after
        self.held: set[int] = set()
        self.draining: set[int] = set()
        self.live: set[str] = {self.id}
        self.capacity = max(4, app.settings.max_in_flight * 4)
        self._inflight: set[tuple[str, bytes]] = set()
        self._answering: set[int] = set()  # inbound rows claimed and being answered
        self._fresh: set[str] = set()  # reply keys of first attempts (no posts exist yet)
        self.stale_after = 3 * lease_ms / 1000
        self._futures: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._running = False

    # --- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Relay replies through gateways, join the worker set and start consuming."""
        self._running = True
        self._tasks = [
            asyncio.create_task(self._answers_loop(), name="answers"),
            asyncio.create_task(self._lease_loop(), name="leases"),
            asyncio.create_task(self._read_loop(), name="read"),
            asyncio.create_task(self._reclaim_loop(), name="reclaim"),
        ]

    async def stop_consuming(self) -> None:
        """Stop taking new entries (in-flight turns go on)."""
        self._running = False

    async def stop(self) -> None:
        """Leave: release leases so another worker takes over at once, stop loops."""
        self._running = False
        with contextlib.suppress(RedisError):
            for p in list(self.held):
                await self._release(keys=[self.keys.lease(p)], args=[self.id])
            await self.redis.zrem(self.keys.workers, self.id)
            await self.redis.delete(self.keys.answers(self.id))
        self.held.clear()
        self.draining.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- leases ------------------------------------------------------------------------
    async def _lease_loop(self) -> None:
        outage = Outage(f"worker {self.id} renewing leases", logger)
        while True:
            try:
                await touch(self.app.store, set(self._answering), self.id)
                await self.rebalance()
                outage.succeeded()
            except asyncio.CancelledError:
                raise
            except RedisError as exc:
                outage.failed(exc)  # one line per outage; the lease pace itself is kept
            await asyncio.sleep(self.lease_ms / 3000)

    async def rebalance(self) -> None:
        """Heartbeat, renew held leases, take or give partitions to reach the fair share."""
        if not self._running:
            return
        now = int(time.time() * 1000)
        horizon = now - 2 * self.lease_ms
        async with self.redis.pipeline(transaction=False) as pipe:  # one round trip
            pipe.zadd(self.keys.workers, {self.id: now})
            pipe.zremrangebyscore(self.keys.workers, 0, horizon)
            pipe.zrangebyscore(self.keys.workers, horizon, "+inf")
            *_, members = await pipe.execute()
        self.live = {m.decode() if isinstance(m, bytes) else str(m) for m in members}
        held = sorted(self.held)
        if held:  # every lease renewed in one script call, not one round trip each
            kept = await self._renew(
                keys=[self.keys.lease(p) for p in held], args=[self.id, self.lease_ms]
            )
            for p, ok in zip(held, kept, strict=True):
                if not ok:
                    logger.warning("worker %s lost partition %s", self.id, p)
                    self.held.discard(p)
        share = math.ceil(self.partitions / max(1, len(self.live)))
        # Partitions over the fair share are drained: no new entries are read from them, and
        # each is released once its in-flight entries are answered. Waiting for an idle moment
        # instead would never hand anything to a worker that joins under sustained load.
        self.draining = set(sorted(self.held)[share:])
        busy = {s for s, _e in self._inflight}
        for p in sorted(self.draining):
            if self.keys.inbound(p) not in busy:
                await self._release(keys=[self.keys.lease(p)], args=[self.id])
                self.held.discard(p)
                self.draining.discard(p)
        if len(self.held) < share:
            start = zlib.crc32(self.id.encode()) % self.partitions
            for i in range(self.partitions):
                p = (start + i) % self.partitions
                if p in self.held:
                    continue
                if await self.redis.set(self.keys.lease(p), self.id, nx=True, px=self.lease_ms):
                    self.held.add(p)
                    await self._ensure_group(p)
                    await self._claim(p, min_idle=0)
                    if len(self.held) >= share:
                        break

    @property
    def reading(self) -> list[int]:
        """Partitions this worker reads new entries from (held and not being handed over)."""
        return sorted(self.held - self.draining)

    async def _ensure_group(self, p: int) -> None:
        await ensure_group(self.redis, self.keys.inbound(p), WORKER_GROUP)

    async def _claim(self, p: int, *, min_idle: int) -> None:
        """Take over unacknowledged entries of a partition (a dead or slow worker's), in order."""
        stream = self.keys.inbound(p)
        cursor: Any = "0-0"
        while True:
            result: Any = await self.redis.xautoclaim(
                stream, WORKER_GROUP, self.id, min_idle_time=min_idle, start_id=cursor, count=200
            )
            cursor, entries = result[0], result[1]
            for entry_id, fields in entries:
                if fields:
                    await self._dispatch(stream, entry_id, fields, claimed=True)
            if cursor in (b"0-0", "0-0") or not entries:
                return

    async def _reclaim_loop(self) -> None:
        while True:
            await asyncio.sleep(self.reclaim_idle_ms / 3000)
            for p in self.reading:
                try:
                    await self._claim(p, min_idle=self.reclaim_idle_ms)
                except asyncio.CancelledError:
                    raise
                except (RedisError, RuntimeStopped) as exc:
                    logger.debug("reclaim on %s skipped: %s", p, exc)

    # --- consuming ---------------------------------------------------------------------
    async def _read_loop(self) -> None:
        outage = Outage(f"worker {self.id} reading inbound streams", logger)
        while True:
            if not self._running or not self.reading or len(self._inflight) >= self.capacity:
                await asyncio.sleep(0.02)
                continue
            streams = {self.keys.inbound(p): ">" for p in self.reading}
            try:
                resp: Any = await self.redis.xreadgroup(
                    WORKER_GROUP,
                    self.id,
                    streams,  # type: ignore[arg-type]
                    # COUNT is per stream: split the room left between them.
                    count=max(1, (self.capacity - len(self._inflight)) // len(streams)),
                    block=200,
                )
                outage.succeeded()
                for stream, entries in resp or []:
                    name = stream.decode() if isinstance(stream, bytes) else stream
                    for entry_id, fields in entries:
                        await self._dispatch(name, entry_id, fields, claimed=False)
            except asyncio.CancelledError:
                raise
            except ResponseError as exc:
                if "NOGROUP" in str(exc):  # Redis lost its data: recreate groups
                    for p in list(self.held):
                        with contextlib.suppress(RedisError):
                            await self._ensure_group(p)
                else:
                    await asyncio.sleep(outage.failed(exc))
            except RedisError as exc:
                await asyncio.sleep(outage.failed(exc))
            except RuntimeStopped:
                self._running = False

    async def _dispatch(
        self, stream: str, entry_id: bytes, fields: dict[bytes, bytes], *, claimed: bool
    ) -> None:
        token = (stream, entry_id)
        if token in self._inflight:
            return
        event = decode_event(fields[b"ev"])
        raw_id = fields.get(b"in", b"")
        inbound_id = int(raw_id) if raw_id else None
        self._inflight.add(token)

        async def work() -> None:
            try:
                if isinstance(event, Command):
                    await self.app.runtime.run_command(event)
                    done = True
                elif inbound_id is not None:
                    done = await self._answer(event, inbound_id, claimed)
                else:  # not a stored message: a paused turn to resume (an approval decided)
                    await self.app.runtime.run_turn(event, None)
                    done = True
                if done:  # acknowledged and deleted: handled entries do not pile up in Redis
                    with contextlib.suppress(RedisError):  # lost with a Redis restart: fine
                        async with self.redis.pipeline(transaction=False) as pipe:
                            pipe.xack(stream, WORKER_GROUP, entry_id)
                            pipe.xdel(stream, entry_id)
                            await pipe.execute()
            finally:
                self._inflight.discard(token)

        try:
            await self.app.runtime.dispatch(Job(event, inbound_id, work=work))
        except RuntimeStopped:
            self._inflight.discard(token)
            raise

    async def _answer(self, event: Message, inbound_id: int, claimed: bool) -> bool:
        claim = await claim_up_to(
            self.app.store, event.address.key, inbound_id, self.id, self.stale_after
        )
        ids = {int(row.id) for row, _resumed in claim.rows}
        self._answering |= ids
        try:
            for row, resumed in claim.rows:
                if row.status == "replying":  # answered, not delivered: deliver, in order
                    reply = await self.app.store.pending_reply_for(int(row.id))
                    if reply is not None:
                        await self.app.runtime.deliver_reply(reply)
                    continue
                # A message claimed while still 'accepted' was never worked on, so nothing
                # was posted for it: the gateway may skip reading its posts (one query less).
                key = reply_key(int(row.id)) if not resumed else None
                if key is not None:
                    self._fresh.add(key)
                try:
                    await self.app.runtime.run_turn(
                        message_from_row(row), int(row.id), retry=resumed or claimed
                    )
                finally:
                    self._fresh.discard(key or "")
        finally:
            self._answering -= ids
        return claim.complete

    @hookimpl
    def oc_route(self, job: Job) -> Awaitable[None]:
        """Jobs made here go to the worker that owns their conversation (bot/hooks.py)."""
        return self.route(job)

    @hookimpl
    def oc_open_stream(self, address: Address, reply_to: str | None, key: str | None) -> ReplySink:
        """Replies go through the gateway that runs the platform (bot/hooks.py)."""
        return self.open_stream(address, reply_to, key)

    async def route(self, job: Job) -> None:
        """Jobs made on this worker (a paused turn that ``/approve`` resumes) go to the worker
        that owns their conversation, so its turns stay one at a time and in order.
        """
        if partition_of(job.event.address.key, self.partitions) in self.reading:
            await self.app.runtime.dispatch(job)
        else:
            await publish(self.redis, self.keys, self.partitions, job)

    # --- replies through the gateway ---------------------------------------------------
    def open_stream(self, address: Address, reply_to: str | None, key: str | None) -> ReplySink:
        """The runtime's reply sink in a worker: relayed to the gateway running the platform."""
        sink = RemoteSink(self, address, reply_to, key or f"s{uuid.uuid4().hex}")
        sink.fresh = key is not None and key in self._fresh
        return sink

    async def cast(self, op: dict[str, Any], *, best_effort: bool = False) -> None:
        """Send a reply operation without waiting for it (interim ones may be lost)."""
        if best_effort:
            with contextlib.suppress(RedisError):
                await self.cast(op)
            return
        await self.redis.xadd(
            self.keys.outbound(op["a"][0]),
            {"op": orjson.dumps(op)},
            maxlen=100_000,
            approximate=True,
        )

    async def call(self, op: dict[str, Any]) -> dict[str, Any]:
        """Send a reply operation and wait for the gateway's answer."""
        rid = uuid.uuid4().hex
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._futures[rid] = future
        deadline = time.monotonic() + self.rpc_timeout
        op = {**op, "rid": rid, "w": self.id}
        try:
            # Resent until answered: a Redis restart may have lost it, and the gateway delivers
            # a reply's final text once per key, so a repeat returns the same message ids.
            while True:
                with contextlib.suppress(RedisError):
                    await self.cast(op)
                op.pop("n", None)  # a repeat may follow a post: the gateway reads the posts
                wait = min(self.resend_after, deadline - time.monotonic())
                if wait <= 0:
                    raise TimeoutError("no gateway answered the reply operation")
                with contextlib.suppress(TimeoutError):
                    answer = await asyncio.wait_for(asyncio.shield(future), wait)
                    break
        finally:
            self._futures.pop(rid, None)
        if "error" in answer:
            raise RuntimeError(f"gateway could not deliver the reply: {answer['error']}")
        return answer

    async def _answers_loop(self) -> None:
        stream = self.keys.answers(self.id)
        last: Any = "0-0"
        outage = Outage(f"worker {self.id} reading answers", logger)
        while True:
            try:
                resp: Any = await self.redis.xread({stream: last}, count=200, block=1000)
            except asyncio.CancelledError:
                raise
            except RedisError as exc:
                await asyncio.sleep(outage.failed(exc))
                continue
            outage.succeeded()
            for _stream, entries in resp or []:
                for entry_id, fields in entries:
                    last = entry_id
                    answer = orjson.loads(fields[b"a"])
                    future = self._futures.get(answer.get("rid", ""))
                    if future is not None and not future.done():
                        future.set_result(answer)


class RemoteSink:
    """A reply streamed from a worker: snapshots of the text go to the gateway, which edits."""

    interval = 0.25

    def __init__(self, worker: Worker, address: Address, reply_to: str | None, key: str) -> None:
        self.worker = worker
        self.key = key
        self.text = ""
        self._base = {
            "a": [address.platform, address.chat_id, address.thread_id],
            "r": reply_to,
            "k": key,
        }
        # The first snapshot waits one interval too: a quick answer then travels as the final
        # text alone, one operation instead of two (a model's first token rarely comes sooner).
        self._last = time.monotonic()
        self._started = False
        self._typing: asyncio.Task[None] | None = None
        self.fresh = False
        """A first attempt: the first reply operation tells the gateway nothing was posted."""

    def _op(self, **fields: Any) -> dict[str, Any]:
        """A reply operation on this reply; the first one carries ``n`` if it is fresh."""
        op = {**self._base, "op": "stream", **fields}
        if self.fresh:
            op["n"] = 1
            self.fresh = False
        return op

    @property
    def started(self) -> bool:
        """Whether a snapshot went out yet."""
        return self._started

    async def token(self, text: str) -> None:
        """Append text; relay a snapshot at most every ``interval`` seconds."""
        self.text += text
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._started = True
            await self.worker.cast(self._op(x=self.text), best_effort=True)

    async def resume(self) -> None:
        """Nothing to do here: the gateway resumes a reply key it does not hold by itself."""

    async def restart(self) -> None:
        """Interim text is replaced by the next model round's."""
        self.text = ""

    async def typing(self) -> None:
        """Ask the gateway to show the typing indicator, unless the answer is out by then."""
        if self._typing is None or self._typing.done():
            self._typing = asyncio.create_task(self._typing_soon())

    async def _typing_soon(self) -> None:
        # An answer ready within one interval needs no indicator: that saves a platform call
        # (Telegram counts chat actions against its limits) and two hops over Redis per turn.
        await asyncio.sleep(self.interval)
        if not self._started:
            await self.worker.cast({**self._base, "op": "typing"}, best_effort=True)

    async def finish(self, text: str) -> list[str]:
        """Deliver the final text; returns the platform message ids."""
        if self._typing is not None:
            self._typing.cancel()
        answer = await self.worker.call(self._op(x=text, final=True))
        return [str(i) for i in answer.get("ids", [])]
