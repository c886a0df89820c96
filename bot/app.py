"""The composition root: builds storage, model client, graph, runtime, HTTP app and connectors
from settings, and tears them down in reverse order.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from opencomputer.bot.channels import ChannelServices, build_connectors, enable_hints
from opencomputer.bot.commands import CommandRouter
from opencomputer.bot.config import Settings
from opencomputer.bot.connector import Connector, ConnectorState
from opencomputer.bot.features import load_features
from opencomputer.bot.hooks import TOOL_STAGES, Hooks, compose
from opencomputer.bot.http import HttpServer
from opencomputer.bot.metrics import Metrics
from opencomputer.bot.ollama_pool import OllamaPool
from opencomputer.bot.runtime import Runtime
from opencomputer.bot.storage.store import SqlStore
from opencomputer.bot.tools import Tool, ToolRegistry

if TYPE_CHECKING:
    from opencomputer.bot.scale.changes import Changes

__all__ = ["App", "build_connectors", "enable_hints"]

logger = logging.getLogger(__name__)


def _one_line_sdk_errors(record: logging.LogRecord) -> bool:
    """python-telegram-bot logs a third party's HTML error page plus a traceback per retry.

    The connector already reports each failure streak in one line, so the SDK's copy is kept
    only at DEBUG (``OC_LOG_LEVEL=DEBUG`` shows it whole).
    """
    return logging.getLogger().isEnabledFor(logging.DEBUG)


logging.getLogger("telegram.request.BaseRequest").addFilter(_one_line_sdk_errors)

# Connectors: every installed ``opencomputer.channels`` entry point (bot/channels.py).
# Features: every ``opencomputer.features`` entry point (bot/features.py) not turned off.
# Both are registered the same way a third-party package registers one; features extend the
# runtime only through the hooks of bot/hooks.py.

ConnectorsFactory = Callable[[Settings, Runtime], list[Connector]]


class App:
    """Everything one opencomputer process runs."""

    def __init__(self, settings: Settings, *, role: str = "all") -> None:
        if role not in ("all", "gateway", "worker"):
            raise ValueError(f"unknown role {role!r}")
        self.settings = settings
        self.role = role
        self.metrics = Metrics()
        self.store = SqlStore(settings.resolved_database_url)
        self.llm = OllamaPool(
            settings.model_hosts,
            timeout=settings.model_timeout,
            stall_timeout=settings.model_stall_timeout,
            retry_seconds=settings.model_retry_seconds,
            api_key=settings.openai_api_key,
        )
        self.tools = ToolRegistry()
        self.commands = CommandRouter()
        self.hooks = Hooks()
        """The extension seam features register on (bot/hooks.py)."""
        self._tool_call: Callable[[Tool, dict[str, Any]], Awaitable[Any]] | None = None
        self.http: HttpServer | None = None
        self.model_status = "unchecked"
        self.connectors: list[Connector] = []
        self.extras: dict[str, Any] = {}
        self.on_stop: list[Callable[[], Awaitable[None]]] = []
        self.on_ready: list[Callable[[], Awaitable[None]]] = []
        """Run once everything is up and recovered (schedulers and other background work)."""
        self._runtime: Runtime | None = None
        self.changes: Changes | None = None
        """Announces changes to cached tables to other processes (set when Redis is)."""
        self._stack = contextlib.AsyncExitStack()

    @property
    def runtime(self) -> Runtime:
        """The runtime (exists once :meth:`start` ran)."""
        if self._runtime is None:
            raise RuntimeError("App.start() was not called")
        return self._runtime

    async def start(
        self,
        connectors: ConnectorsFactory | None = None,
        *,
        http: bool = True,
    ) -> Runtime:
        """Open storage and the model client, build the graph, start connectors.

        If anything fails half-way, what was opened is closed again before the error propagates.
        """
        try:
            return await self._start(connectors, http=http)
        except BaseException:
            await self.stop()
            raise

    async def _start(self, connectors: ConnectorsFactory | None, *, http: bool) -> Runtime:
        from opencomputer.bot.observability import MeteredModel
        from opencomputer.bot.storage.disk import full_at_start
        from opencomputer.graphs.agent.checkpointer import open_checkpointer
        from opencomputer.graphs.agent.graph import build_graph
        from opencomputer.graphs.agent.runner import GraphAgent

        if (no_space := full_at_start(self.store.url)) is not None:
            from opencomputer.bot.config import ConfigError

            raise ConfigError(no_space)  # one line, not SQLite's "disk I/O error" traceback
        # Only the embedded default store migrates itself (after a backup); a configured
        # database is migrated by `opencomputer db upgrade` (deployments run it first).
        await self.store.start(upgrade=self.settings.database_url is None)
        self._stack.push_async_callback(self.store.stop)
        await self.llm.start()
        self._stack.push_async_callback(self.llm.stop)
        check = await self.llm.check_model(self.settings.model)
        self.model_status = "ok" if check.ok else check.message
        if not check.ok:
            logger.error("model not ready: %s", check.message)
        from opencomputer.bot.config import num_ctx_problem

        if (problem := num_ctx_problem(self.settings, check.context_length)) is not None:
            from opencomputer.bot.config import ConfigError

            raise ConfigError(problem)  # the model would silently truncate every prompt
        saver = await self._stack.enter_async_context(
            open_checkpointer(self.settings.resolved_database_url, self.store.writer)
        )
        llm = MeteredModel(self.llm, self.metrics)  # oc_model_* metrics
        graph = build_graph(llm=llm, checkpointer=saver, executor=self._execute_tool)
        self._runtime = Runtime(
            settings=self.settings,
            store=self.store,
            agent=GraphAgent(graph),
            tools=self.tools,
            commands=self.commands,
            metrics=self.metrics,
            hooks=self.hooks,
        )
        if self.settings.redis_url:  # other processes cache the same tables: keep in step
            self.changes = await self._changes()
        for feature in load_features(self.settings):
            await feature.setup(self)
        self.hooks.call.oc_commands(router=self.commands)
        from opencomputer.graphs.agent.nodes import run_tool_inprocess

        tool_layers = self.hooks.staged(self.hooks.call.oc_tool_layers(), TOOL_STAGES)
        self._tool_call = compose(tool_layers, run_tool_inprocess)
        if connectors is None and self.role == "worker":
            connectors = lambda _s, _rt: []  # noqa: E731  workers reach platforms through gateways
        factory = connectors or self.channel_connectors
        self.connectors = factory(self.settings, self.runtime)
        for connector in self.connectors:
            self.runtime.add_connector(connector)
        if http:
            routes = [route for c in self.connectors for route in c.routes()]
            routes += [r for found in self.hooks.call.oc_http_routes() for r in found]
            self.http = HttpServer(
                self.settings.http_host,
                self.settings.http_port,
                readiness=self.readiness,
                metrics=self.render_metrics,
                routes=routes,
            )
            await self.http.start()
        scale = await self._scale_out()
        # Recovery first, before any connector takes input: what a previous run left unanswered
        # queues first and new messages queue behind it (never a message twice). Lanes run
        # once connectors are up to deliver. Gateways deliver saved replies themselves.
        await self.runtime.recover(replies=self.role == "all")
        await self.runtime.start()
        for connector in self.connectors:
            await self._start_connector(connector)
        if scale is not None:
            await scale.start()
        self.runtime.open_lanes()
        for hook in self.on_ready:
            await hook()
        await self.hooks.notify(self.hooks.call.oc_ready())
        # Everything built so far lives as long as the process: keep it out of the collector's
        # full passes, which otherwise stall every conversation for tens of milliseconds.
        gc.freeze()
        return self.runtime

    def channel_connectors(self, settings: Settings, runtime: Runtime) -> list[Connector]:
        """Every configured channel's connector, offered the app's services (bot/channels.py)."""
        return build_connectors(settings, runtime.emit, services=self.channel_services(runtime))

    def channel_services(self, runtime: Runtime) -> ChannelServices:
        """What a channel's factory may take besides ``emit`` (bot/channels.py)."""
        return ChannelServices(
            say=runtime.say,
            store=self.store,
            reachable=lambda platform: platform in runtime.connectors,
            wait_idle=runtime.wait_idle,
            hooks=self.hooks,
        )

    async def _changes(self) -> Changes:
        from redis.asyncio import Redis

        from opencomputer.bot.scale.changes import Changes, changes_channel

        redis = Redis.from_url(self.settings.redis_url or "")
        changes = Changes(redis, changes_channel(self.settings.redis_prefix))
        await changes.start()
        self._stack.push_async_callback(redis.aclose)
        self._stack.push_async_callback(changes.stop)
        return changes

    async def _scale_out(self) -> Any:
        """The gateway or worker side of a scale-out deployment (None for ``run``/``chat``)."""
        if self.role == "all":
            return None
        from redis.asyncio import Redis

        from opencomputer.bot.scale.bus import Keys

        if not self.settings.redis_url:
            raise RuntimeError(f"the {self.role} role needs OC_REDIS_URL")
        redis = Redis.from_url(self.settings.redis_url, max_connections=256)
        keys = Keys(self.settings.redis_prefix)
        role: Any
        if self.role == "gateway":
            from opencomputer.bot.scale.gateway import Gateway

            role = Gateway(
                self,
                redis,
                keys=keys,
                partitions=self.settings.partitions,
                republish_after=self.settings.republish_after,
                stale_after=3 * self.settings.worker_lease,
            )
        else:
            from opencomputer.bot.scale.worker import Worker

            role = Worker(
                self,
                redis,
                keys=keys,
                partitions=self.settings.partitions,
                lease_ms=int(self.settings.worker_lease * 1000),
                reclaim_idle_ms=int(self.settings.republish_after * 1000),
                resend_after=min(5.0, self.settings.republish_after),
            )
        self.hooks.register(role, self.role)  # it takes jobs (oc_route) and replies (worker)
        self.extras[self.role] = role

        async def close() -> None:
            await role.stop()
            await redis.aclose()

        self.on_stop.append(close)
        return role

    async def _execute_tool(self, tool: Tool, arguments: dict[str, Any]) -> str:
        """Run a tool through the layers features declared (``oc_tool_layers``: metrics, then
        where it runs: a plugin's sandbox, an MCP server), else in this process.
        """
        if self._tool_call is None:
            raise RuntimeError("App.start() was not called")
        return str(await self._tool_call(tool, arguments))

    async def _start_connector(self, connector: Connector) -> None:
        """A connector that fails to start is logged; the others and the server keep running."""
        try:
            await connector.start()
            await connector.register_commands(self.commands.specs())
        except Exception as exc:
            logger.error("%s connector failed to start: %s", connector.platform, exc)
            connector.state = ConnectorState.FAILED

    async def stop(self) -> None:
        """Stop taking events, finish or persist in-flight turns, close everything."""
        worker = self.extras.get("worker")
        if worker is not None:
            await worker.stop_consuming()
        if self._runtime is not None:
            await self._runtime.stop()
        for connector in self.connectors:
            try:
                await connector.stop()
            except Exception as exc:
                logger.warning("%s connector did not stop cleanly: %s", connector.platform, exc)
        for hook in reversed(self.on_stop):
            await hook()
        if self.http is not None:
            await self.http.stop()
        await self._stack.aclose()

    async def readiness(self) -> dict[str, str]:
        """What ``/readyz`` reports: database, model, each connector's state."""
        checks: dict[str, str] = {}
        try:
            await self.store.ping()
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {type(exc).__name__}"
        from opencomputer.bot.storage.disk import DiskFull, guard_for_url

        if (disk := guard_for_url(self.store.url)) is not None:  # a local SQLite file
            with contextlib.suppress(DiskFull):
                disk.check()
            checks["disk"] = disk.status  # "full: ..." while new messages are refused
        checks["model"] = self.model_status
        role = self.extras.get(self.role) if self.role in ("gateway", "worker") else None
        if role is not None:  # gateways and workers do nothing useful without Redis
            try:
                import asyncio

                async with asyncio.timeout(2):
                    await role.redis.ping()
                checks["redis"] = "ok"
            except Exception as exc:
                checks["redis"] = f"error: {type(exc).__name__}"
        for connector in self.connectors:
            checks[connector.platform] = str(connector.state)
        return checks

    def render_metrics(self) -> bytes:
        """Refresh gauges that are cheaper to read than to track, then render."""
        for connector in self.connectors:
            self.metrics.connector_up.labels(connector.platform).set(
                1 if connector.state == ConnectorState.CONNECTED else 0
            )
        return self.metrics.render()
