"""The one HTTP app: health, readiness, metrics, and the webhooks connectors mount."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

from bot.connector import ConnectorState

__all__ = ["HttpServer"]

logger = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[dict[str, str]]]


class HttpServer:
    """aiohttp application with ``/healthz``, ``/readyz``, ``/metrics`` and webhook routes."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        readiness: ReadinessCheck,
        metrics: Callable[[], bytes],
        routes: Iterable[web.RouteDef] = (),
    ) -> None:
        self.host, self.port = host, port
        self._readiness = readiness
        self._metrics = metrics
        self.app = web.Application()
        self.app.add_routes(
            [
                web.get("/healthz", self._healthz),
                web.get("/readyz", self._readyz),
                web.get("/metrics", self._metrics_view),
                *routes,
            ]
        )
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Bind and serve; ``port`` is updated when 0 was asked for."""
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        logger.info("HTTP app listening on http://%s:%s", self.host, self.port)

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        checks = await self._readiness()
        ready = all(v in ("ok", ConnectorState.CONNECTED) for v in checks.values())
        return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)

    async def _metrics_view(self, _request: web.Request) -> web.Response:
        return web.Response(body=self._metrics(), content_type="text/plain", charset="utf-8")
