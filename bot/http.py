"""The one HTTP app: health, readiness, metrics, and the webhooks connectors mount.

The app faces the internet (webhooks), so it must survive clients that hold connections open
without finishing a request (slowloris) and floods of connections that would exhaust the
process's file descriptors. aiohttp offers size limits and a keep-alive timeout but no header
timeout and no connection cap, so each accepted connection's protocol is wrapped in
:class:`_Guard`, which

- closes a connection that has not sent a complete header block ``header_timeout`` seconds
  after it was accepted (later requests on a kept-alive connection are bounded by aiohttp's
  keep-alive timer, which is not reset by incoming bytes);
- keeps at most ``max_connections`` open: a new connection over the cap evicts the oldest one
  that is still sending headers or sits idle between requests, and is refused only when every
  open connection is busy with a request. So a trickle of slow clients cannot lock out
  ``/healthz`` or a platform's webhook delivery.

Bodies are read by a middleware before any handler runs, within ``body_timeout`` seconds and
under a per-route size limit (413 when larger, 408 when too slow).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from aiohttp import web

from opencomputer.bot.connector import ConnectorState

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""The Content-Security-Policy of the pages we serve (web chat, control room): our own files
only, no inline script, no framing."""
PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
"""Headers on every response of those pages and their APIs."""

__all__ = ["PAGE_CSP", "PAGE_HEADERS", "HttpLimits", "HttpServer", "TooLarge", "too_large_as"]

logger = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[dict[str, str]]]

_SMALL_BODY = 1024
"""Limit for the built-in GET routes: they take no body, a large one is an attack."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TooLarge = Callable[[int], web.Response]
"""``answer(limit)``: a route's own refusal of a body over ``limit`` bytes (status 413)."""


