"""A fake Discord that a real ``discord.Client`` talks to over loopback.

It serves the REST API under ``/api/v10`` and the gateway WebSocket at ``/gateway`` on
127.0.0.1 port 0, speaking the real wire protocol: HELLO, IDENTIFY -> READY (+ GUILD_CREATE),
heartbeats -> ACK, RESUME -> replay of missed dispatches + RESUMED, INVALID_SESSION. Tests
push gateway events with :meth:`FakeDiscord.dispatch`, force disconnects with
:meth:`FakeDiscord.disconnect`, queue REST failures with :meth:`FakeDiscord.fail_next` and
read what the bot did from :attr:`FakeDiscord.requests` and :attr:`FakeDiscord.messages`.
Any route the fake does not know is recorded in :attr:`FakeDiscord.unexpected` (the
transport-level guard: tests assert it stays empty).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.discord import discord_payloads as p
from tests.discord.fake_discord_rest import FakeRest, Recorded, _Failure

__all__ = ["FakeDiscord", "Recorded"]


@dataclass
class _Session:
    id: str
    seq: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Conn:
    ws: web.WebSocketResponse
    request: web.Request
    live: bool = False


class FakeDiscord(FakeRest):
    """REST + gateway fake. Use as ``async with FakeDiscord() as fake:``."""

    def __init__(
        self,
        *,
        token: str = "fake-token",
        heartbeat_interval: float = 30.0,
        guilds: dict[str, list[str]] | None = None,
        threads: dict[str, str] | None = None,
    ) -> None:
        self.token = token
        self.heartbeat_interval = heartbeat_interval
        self.guilds = guilds if guilds is not None else {p.GUILD_ID: [p.CHANNEL_ID]}
        self.threads = threads if threads is not None else {p.THREAD_ID: p.CHANNEL_ID}
        self.resume_gateway_url: str | None = None
        self.identify_close_code: int | None = None  # e.g. 4004, 4014: refuse IDENTIFY
        self.requests: list[Recorded] = []
        self.unexpected: list[Recorded] = []
        self.messages: dict[str, dict[str, Any]] = {}
        self.deleted: list[dict[str, Any]] = []
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self.interaction_responses: list[dict[str, Any]] = []
        self.identifies: list[dict[str, Any]] = []
        self.resumes: list[dict[str, Any]] = []
        self.heartbeats = 0
        self._interaction_tokens: dict[str, str] = {}
        self._interaction_channels: dict[str, str] = {}
        self.connections = 0
        self._ids = itertools.count(1_200_000_000_000_000_000)
        self._failures: list[_Failure] = []
        self.channel_limit: tuple[int, float] | None = None  # (messages, seconds) per channel
        self.rate_limited = 0
        self.accepted_at: list[float] = []
        self._windows: dict[str, deque[float]] = {}
        self._session: _Session | None = None
        self._conn: _Conn | None = None
        self._lock = asyncio.Lock()
        self.cdn: dict[str, bytes] = {}  # CDN path -> bytes of an uploaded attachment
        self.cdn_signatures: dict[str, str] = {}  # CDN path -> its current ``hm`` (expiry)
        self.cdn_requests: list[Recorded] = []
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- lifecycle ---------------------------------------------------------------------
    async def __aenter__(self) -> FakeDiscord:
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        app.router.add_get("/attachments/{tail:.+}", self._cdn)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._conn is not None and not self._conn.ws.closed:
            self._conn.request.transport and self._conn.request.transport.abort()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        """Value for ``DISCORD_API_BASE_URL``."""
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        """Value for ``DISCORD_GATEWAY_URL``."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    def new_id(self) -> str:
        """A fresh snowflake."""
        return str(next(self._ids))

    def attachment(
        self,
        channel_id: str,
        filename: str,
        data: bytes,
        *,
        content_type: str | None = None,
        claimed_size: int | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """An attachment object as a message carries it; the CDN (this fake) serves ``data``
        at its signed ``url`` (``claimed_size``: what the object says, default the real size).
        """
        att_id = self.new_id()
        path = f"attachments/{channel_id}/{att_id}/{filename}"
        self.cdn[path] = data
        self.cdn_signatures[path] = "ab12cd"
        url = f"http://127.0.0.1:{self.port}/{path}?ex=6a000000&is=69f00000&hm=ab12cd"
        att: dict[str, Any] = {
            "id": att_id,
            "filename": filename,
            "size": len(data) if claimed_size is None else claimed_size,
            "url": url,
            "proxy_url": url.replace("/attachments/", "/proxy/attachments/"),
            **extra,
        }
        if content_type is not None:
            att["content_type"] = content_type
        return att

    def expire(self, attachment: dict[str, Any]) -> dict[str, Any]:
        """Expire an attachment's signed link (the CDN answers 404 to it, as Discord's does
        after about a day); the attachment object with the new link a refetch returns.
        """
        path = "attachments/" + attachment["url"].split("/attachments/", 1)[1].split("?")[0]
        signature = f"{self.new_id()[-6:]}ff"
        self.cdn_signatures[path] = signature
        url = f"http://127.0.0.1:{self.port}/{path}?ex=6b000000&is=6af00000&hm={signature}"
        return {**attachment, "url": url, "proxy_url": url}

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        """The CDN: signed URLs, no Authorization; bytes sent chunked (no length to trust)."""
        path = "attachments/" + request.match_info["tail"]
        self.cdn_requests.append(
            Recorded("GET", "/" + path, dict(request.query), None, dict(request.headers))
        )
        data = self.cdn.get(path)
        if data is None or request.query.get("hm") != self.cdn_signatures.get(path):
            return web.Response(status=404, text="This content is no longer available.")
        resp = web.StreamResponse()
        await resp.prepare(request)
        for start in range(0, len(data), 65536):
            await resp.write(data[start : start + 65536])
        await resp.write_eof()
        return resp

    # --- waiting -----------------------------------------------------------------------
    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_until(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        """Wait until ``predicate()`` holds (re-checked whenever the fake's state changes)."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(predicate)

    def bot_messages(self, channel_id: str | None = None) -> list[dict[str, Any]]:
        """Messages the bot posted (in creation order), optionally in one channel."""
        return [
            m for m in self.messages.values() if channel_id is None or m["channel_id"] == channel_id
        ]

    def calls(self, method: str, pattern: str) -> list[Recorded]:
        """Recorded requests whose method matches and path matches the regex."""
        rx = re.compile(pattern)
        return [r for r in self.requests if r.method == method and rx.fullmatch(r.path)]

    # --- gateway -----------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """Whether a client holds a live (identified or resumed) gateway session."""
        return self._conn is not None and self._conn.live

    async def dispatch(self, event: str, data: dict[str, Any]) -> int:
        """Send a DISPATCH now, or keep it for the RESUME replay when no client is live."""
        async with self._lock:
            session = self._session
            if session is None:
                raise RuntimeError("no gateway session: the client never identified")
            session.seq += 1
            frame = {"op": 0, "t": event, "s": session.seq, "d": data}
            session.log.append(frame)
            conn = self._conn
            if conn is not None and conn.live:
                await conn.ws.send_str(json.dumps(frame))
            return session.seq

    async def disconnect(self, code: int = 1006) -> None:
        """Drop the gateway connection: 1006 cuts TCP, 1005 sends an empty close frame."""
        async with self._lock:
            conn, self._conn = self._conn, None
        if conn is None:
            return
        conn.live = False
        transport = conn.request.transport
        if code == 1006:
            if transport is not None:
                transport.abort()
        elif code == 1005:
            if transport is not None:
                transport.write(b"\x88\x00")
                transport.close()
        else:
            await conn.ws.close(code=code)
        await self._notify()

    async def invalidate_session(self) -> None:
        """Forget the session (the next RESUME gets INVALID_SESSION and must re-IDENTIFY)."""
        async with self._lock:
            self._session = None

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = _Conn(ws, request)
        self.connections += 1
        await ws.send_str(
            json.dumps({"op": 10, "d": {"heartbeat_interval": int(self.heartbeat_interval * 1000)}})
        )
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            op, data = frame.get("op"), frame.get("d")
            if op == 1:
                self.heartbeats += 1
                await ws.send_str(json.dumps({"op": 11}))
            elif op == 2:
                await self._identify(conn, data)
            elif op == 6:
                await self._resume(conn, data)
            await self._notify()
        if self._conn is conn:
            self._conn = None
            await self._notify()
        return ws

    async def _identify(self, conn: _Conn, data: dict[str, Any]) -> None:
        if data.get("token") != self.token or self.identify_close_code is not None:
            await conn.ws.close(code=self.identify_close_code or 4004, message=b"refused")
            return
        self.identifies.append(data)
        async with self._lock:
            self._session = _Session(id=self.new_id())
            self._conn = conn
            conn.live = True
        ready = {
            "v": 10,
            "user": p.bot_user(),
            "guilds": [{"id": gid, "unavailable": True} for gid in self.guilds],
            "session_id": self._session.id,
            "resume_gateway_url": self.resume_gateway_url or self.gateway_url,
            "application": {"id": p.APP_ID, "flags": 0},
            "private_channels": [],
            "relationships": [],
        }
        await self.dispatch("READY", ready)
        for gid, channels in self.guilds.items():
            threads = {t: parent for t, parent in self.threads.items() if parent in channels}
            await self.dispatch("GUILD_CREATE", p.guild(gid, channels, threads))

    async def _resume(self, conn: _Conn, data: dict[str, Any]) -> None:
        self.resumes.append(data)
        async with self._lock:
            session = self._session
            ok = (
                session is not None
                and data.get("session_id") == session.id
                and data.get("token") == self.token
            )
            if not ok or session is None:
                await conn.ws.send_str(json.dumps({"op": 9, "d": False}))
                return
            seq = data.get("seq") or 0
            for frame in session.log:
                if frame["s"] > seq:
                    await conn.ws.send_str(json.dumps(frame))
            session.seq += 1
            resumed = {"op": 0, "t": "RESUMED", "s": session.seq, "d": {}}
            await conn.ws.send_str(json.dumps(resumed))
            self._conn = conn
            conn.live = True

    # --- interactions ------------------------------------------------------------------
    async def slash(
        self,
        name: str,
        *,
        channel_id: str = p.CHANNEL_ID,
        guild_id: str | None = p.GUILD_ID,
        user: dict[str, Any] | None = None,
        args: str | None = None,
        admin: bool = False,
    ) -> str:
        """Invoke a registered slash command as a user would; return the interaction id."""
        scope = guild_id if guild_id in self.commands else "global"
        registered = {c["name"]: c for c in self.commands.get(scope, [])}
        if name not in registered:
            raise KeyError(f"/{name} is not registered ({scope}): {sorted(registered)}")
        interaction_id, token = self.new_id(), f"itoken{time.monotonic_ns()}"
        self._interaction_tokens[interaction_id] = token
        self._interaction_channels[interaction_id] = channel_id
        await self.dispatch(
            "INTERACTION_CREATE",
            p.interaction(
                interaction_id=interaction_id,
                token=token,
                command=registered[name],
                channel_id=channel_id,
                guild_id=guild_id,
                user=user or p.human_user(),
                args=args,
                admin=admin,
            ),
        )
        return interaction_id
