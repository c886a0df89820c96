"""The egress proxy: the only way out of a plugin sandbox, enforcing the plugin's network grants.

It runs in the server, outside the sandbox, on a Unix socket that the sandbox gets bound in (the
sandbox has no network of its own; :mod:`bot.plugins.bridge` turns that socket back into a
``127.0.0.1`` proxy address for the plugin's HTTP clients). It speaks the two forms HTTP clients
use with a proxy: ``CONNECT host:port`` (HTTPS and any other TCP) and absolute-form plain HTTP
(``GET http://host/path``, one request per connection: it answers ``Connection: close``).

For every request it checks the host against the grants, **resolves the name itself** (the
client's resolution is never trusted), checks every address (:mod:`bot.plugins.netgrants`: loopback,
private, link-local, metadata... need a grant naming them) and connects to exactly the address it
checked, so a second DNS answer (rebinding) never matters. Refusals are ``403`` with a one-line
reason in the body and in a ``Proxy-Status`` header (RFC 9209), malformed requests ``400``.
Hostile clients are bounded: header size, a deadline for the whole header, an idle timeout on
tunnels, a cap on concurrent connections.

The socket is ``0600``, in a folder of the caller's that should be ``0700``. That is enough for
the sandbox: bubblewrap maps the sandbox's uid 65534 to the server's own uid outside its user
namespace, and the kernel checks the socket's permissions against that outside uid, so the
sandbox connects as the socket's owner while no other local user can.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import re
import socket
import stat
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from opencomputer.bot.plugins.netgrants import (
    Address,
    Grant,
    address_refusal,
    literal_address,
    name_refusal,
    normalize_host,
    parse_grants,
    plain_address,
)

__all__ = ["PROXY_NAME", "EgressProxy", "Resolver", "refusal_from_headers"]

logger = logging.getLogger(__name__)

PROXY_NAME = "opencomputer-egress"
Resolver = Callable[[str, int], Awaitable[Iterable[str]]]
"""``(host, port) -> addresses``: how the proxy resolves names (injectable for tests)."""

_HOST = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "upgrade",
}
_DETAILS = re.compile(r'details="((?:[^"\\]|\\.)*)"')
_CHUNK = 65536


class _Reply(Exception):
    """Answer the client with ``status`` and a one-line ``reason`` (then close)."""

    def __init__(self, status: int, reason: str, error: str) -> None:
        super().__init__(reason)
        self.status, self.reason, self.error = status, reason, error


_PHRASES = {
    400: "Bad Request",
    403: "Forbidden",
    408: "Request Timeout",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def refusal_from_headers(headers: object) -> str | None:
    """The reason this proxy gave for a refusal, from a response's headers (None if not ours)."""
    get = getattr(headers, "get", None)
    value = get("Proxy-Status") if get is not None else None
    if not isinstance(value, str) or not value.startswith(PROXY_NAME):
        return None
    found = _DETAILS.search(value)
    return re.sub(r"\\(.)", r"\1", found.group(1)) if found else None


async def _system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