def too_large_as(handler: Handler, answer: TooLarge) -> Handler:
    """``handler``, whose route refuses a body over the size limit with ``answer(limit)``
    instead of the plain-text 413: the body is refused before any handler runs, so a route
    that speaks its own error format (OpenAI's JSON, the web chat's one line) says so here.
    """

    async def run(request: web.Request) -> web.StreamResponse:
        return await handler(request)

    run.too_large = answer  # type: ignore[attr-defined]
    return run


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Timeouts and caps of the HTTP app (the defaults suit a public webhook endpoint)."""

    header_timeout: float = 10.0
    """Seconds a new connection has to send its first complete header block."""
    body_timeout: float = 30.0
    """Seconds a request has to send its whole body."""
    keepalive_timeout: float = 30.0
    """Seconds an idle kept-alive connection stays open."""
    max_connections: int = 512
    """Open connections at most; lowered to half the open-file limit when that is smaller."""
    max_body: int = 1024 * 1024
    """Body size limit of every route without its own entry in ``body_limits``."""
    body_limits: Mapping[str, int] = field(default_factory=dict)
    """Stricter (or looser) body limits by exact path."""
    lingering_time: float = 1.0
    """Seconds an unread body is drained after a refusal (413/408) before the close, so the
    client reads the answer instead of a reset; aiohttp's default of 10 s favours attackers."""
    max_line_size: int = 8190
    max_field_size: int = 8190
    max_headers: int = 64

    def connection_cap(self) -> int:
        """``max_connections``, but never more than half the descriptors the process may open
        (the rest stays for the database, Redis, plugin sandboxes and outbound clients).
        """
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return self.max_connections
        return max(8, min(self.max_connections, soft // 2))


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
        limits: HttpLimits | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.limits = limits or HttpLimits()
        self._readiness = readiness
        self._metrics = metrics
        self._body_limits = {
            "/healthz": _SMALL_BODY,
            "/readyz": _SMALL_BODY,
            "/metrics": _SMALL_BODY,
            **self.limits.body_limits,
        }
        self.app = web.Application(
            client_max_size=self.limits.max_body, middlewares=[self._read_body]
        )
        self.app.add_routes(
            [
                web.get("/healthz", self._healthz),
                web.get("/readyz", self._readyz),
                web.get("/metrics", self._metrics_view),
                *routes,
            ]
        )
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self._open: dict[_Guard, None] = {}  # insertion-ordered: oldest first
        self.refused = 0
        """Connections closed at once because every slot was busy (for tests and logs)."""

    @property
    def connections(self) -> int:
        """Connections open now."""
        return len(self._open)

    async def start(self) -> None:
        """Bind and serve; ``port`` is updated when 0 was asked for."""
        limits = self.limits
        self._runner = web.AppRunner(
            self.app,
            access_log=None,
            keepalive_timeout=limits.keepalive_timeout,
            max_line_size=limits.max_line_size,
            max_field_size=limits.max_field_size,
            max_headers=limits.max_headers,
            lingering_time=limits.lingering_time,
            shutdown_timeout=5.0,
        )
        await self._runner.setup()
        handlers = self._runner.server
        assert handlers is not None
        cap = limits.connection_cap()

        def protocol() -> _Guard:
            return _Guard(handlers(), self, cap)

        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(protocol, self.host, self.port, backlog=1024)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            from opencomputer.bot.config import ConfigError

            await self._runner.cleanup()
            raise ConfigError(
                f"cannot listen on {self.host}:{self.port}: address already in use; "
                "set OC_HTTP_PORT (or OC_HTTP_HOST) to a free one, or stop the other process"
            ) from None
        sockets = self._server.sockets
        if sockets:
            self.port = sockets[0].getsockname()[1]
        logger.info(
            "HTTP app listening on http://%s:%s (at most %d connections)",
            self.host,
            self.port,
            cap,
        )

    async def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for guard in list(self._open):
            guard.abort()

    # --- connection accounting (called by _Guard) ----------------------------------------
    def _admit(self, guard: _Guard, cap: int) -> bool:
        if len(self._open) >= cap:
            victim = next((g for g in self._open if g.evictable), None)
            if victim is None:
                self.refused += 1
                return False
            victim.abort()
            self._open.pop(victim, None)
        self._open[guard] = None
        return True

    def _gone(self, guard: _Guard) -> None:
        self._open.pop(guard, None)

    # --- body limits and timeout -------------------------------------------------------
    @web.middleware
    async def _read_body(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Read the whole body up front, bounded in size and time, before the handler runs."""
        if not request.body_exists:
            return await handler(request)
        limit = self._body_limits.get(request.path, self.limits.max_body)
        answer: TooLarge | None = getattr(request.match_info.handler, "too_large", None)
        length = request.content_length
        if length is not None and length > limit:
            return _too_large(limit, answer)
        request = request.clone(client_max_size=limit + 1)  # aiohttp refuses size >= max
        try:
            async with asyncio.timeout(self.limits.body_timeout):
                await request.read()  # cached: the handler's text()/json() reuse it
        except web.HTTPRequestEntityTooLarge:
            return _too_large(limit, answer)
        except TimeoutError:
            logger.info("HTTP body from %s too slow; closing", request.remote)
            return web.Response(status=408, text="request body too slow\n", headers=_CLOSE)
        return await handler(request)

    # --- routes ------------------------------------------------------------------------
    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        checks = await self._readiness()
        ready = all(v in ("ok", ConnectorState.CONNECTED) for v in checks.values())
        return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)

    async def _metrics_view(self, _request: web.Request) -> web.Response:
        return web.Response(body=self._metrics(), content_type="text/plain", charset="utf-8")


_CLOSE = {"Connection": "close"}


def _too_large(limit: int, answer: TooLarge | None = None) -> web.Response:
    if answer is not None:
        response = answer(limit)
        response.set_status(413)
        response.headers.update(_CLOSE)
        return response
    return web.Response(
        status=413, text=f"request body larger than {limit} bytes\n", headers=_CLOSE
    )


class _Guard(asyncio.Protocol):
    """Wraps aiohttp's per-connection protocol: header timeout and connection accounting."""

    def __init__(self, inner: Any, server: HttpServer, cap: int) -> None:
        self._inner = inner
        self._server = server
        self._cap = cap
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""
        self._started = False
        self.headers_done = False

    @property
    def evictable(self) -> bool:
        """Still sending its first headers, or idle between requests (never mid-request)."""
        if not self.headers_done:
            return True
        inner = self._inner
        return not getattr(inner, "_request_in_progress", True) and not getattr(
            inner, "_messages", True
        )

    def abort(self) -> None:
        """Drop the connection now (no lingering, no graceful close)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None and not self._transport.is_closing():
            self._transport.abort()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # No isinstance check: uvloop's TCP transport is not a subclass of asyncio.Transport.
        self._transport = cast(asyncio.Transport, transport)
        if not self._server._admit(self, self._cap):
            self._transport.abort()
            return
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._server.limits.header_timeout, self._headers_late)
        self._started = True
        self._inner.connection_made(transport)

    def _headers_late(self) -> None:
        self._timer = None
        if not self.headers_done:
            logger.info("HTTP client sent no complete headers in time; closing")
            self.abort()

    def data_received(self, data: bytes) -> None:
        if not self.headers_done:
            seen = self._tail + data
            if b"\r\n\r\n" in seen:
                self.headers_done = True
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
            else:
                self._tail = seen[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()  # type: ignore[no-any-return]

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._server._gone(self)
        if self._started:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()
