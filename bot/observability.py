"""Observability feature: model, tool, feedback, connector and stream metrics; turn ids in logs.

Each measurement is taken where the thing happens, without editing the code that does it:
the graph's model client is wrapped (:class:`MeteredModel`), the tool executor is wrapped
(:func:`metered_tool_layer`), reactions are scored by a reaction observer, connector states and
stream lag are read right before a scrape. Metric names are in :mod:`opencomputer.bot.metrics`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opencomputer.bot.connector import ConnectorState
from opencomputer.bot.events import Reaction
from opencomputer.bot.hooks import ToolLayer, ToolNext, hookimpl
from opencomputer.bot.logs import turn_context, turn_id_for
from opencomputer.bot.metrics import Metrics
from opencomputer.bot.ollama import ChatResult, ModelClient
from opencomputer.bot.tools import Tool

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from opencomputer.bot.features import Host as App
    from opencomputer.bot.middleware import Event, Handler, Middleware

__all__ = ["MeteredModel", "StreamLagMonitor", "metered_tool_layer", "setup"]

logger = logging.getLogger(__name__)


class MeteredModel:
    """A model client that counts chat calls, their duration and their tokens per model.

    Everything except ``chat`` goes straight to the wrapped client.
    """

    def __init__(self, inner: ModelClient, metrics: Metrics) -> None:
        self.inner = inner
        self.metrics = metrics

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def chat(
        self, model: str, messages: Sequence[dict[str, Any]], **kwargs: Any
    ) -> ChatResult:
        """One chat completion, measured."""
        started = time.perf_counter()
        try:
            result = await self.inner.chat(model, messages, **kwargs)
        except Exception:
            self.metrics.model_requests.labels(model, "error").inc()
            raise
        elapsed = time.perf_counter() - started
        m = self.metrics
        m.model_requests.labels(model, "ok").inc()
        m.model_seconds.labels(model).observe(elapsed)
        m.model_tokens.labels(model, "prompt").inc(result.prompt_tokens)
        m.model_tokens.labels(model, "completion").inc(result.completion_tokens)
        logger.debug(
            "model %s answered in %.3fs (%d prompt + %d completion tokens)",
            model,
            elapsed,
            result.prompt_tokens,
            result.completion_tokens,
        )
        return result


def metered_tool_layer(metrics: Metrics) -> ToolLayer:
    """A tool layer (stage ``measure``): count calls and failures per plugin, time each call."""

    async def measure(tool: Tool, arguments: dict[str, Any], call_next: ToolNext) -> str:
        plugin = tool.plugin or "core"
        metrics.tool_calls.labels(plugin, tool.name).inc()
        started = time.perf_counter()
        try:
            return await call_next(tool, arguments)
        except Exception:
            metrics.tool_errors.labels(plugin, tool.name).inc()
            raise
        finally:
            metrics.tool_seconds.labels(plugin).observe(time.perf_counter() - started)

    return measure


class StreamLagMonitor:
    """Reads the backlog of the scale-out inbound streams into ``oc_stream_lag``/``_pending``.

    The worker autoscaler reads these (``deploy/k8s/worker-hpa.yaml``). Every process polls the
    whole backlog, so any gateway or worker reports the same figure.
    """

    def __init__(
        self, redis: Any, metrics: Metrics, *, prefix: str, partitions: int, group: str = "workers"
    ) -> None:
        from opencomputer.bot.scale.bus import Keys

        self.redis = redis
        self.metrics = metrics
        self.keys = Keys(prefix)
        self.partitions = partitions
        self.group = group

    async def refresh(self) -> tuple[int, int]:
        """Read every partition once; set and return ``(lag, pending)``."""
        from redis.exceptions import ResponseError

        lag = pending = 0
        streams = [self.keys.inbound(p) for p in range(self.partitions)]
        async with self.redis.pipeline(transaction=False) as pipe:  # one round trip for all
            for stream in streams:
                pipe.xinfo_groups(stream)
            answers = await pipe.execute(raise_on_error=False)
        for stream, answer in zip(streams, answers, strict=True):
            if isinstance(answer, ResponseError):  # the stream does not exist yet
                answer = []
            elif isinstance(answer, Exception):
                raise answer
            groups: list[dict[str, Any]] = list(answer)
            mine = next((g for g in groups if _text(g.get("name")) == self.group), None)
            if mine is None:  # no worker ever joined: everything is waiting
                lag += int(await self.redis.xlen(stream))
                continue
            pending += int(mine.get("pending") or 0)
            if mine.get("lag") is not None:
                lag += int(mine["lag"])
            else:  # Redis cannot tell after deletions: count what is after the group's cursor
                last = _text(mine.get("last-delivered-id")) or "0-0"
                lag += len(await self.redis.xrange(stream, min=f"({last}", count=10_000))
        self.metrics.stream_lag.set(lag)
        self.metrics.stream_pending.set(pending)
        return lag, pending

    async def run(self, interval: float) -> None:
        """Refresh every ``interval`` seconds until cancelled; errors are logged, not raised.

        A cancel that lands inside a Redis call can be swallowed by the client while it drops
        the connection (seen with Redis restarting): the loop checks that it is being cancelled
        before sleeping, or a stopping process would wait on it forever.
        """
        me = asyncio.current_task()
        while True:
            try:
                await self.refresh()
            except Exception as exc:
                logger.warning("could not read the stream backlog: %s", exc)
            if me is not None and me.cancelling():
                return
            await asyncio.sleep(interval)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


class _Observability:
    """Turn ids in logs from the first inbound rule on; tool and feedback metrics."""

    def __init__(self, app: App) -> None:
        self.measure = metered_tool_layer(app.metrics)
        self.on_reaction = _feedback_counter(app)

    @hookimpl
    def oc_inbound_rules(self) -> list[tuple[str, Middleware]]:
        return [("trace", _turn_ids)]

    @hookimpl
    def oc_tool_layers(self) -> list[tuple[str, ToolLayer]]:
        return [("measure", self.measure)]

    @hookimpl
    def oc_reaction(self, reaction: Reaction, reply_id: int | None) -> Awaitable[None]:
        return self.on_reaction(reaction, reply_id)  # type: ignore[no-any-return]


async def setup(app: App) -> None:
    """Feature entry point: metric hooks, turn ids in logs, connector gauges, stream lag."""
    metrics = app.metrics
    app.hooks.register(_Observability(app), "observability")

    def refresh_connectors() -> None:
        for connector in app.connectors:
            for state in ConnectorState:
                value = 1 if connector.state == state else 0
                metrics.connector_state.labels(connector.platform, state.value).set(value)

    metrics.add_refresher(refresh_connectors)
    if app.role != "all" and app.settings.redis_url:
        await _start_lag_monitor(app)


async def _turn_ids(event: Event, call_next: Handler) -> None:
    """Log accepting an event (dedupe, access, publishing to workers) under its turn id."""
    with turn_context(turn_id_for(event.platform, event.event_id)):
        await call_next(event)


def _feedback_counter(app: App) -> Any:
    from opencomputer.bot.feedback.scoring import EmojiTable

    table = EmojiTable.from_csv(app.settings.feedback_positive, app.settings.feedback_negative)
    feedback = app.metrics.feedback

    async def on_reaction(reaction: Reaction, reply_id: int | None) -> None:
        if reply_id is None or not reaction.added:
            return  # only ratings of our replies; a removed reaction is not a new rating
        score = table.score(reaction.emoji, reaction.platform)
        if score is not None:
            feedback.labels(reaction.platform, "positive" if score > 0 else "negative").inc()

    return on_reaction


async def _start_lag_monitor(app: App, interval: float = 5.0) -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url(str(app.settings.redis_url))
    monitor = StreamLagMonitor(
        redis, app.metrics, prefix=app.settings.redis_prefix, partitions=app.settings.partitions
    )
    task = asyncio.create_task(monitor.run(interval), name="stream-lag")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await redis.aclose()

    app.on_stop.append(stop)
    app.extras["stream_lag"] = monitor