class EgressProxy:
    """An HTTP proxy on a Unix socket that lets a plugin reach exactly its granted hosts."""

    def __init__(
        self,
        grants: list[str],
        socket_path: Path,
        *,
        resolver: Resolver | None = None,
        header_timeout: float = 10.0,
        idle_timeout: float = 120.0,
        connect_timeout: float = 10.0,
        max_header_bytes: int = 16384,
        max_connections: int = 32,
    ) -> None:
        self.grants: list[Grant]
        self.grants, invalid = parse_grants(grants)
        self.invalid = invalid
        self.socket_path = Path(socket_path)
        self.resolver = resolver or _system_resolver
        self.header_timeout = header_timeout
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self.max_header_bytes = max_header_bytes
        self.max_connections = max_connections
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> EgressProxy:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen on the socket (mode 0600; a stale socket file left there is replaced)."""
        if self._server is not None:
            return
        for text in self.invalid:
            logger.warning("egress proxy: ignoring malformed network grant %r", text[:100])
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(self.socket_path.lstat().st_mode):
                self.socket_path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            os.fchmod(sock.fileno(), 0o600)  # Linux creates the socket file with this mode
            sock.bind(str(self.socket_path))
            os.chmod(self.socket_path, 0o600)
            sock.listen(128)
            self._server = await asyncio.start_unix_server(
                self._accept, sock=sock, limit=self.max_header_bytes
            )
        except BaseException:
            sock.close()
            raise

    async def stop(self) -> None:
        """Stop listening, cut every open connection and remove the socket."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        busy = len(self._tasks) >= self.max_connections
        self._tasks.add(task)
        try:
            try:
                if busy:
                    raise _Reply(503, "too many connections through the egress proxy", "proxy_busy")
                await self._serve(reader, writer)
            except _Reply as reply:
                await _answer(reader, writer, reply)
        except (ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client went away, or the proxy is stopping
        finally:
            self._tasks.discard(task)
            await _close(writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(self.header_timeout):
                head = await reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            raise _Reply(408, "request headers took too long", "http_request_error") from None
        except asyncio.LimitOverrunError:
            raise _Reply(400, "request headers too large", "http_request_error") from None
        method, target, version, headers = _parse_head(head)
        if method == "CONNECT":
            host, port = _authority(target, default_port=None)
            upstream = await self._open(host, port, f"CONNECT {_hostport(host, port)}")
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await _relay(reader, writer, *upstream, self.idle_timeout, rewrite=False)
            return
        if not target.lower().startswith("http://"):
            raise _Reply(
                400, "use CONNECT for https, or an absolute http:// URL", "http_request_error"
            )
        rest = target[len("http://") :]
        cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
        authority, path = rest[:cut], rest[cut:].split("#", 1)[0]
        host, port = _authority(authority, default_port=80)
        path = path if path.startswith("/") else "/" + path
        upstream = await self._open(host, port, f"{method} http://{_hostport(host, port)}")
        upstream[1].write(_forward_head(f"{method} {path} {version}", authority, headers))
        await _relay(reader, writer, *upstream, self.idle_timeout, rewrite=True)

    async def _open(
        self, host: str, port: int, what: str
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        refusal, error = name_refusal(self.grants, host, port), "http_request_denied"
        if refusal is None:
            addresses, refusal = await self._addresses(host, port)
            error = "destination_ip_prohibited"
        if refusal is not None:
            logger.info("egress proxy refused %s: %s", what, refusal)
            raise _Reply(403, refusal, error)
        failure = "no address"
        for address in addresses[:4]:  # only addresses checked above: never resolve again
            family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                async with asyncio.timeout(self.connect_timeout):
                    await asyncio.get_running_loop().sock_connect(sock, (str(address), port))
                return await asyncio.open_connection(sock=sock, limit=_CHUNK)
            except (OSError, TimeoutError) as exc:
                sock.close()
                failure = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or "error"
            except BaseException:
                sock.close()
                raise
        raise _Reply(502, f"cannot connect to {host}:{port}: {failure}", "connection_refused")

    async def _addresses(self, host: str, port: int) -> tuple[list[Address], str | None]:
        """Resolve once; keep the addresses the grants allow (or say why none is)."""
        literal = literal_address(host)
        if literal is not None:
            found: list[Address] = [literal]
        else:
            try:
                async with asyncio.timeout(self.connect_timeout):
                    answer = list(await self.resolver(host.rstrip("."), port))
            except (OSError, TimeoutError):
                raise _Reply(502, f"cannot resolve {host}", "dns_error") from None
            found = []
            for text in answer:
                with contextlib.suppress(ValueError):
                    found.append(plain_address(ipaddress.ip_address(str(text).split("%", 1)[0])))
        allowed: list[Address] = []
        refusal = None
        for address in dict.fromkeys(found):
            why = address_refusal(self.grants, host, port, address)
            if why is None:
                allowed.append(address)
            else:
                refusal = refusal or why
        if not found:
            raise _Reply(502, f"cannot resolve {host}", "dns_error")
        return allowed, None if allowed else refusal


def _parse_head(head: bytes) -> tuple[str, str, str, list[tuple[str, str]]]:
    """Request line and headers, strictly (anything odd is a 400, not a guess)."""
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        raise _Reply(400, "request headers must be ASCII", "http_request_error") from None
    lines = text[:-4].split("\r\n")
    parts = lines[0].split(" ")
    if (
        len(parts) != 3
        or not _TOKEN.fullmatch(parts[0])
        or parts[2] not in ("HTTP/1.1", "HTTP/1.0")
    ):
        raise _Reply(400, "malformed request line", "http_request_error")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.fullmatch(name) or any(c in value for c in "\r\n\0"):
            raise _Reply(400, "malformed header line", "http_request_error")
        headers.append((name, value.strip(" \t")))
    if any(not 32 <= ord(c) < 127 for c in parts[1]):
        raise _Reply(400, "malformed request target", "http_request_error")
    return parts[0].upper(), parts[1], parts[2], headers


def _authority(text: str, *, default_port: int | None) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (normalised host, port); names must be plain DNS names."""
    if "@" in text:
        raise _Reply(400, "user names in proxy targets are not supported", "http_request_error")
    if text.startswith("["):
        inside, sep, rest = text[1:].partition("]")
        try:
            good = bool(sep) and ipaddress.ip_address(inside).version == 6 and "%" not in inside
        except ValueError:
            good = False
        if not good or (rest and not rest.startswith(":")):
            raise _Reply(400, "malformed IPv6 address", "http_request_error")
        host, port_text = inside, rest[1:]
    else:
        host, _, port_text = text.partition(":")
        host = host.lower()
        if not _HOST.fullmatch(host) or len(host) > 253:
            raise _Reply(400, "malformed host name", "http_request_error")
    if not port_text and default_port is not None:
        port_text = str(default_port)
    if not (port_text.isascii() and port_text.isdigit() and 0 < int(port_text) < 65536):
        raise _Reply(400, "the target needs a port between 1 and 65535", "http_request_error")
    return normalize_host(host), int(port_text)


def _forward_head(request_line: str, authority: str, headers: list[tuple[str, str]]) -> bytes:
    """The request as the origin server should get it: origin-form, no hop-by-hop headers."""
    drop = set(_HOP_BY_HOP) | {"host"}
    for name, value in headers:
        if name.lower() in ("connection", "proxy-connection"):
            drop.update(t.strip().lower() for t in value.split(","))
    lines = [request_line, f"Host: {authority}"]  # the client's HTTP version: it reads the answer
    lines += [f"{n}: {v}" for n, v in headers if n.lower() not in drop]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def _rewrite_response_head(head: bytes) -> bytes:
    """Force ``Connection: close`` on the answer: this connection carries one request."""
    lines = head[:-4].split(b"\r\n")
    drop = {b"connection", b"keep-alive", b"proxy-connection"}
    kept = [ln for ln in lines[1:] if ln.split(b":", 1)[0].strip().lower() not in drop]
    return b"\r\n".join([lines[0], *kept, b"Connection: close"]) + b"\r\n\r\n"


async def _answer(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, reply: _Reply
) -> None:
    """Send the reply, then discard input for a moment.

    Closing with unread input would reset the connection, and the client could lose the reply.
    """
    body = (reply.reason + "\n").encode("ascii", "replace")
    details = reply.reason.replace("\\", "\\\\").replace('"', '\\"')
    head = (
        f"HTTP/1.1 {reply.status} {_PHRASES.get(reply.status, 'Error')}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        f'Proxy-Status: {PROXY_NAME}; error={reply.error}; details="{details}"\r\n'
        "Connection: close\r\n\r\n"
    )
    with contextlib.suppress(ConnectionError, OSError, TimeoutError):
        writer.write(head.encode("ascii", "replace") + body)
        async with asyncio.timeout(1):
            await writer.drain()
            writer.write_eof()
            discarded = 0
            while discarded < 1 << 20 and (data := await reader.read(_CHUNK)):
                discarded += len(data)


async def _relay(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    upstream_reader: asyncio.StreamReader,
    upstream_writer: asyncio.StreamWriter,
    idle_timeout: float,
    *,
    rewrite: bool,
) -> None:
    """Copy bytes both ways until both sides are done, or nothing moved for ``idle_timeout``."""
    loop = asyncio.get_running_loop()
    last = [loop.time()]

    async def pump(
        src: asyncio.StreamReader, dst: asyncio.StreamWriter, first_head: bool = False
    ) -> None:
        if first_head:
            head = await src.readuntil(b"\r\n\r\n")
            last[0] = loop.time()
            dst.write(_rewrite_response_head(head))
            await dst.drain()
        while data := await src.read(_CHUNK):
            last[0] = loop.time()
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            with contextlib.suppress(OSError):
                dst.write_eof()

    pending = {
        asyncio.ensure_future(pump(client_reader, upstream_writer)),
        asyncio.ensure_future(pump(upstream_reader, client_writer, first_head=rewrite)),
    }
    try:
        while pending:
            wait = last[0] + idle_timeout - loop.time()
            if wait <= 0:
                break  # idle: nothing moved either way
            done, pending = await asyncio.wait(pending, timeout=wait)
            if any(not t.cancelled() and t.exception() is not None for t in done):
                break  # a reset or a malformed answer on one side ends both
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await _close(upstream_writer)


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close gracefully (what was written is sent), or abort if that takes more than a second."""
    writer.close()
    with contextlib.suppress(ConnectionError, OSError, TimeoutError):
        async with asyncio.timeout(1):
            await writer.wait_closed()
    writer.transport.abort()


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
