"""Several model servers behind one client: least-busy choice, health checks, failover.

Servers are Ollama hosts or OpenAI-compatible ones (``openai:`` entries, see
:mod:`bot.openai_compat`), mixed freely: both kinds have the same client surface. A server that
cannot be reached is taken out of rotation until a health probe sees it again.
When every server is down, a chat call waits for one to come back for up to ``retry_seconds``
(a restarting Ollama is common and a late answer beats an apology), then gives up with the
last error, which the runtime turns into an apology that keeps the message for ``/retry``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from pydantic import SecretStr

from opencomputer.bot.config import OPENAI_PREFIX
from opencomputer.bot.ollama import (
    ChatResult,
    ModelCheck,
    OllamaClient,
    OllamaError,
    OllamaUnavailable,
    OnToken,
)
from opencomputer.bot.openai_compat import OpenAIClient

__all__ = ["OllamaPool", "ServerClient", "server_client"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ServerClient(Protocol):
    """One model server, whatever it speaks (:class:`OllamaClient`, :class:`OpenAIClient`)."""

    host: str

    async def start(self) -> None:
        """Open the connection pool."""
        ...

    async def stop(self) -> None:
        """Close the connection pool."""
        ...

    async def chat(
        self,
        model: str,
        messages: Sequence[dict[str, Any]],
        *,
        tools: Sequence[dict[str, Any]] | None = None,
        options: dict[str, Any] | None = None,
        keep_alive: str | None = None,
        on_token: OnToken | None = None,
    ) -> ChatResult:
        """One streamed chat completion."""
        ...

    async def embed(self, model: str, inputs: Sequence[str]) -> list[list[float]]:
        """Embeddings of ``inputs``."""
        ...

    async def show(self, model: str) -> dict[str, Any]:
        """Model details."""
        ...

    async def tags(self) -> list[str]:
        """Models the server has."""
        ...

    async def version(self) -> str:
        """A cheap call that answers when the server is up (the health probe)."""
        ...

    async def check_model(self, model: str, *, needs_tools: bool = True) -> ModelCheck:
        """Whether ``model`` can serve."""
        ...


def server_client(
    entry: str,
    *,
    timeout: float = 300.0,
    api_key: SecretStr | None = None,
    stall_timeout: float | None = None,
) -> ServerClient:
    """The client for one model-host entry: ``openai:URL`` or an Ollama host."""
    if entry.startswith(OPENAI_PREFIX):
        url = entry.removeprefix(OPENAI_PREFIX)
        return OpenAIClient(url, api_key=api_key, timeout=timeout, stall_timeout=stall_timeout)
    return OllamaClient(entry, timeout=timeout, stall_timeout=stall_timeout)


class OllamaPool:
    """Drop-in for :class:`~bot.ollama.OllamaClient` over one or more servers of either kind.

    ``api_key`` is sent to the ``openai:`` servers only. ``stall_timeout`` ends a call that
    received no byte for that long (:class:`~bot.ollama.ModelStalled`): it fails over like an
    unreachable server while nothing was streamed, and fails the turn once something was.
    """

    def __init__(
        self,
        hosts: Sequence[str],
        *,
        timeout: float = 300.0,
        retry_seconds: float = 0.0,
        probe_interval: float = 5.0,
        api_key: SecretStr | None = None,
        stall_timeout: float | None = None,
    ) -> None:
        if not hosts:
            raise ValueError("at least one model host is needed")
        self.clients = [
            server_client(h, timeout=timeout, api_key=api_key, stall_timeout=stall_timeout)
            for h in hosts
        ]
        self.host = ",".join(c.host for c in self.clients)
        self.retry_seconds = retry_seconds
        self.probe_interval = probe_interval
        self.healthy: dict[str, bool] = {c.host: True for c in self.clients}
        self._busy: dict[str, int] = {c.host: 0 for c in self.clients}
        self._probe: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open every client; probe unhealthy servers in the background."""
        for client in self.clients:
            await client.start()
        self._probe = asyncio.create_task(self._probe_loop(), name="ollama-probe")

    async def stop(self) -> None:
        """Stop probing and close every client."""
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        for client in self.clients:
            await client.stop()

    async def __aenter__(self) -> OllamaPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- choice and health -------------------------------------------------------------
    def _pick(self, tried: set[str]) -> ServerClient | None:
        candidates = [c for c in self.clients if self.healthy[c.host] and c.host not in tried]
        return min(candidates, key=lambda c: self._busy[c.host]) if candidates else None

    def _down(self, client: ServerClient, exc: Exception) -> None:
        if self.healthy[client.host]:
            logger.warning("model server %s is out of rotation: %s", client.host, exc)
        self.healthy[client.host] = False

    async def probe(self) -> None:
        """Check every server that is out of rotation; put back the ones that answer."""
        for client in self.clients:
            if self.healthy[client.host]:
                continue
            try:
                await asyncio.wait_for(client.version(), timeout=2)
            except (OllamaError, TimeoutError):
                continue
            logger.info("model server %s is back", client.host)
            self.healthy[client.host] = True

    async def _probe_loop(self) -> None:
        while True:
            await asyncio.sleep(self.probe_interval)
            await self.probe()

    async def _run(
        self,
        call: Callable[[ServerClient], Awaitable[T]],
        *,
        wait: float,
        replayable: Callable[[], bool],
    ) -> T:
        deadline = time.monotonic() + wait
        tried: set[str] = set()
        delay = 0.25
        last: OllamaError | None = None
        while True:
            client = self._pick(tried)
            if client is None and not tried:
                await self.probe()  # a server may be back before the next scheduled probe
                client = self._pick(tried)
            if client is None:
                if time.monotonic() >= deadline:
                    raise last or OllamaUnavailable(
                        f"no model server is reachable ({self.host})",
                        hint="Start Ollama (`ollama serve`) or your OpenAI-compatible server, "
                        "or check OLLAMA_HOST/OC_OLLAMA_HOSTS.",
                    )
                await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 2, 2.0)
                await self.probe()
                tried.clear()
                continue
            self._busy[client.host] += 1
            try:
                return await call(client)
            except OllamaUnavailable as exc:
                self._down(client, exc)
                last = exc
                tried.add(client.host)
                if not replayable():
                    raise
            except OllamaError as exc:
                if (
                    exc.status is None
                    or exc.status < 500
                    or len(self.clients) == 1
                    or not replayable()
                ):
                    raise
                last = exc  # a server error: try another server
                tried.add(client.host)
            finally:
                self._busy[client.host] -= 1

    # --- the client's API --------------------------------------------------------------
    async def chat(
        self, model: str, messages: Sequence[dict[str, Any]], **kwargs: Any
    ) -> ChatResult:
        """Chat on the least busy healthy server; fail over while nothing was streamed yet."""
        on_token = kwargs.pop("on_token", None)
        streamed = False

        async def relay(token: str) -> None:
            nonlocal streamed
            streamed = True
            if on_token is not None:
                await on_token(token)

        return await self._run(
            lambda c: c.chat(model, messages, on_token=relay, **kwargs),
            wait=self.retry_seconds,
            replayable=lambda: not streamed,
        )

    async def embed(self, model: str, inputs: Sequence[str]) -> list[list[float]]:
        """Embeddings from any healthy server."""
        return await self._run(lambda c: c.embed(model, inputs), wait=0, replayable=lambda: True)

    async def show(self, model: str) -> dict[str, Any]:
        """Model details from any healthy server."""
        return await self._run(lambda c: c.show(model), wait=0, replayable=lambda: True)

    async def tags(self) -> list[str]:
        """Models available on any healthy server."""
        return await self._run(lambda c: c.tags(), wait=0, replayable=lambda: True)

    async def version(self) -> str:
        """Version of any healthy server."""
        return await self._run(lambda c: c.version(), wait=0, replayable=lambda: True)

    async def check_model(self, model: str, *, needs_tools: bool = True) -> ModelCheck:
        """The model must be ready on every server (a failover must not change the answer).

        The context length is the smallest any server reports, so a turn fits wherever it runs.
        """
        checks = [await c.check_model(model, needs_tools=needs_tools) for c in self.clients]
        if len(self.clients) == 1:
            return checks[0]
        bad = [
            f"{c.host}: {chk.message}"
            for c, chk in zip(self.clients, checks, strict=True)
            if not chk.ok
        ]
        known = [chk.context_length for chk in checks if chk.context_length]
        context_length = min(known) if known else None
        if not bad:
            return ModelCheck(True, checks[0].message, context_length)
        return ModelCheck(False, "; ".join(bad), context_length)
