"""Real sockets for the egress proxy's tests: an origin server that counts what it accepts, and a
raw client that speaks to the proxy's Unix socket the way a hostile plugin would.

Used in the pytest process and in :mod:`tests.security.egress_netns` (a private network
namespace where "public" addresses live on loopback).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from opencomputer.bot.plugins.egress import EgressProxy


class Origin:
    """A TCP server that records each accepted connection and answers one HTTP request on it
    with what it saw, then closes (``silent``: it accepts and waits, for idle tests)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, silent: bool = False) -> None:
        self.host, self.port, self.silent = host, port, silent
        self.accepted: list[Any] = []
        self.requests: list[str] = []
        self.closed = asyncio.Event()  # a connection ended (the peer closed it)
        self._server: asyncio.AbstractServer | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> Origin:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted.append(writer.get_extra_info("peername"))
        self._writers.append(writer)
        try:
            if self.silent:
                await reader.read()
                return
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
            self.requests.append(head)
            body = ("origin saw " + head.split("\r\n", 1)[0]).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()  # one request per connection, then close
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed.set()
            writer.close()


@contextlib.asynccontextmanager
async def running_proxy(grants: Iterable[str], **options: Any) -> AsyncIterator[EgressProxy]:
    """An :class:`EgressProxy` on a socket in a fresh private folder (short path: sun_path)."""
    folder = Path(tempfile.mkdtemp(prefix="oc-egress-test-"))
    try:
        async with EgressProxy(list(grants), folder / "proxy.sock", **options) as proxy:
            yield proxy
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def exchange(proxy: EgressProxy, data: bytes, *, then: bytes = b"") -> bytes:
    """Send ``data`` to the proxy, and ``then`` once it answered a CONNECT; read until EOF."""
    reader, writer = await asyncio.open_unix_connection(str(proxy.socket_path))
    try:
        async with asyncio.timeout(15):
            writer.write(data)
            if not then:
                return await reader.read()
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200 "):
                return head + await reader.read()
            writer.write(then)
            return head + await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def status_of(answer: bytes) -> tuple[int, dict[str, str], str]:
    """Status, headers (lower-case names) and body of the proxy's own answer."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split(" ")[1]), headers, body.decode(errors="replace")


def connect(target: str) -> bytes:
    """A CONNECT request for ``target``."""
    return f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode()


def get(url: str, host: str = "ignored.example") -> bytes:
    """An absolute-form GET (with a Host header the proxy must not trust)."""
    return f"GET {url} HTTP/1.1\r\nHost: {host}\r\nProxy-Connection: keep-alive\r\n\r\n".encode()


TUNNELLED = b"GET /through-the-tunnel HTTP/1.1\r\nHost: tunnel.example\r\n\r\n"


class ScriptedResolver:
    """A resolver answering from a script: each name's successive answers, the last repeating."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        script = self.answers.get(host)
        if not script:
            raise OSError(f"{host}: no such name")
        return script.pop(0) if len(script) > 1 else script[0]
