"""Attacks on the shared HTTP app: slowloris, slow bodies, huge bodies, connection floods.

Each test talks raw TCP to the real aiohttp app on a loopback port, as an attacker's script
would, and asserts what the server did (closed the connection, answered 408/413, kept /healthz
answering). The flood test runs the server in a subprocess with a low open-file limit, which
is what made ``/healthz`` die before: accept() failing with EMFILE while slow clients held
every descriptor.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

from aiohttp import web

from opencomputer.bot.http import HttpLimits, HttpServer

ROOT = Path(__file__).resolve().parents[2]


async def _ready() -> dict[str, str]:
    return {}


@asynccontextmanager
async def serve(
    limits: HttpLimits, routes: list[web.RouteDef] | None = None
) -> AsyncIterator[HttpServer]:
    server = HttpServer(
        "127.0.0.1", 0, readiness=_ready, metrics=lambda: b"", routes=routes or [], limits=limits
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def _closed(reader: asyncio.StreamReader, deadline: float) -> bytes:
    """Read until the server closes (EOF or reset); fail if it has not by ``deadline``."""
    got = b""
    while True:
        try:
            chunk = await asyncio.wait_for(reader.read(65536), deadline - time.monotonic())
        except (ConnectionResetError, BrokenPipeError):
            return got
        if not chunk:
            return got
        got += chunk


async def _get(port: int, path: str = "/healthz", timeout: float = 3.0) -> tuple[int, float]:
    """One GET on a fresh connection; (status, seconds)."""
    start = time.monotonic()
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        head = await asyncio.wait_for(
            reader.readuntil(b"\r\n"), timeout - (time.monotonic() - start)
        )
    finally:
        writer.close()
        with suppress(ConnectionError):
            await writer.wait_closed()
    return int(head.split()[1]), time.monotonic() - start


async def test_slowloris_connection_is_closed_within_the_header_timeout() -> None:
    async with serve(HttpLimits(header_timeout=0.5)) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        start = time.monotonic()
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ")

        async def trickle() -> None:
            for i in range(100):  # header lines byte by byte, never finished
                writer.write(b"\r\nX-More: " if i % 10 == 9 else b"a")
                with suppress(ConnectionError):
                    await writer.drain()
                await asyncio.sleep(0.05)

        task = asyncio.create_task(trickle())
        try:
            answer = await _closed(reader, time.monotonic() + 5)
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
            writer.close()
        elapsed = time.monotonic() - start
        assert answer == b""  # never answered: dropped
        assert 0.4 <= elapsed < 3.0, elapsed
        assert server.connections == 0


async def test_slowloris_on_a_kept_alive_connection_is_closed_too() -> None:
    """After one honest request, the second one is trickled: the keep-alive timer, which
    incoming bytes do not reset, closes it.
    """
    async with serve(HttpLimits(header_timeout=30, keepalive_timeout=0.5)) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        assert (await asyncio.wait_for(reader.readuntil(b"\r\n"), 5)).startswith(b"HTTP/1.1 200")
        await asyncio.wait_for(reader.readuntil(b'{"status": "ok"}'), 5)
        start = time.monotonic()
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ")

        async def trickle() -> None:
            for _ in range(100):
                writer.write(b"a")
                with suppress(ConnectionError):
                    await writer.drain()
                await asyncio.sleep(0.05)

        task = asyncio.create_task(trickle())
        try:
            answer = await _closed(reader, time.monotonic() + 5)
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
            writer.close()
        assert answer == b""
        assert time.monotonic() - start < 3.0


async def test_slow_body_gets_408_within_the_body_timeout() -> None:
    async def hook(request: web.Request) -> web.Response:
        return web.Response(text=str(len(await request.read())))

    limits = HttpLimits(header_timeout=5, body_timeout=0.5)
    async with serve(limits, [web.post("/hook", hook)]) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        start = time.monotonic()
        writer.write(b"POST /hook HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789")
        status = await asyncio.wait_for(reader.readuntil(b"\r\n"), 5)
        answered = time.monotonic() - start
        await _closed(reader, time.monotonic() + 5)  # and the connection is closed
        writer.close()
        assert status.startswith(b"HTTP/1.1 408"), status
        assert 0.4 <= answered < 3.0, answered


async def test_oversized_bodies_get_413_on_every_route() -> None:
    seen: list[int] = []

    async def hook(request: web.Request) -> web.Response:
        seen.append(len(await request.read()))
        return web.Response(text="ok")

    limits = HttpLimits(max_body=4096, body_limits={"/strict": 100})
    routes = [web.post("/hook", hook), web.post("/strict", hook)]
    async with serve(limits, routes) as server:

        async def post(path: str, body: bytes, *, chunked: bool = False) -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            head = f"POST {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
            if chunked:
                head += "Transfer-Encoding: chunked\r\n\r\n"
                payload = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
            else:
                head += f"Content-Length: {len(body)}\r\n\r\n"
                payload = body
            writer.write(head.encode() + payload)
            with suppress(ConnectionError):
                await writer.drain()
            try:
                answer = await _closed(reader, time.monotonic() + 5)
            finally:
                writer.close()
                with suppress(ConnectionError):
                    await writer.wait_closed()
            return answer.split(b"\r\n", 1)[0]

        assert await post("/hook", b"x" * 4096) == b"HTTP/1.1 200 OK"
        assert await post("/hook", b"x" * 4097) == b"HTTP/1.1 413 Request Entity Too Large"
        assert await post("/hook", b"x" * 5000, chunked=True) == (
            b"HTTP/1.1 413 Request Entity Too Large"
        )
        assert await post("/strict", b"x" * 100) == b"HTTP/1.1 200 OK"
        assert await post("/strict", b"x" * 101) == b"HTTP/1.1 413 Request Entity Too Large"
        # The built-in GET routes take no body: a large one is refused before any handler.
        assert await post("/healthz", b"x" * 2048) == b"HTTP/1.1 413 Request Entity Too Large"
        assert seen == [4096, 100]  # the refused bodies never reached a handler


_SERVE = """
import asyncio, resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (__NOFILE__, __NOFILE__))
from opencomputer.bot.http import HttpLimits, HttpServer

async def main():
    async def ready():
        return {}
    server = HttpServer("127.0.0.1", 0, readiness=ready, metrics=lambda: b"",
                        limits=HttpLimits(header_timeout=__HEADER_TIMEOUT__))
    await server.start()
    print(server.port, server.limits.connection_cap(), flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_healthz_answers_while_500_slow_connections_exhaust_file_descriptors() -> None:
    """500 slowloris connections against a server allowed 256 open files: before, accept()
    hit EMFILE and /healthz hung for as long as the attacker liked; now the oldest slow
    connection is evicted for each new one and /healthz answers at once.
    """
    # The default 10 s header timeout: eviction, not the timeout, must keep /healthz alive.
    code = _SERVE.replace("__NOFILE__", "256").replace("__HEADER_TIMEOUT__", "10.0")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    attackers: list[asyncio.StreamWriter] = []
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        port, cap = (int(x) for x in line.split())
        assert cap == 128  # half of the 256 descriptors
        for _ in range(500):
            connect = asyncio.open_connection("127.0.0.1", port)
            _reader, writer = await asyncio.wait_for(connect, 5)  # a full backlog stalls here
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ")  # never finished
            attackers.append(writer)
        for _ in range(5):
            status, took = await _get(port, timeout=3.0)
            assert status == 200
            assert took < 3.0
    finally:
        for writer in attackers:
            writer.close()
        proc.kill()
        await proc.wait()
