"""Where discord.py connects, and how fast it may reconnect.

discord.py has no URL setting: every REST route is built from ``discord.http.Route.BASE`` and
the first gateway connection goes to ``DiscordWebSocket.DEFAULT_GATEWAY``. Setting those two
class attributes is what REST proxies and local gateways do; :class:`Endpoints` does it for the
connector's lifetime only and puts the old values back on stop. (They are process-wide, which
is fine: one process runs at most one Discord connector.)

discord.py resumes immediately after every close it can handle, so a gateway that drops us
again and again would be a tight reconnect loop. :class:`ReconnectPolicy` spaces the WebSocket
handshakes out with capped exponential backoff, through aiohttp's public ``TraceConfig`` hook
that discord.py exposes as ``Client(http_trace=...)``.

discord.py decodes gateway frames with orjson when it is installed (it is: we use it), and
orjson refuses a lone surrogate escaped in JSON (half of an emoji's pair), which the standard
library accepts. One such message then failed its whole frame and restarted the session, which
replays it. While the connector runs, frames orjson refuses are decoded by :mod:`json` instead
(the translation cleans the text); discord.py has no setting for this, so like the endpoints it
is a module attribute set for the connector's lifetime.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import aiohttp
import discord.utils
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

__all__ = ["Endpoints", "ReconnectPolicy"]

logger = logging.getLogger(__name__)


class Endpoints:
    """Applies ``DISCORD_API_BASE_URL`` / ``DISCORD_GATEWAY_URL`` while the connector runs."""

    def __init__(self, api_base_url: str | None, gateway_url: str | None) -> None:
        self.api_base_url = api_base_url.rstrip("/") if api_base_url else None
        self.gateway_url = yarl.URL(gateway_url) if gateway_url else None
        self._saved: tuple[str, yarl.URL] | None = None
        self._decoder: Callable[[Any], Any] = discord.utils._from_json

    def apply(self) -> None:
        """Point discord.py at the configured endpoints (no-op for unset ones)."""
        if self._saved is None:
            self._saved = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
            self._decoder = discord.utils._from_json
            discord.utils._from_json = _tolerant(self._decoder)
        if self.api_base_url:
            Route.BASE = self.api_base_url
        if self.gateway_url is not None:
            DiscordWebSocket.DEFAULT_GATEWAY = self.gateway_url

    def restore(self) -> None:
        """Put back the values found by :meth:`apply`."""
        if self._saved is not None:
            Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = self._saved
            discord.utils._from_json = self._decoder
            self._saved = None


def _tolerant(decode: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``decode``, or :func:`json.loads` for a frame it refuses (lone surrogates)."""

    def loads(data: Any) -> Any:
        try:
            return decode(data)
        except ValueError:
            return json.loads(data)

    return loads


class ReconnectPolicy:
    """Capped exponential backoff with jitter for gateway connects.

    The first attempt after a stable session (one that stayed up ``stable_after`` seconds) goes
    at once: that is what Discord expects after a RECONNECT or a routine close. Every further
    attempt without a stable session in between waits ``base * 2**n`` (n = 0, 1, ...) scaled by
    a random factor in [0.5, 1], never more than ``cap``.
    """

    def __init__(
        self,
        *,
        base: float = 1.0,
        cap: float = 30.0,
        stable_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base, self.cap, self.stable_after = base, cap, stable_after
        self.attempts = 0
        self.failures = 0
        self.delays: list[float] = []
        self._clock = clock
        self._up_since: float | None = None
        self._rng = random.Random()
        self.on_attempt: Callable[[int], None] = lambda attempt: None

    def reset(self) -> None:
        """Forget past attempts (a fresh start connects at once)."""
        self.attempts = self.failures = 0
        self._up_since = None

    def session_up(self) -> None:
        """Record that the gateway said READY or RESUMED."""
        self._up_since = self._clock()

    def next_delay(self) -> float:
        """Seconds to wait before the next connection attempt (0 for the very first)."""
        self.attempts += 1
        if self.attempts == 1:
            return 0.0
        up = self._up_since
        if up is not None and self._clock() - up >= self.stable_after:
            self.failures = 0
        self._up_since = None
        self.failures += 1
        if self.failures == 1:
            delay = 0.0
        else:
            delay = min(self.cap, self.base * 2 ** (self.failures - 2))
            delay *= 0.5 + self._rng.random() / 2
        self.delays.append(delay)
        del self.delays[:-64]
        return delay

    def trace_config(self) -> aiohttp.TraceConfig:
        """Build a trace config that waits :meth:`next_delay` before each WebSocket handshake."""
        trace = aiohttp.TraceConfig()

        async def on_request_start(
            session: aiohttp.ClientSession, ctx: SimpleNamespace, params: Any
        ) -> None:
            if params.headers.get("Upgrade", "").lower() != "websocket":
                return
            delay = self.next_delay()
            self.on_attempt(self.attempts)
            if delay > 0:
                logger.info("Discord gateway: reconnecting in %.1f s", delay)
                await asyncio.sleep(delay)

        trace.on_request_start.append(on_request_start)
        return trace
