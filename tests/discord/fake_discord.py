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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

from tests.discord import discord_payloads as p

__all__ = ["FakeDiscord", "Recorded"]

_JSON = "application/json"  # exactly: discord.py ignores bodies with "; charset=utf-8"


@dataclass
class Recorded:
    """One REST request the bot made."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]


@dataclass
class _Failure:
    method: str
    pattern: re.Pattern[str]
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    count: int


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


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={"Content-Type": _JSON, **(headers or {})},
    )


class FakeDiscord:
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
        self._session: _Session | None = None
        self._conn: _Conn | None = None
        self._lock = asyncio.Lock()
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- lifecycle ---------------------------------------------------------------------
    async def __aenter__(self) -> FakeDiscord:
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
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

    # --- REST --------------------------------------------------------------------------
    def fail_next(
        self,
        method: str,
        pattern: str,
        *,
        status: int = 429,
        count: int = 1,
        retry_after: float = 0.05,
    ) -> None:
        """Answer the next ``count`` matching requests with ``status`` (429 as Discord does)."""
        body: dict[str, Any] = {"message": "error", "code": 0}
        headers: dict[str, str] = {}
        if status == 429:
            body = {"message": "You are being rate limited.", "retry_after": retry_after}
            body["global"] = False
            # discord.py treats a 429 without Via as a Cloudflare ban, as Discord's carry it.
            headers = {"Via": "1.1 google", "Retry-After": str(retry_after)}
            headers["X-RateLimit-Scope"] = "user"
        self._failures.append(_Failure(method, re.compile(pattern), status, body, headers, count))

    def _take_failure(self, method: str, path: str) -> _Failure | None:
        for failure in self._failures:
            if failure.method == method and failure.pattern.fullmatch(path):
                failure.count -= 1
                if failure.count <= 0:
                    self._failures.remove(failure)
                return failure
        return None

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        raw = await request.read()
        body = json.loads(raw) if raw and request.content_type == _JSON else None
        rec = Recorded(request.method, path, dict(request.query), body, dict(request.headers))
        self.requests.append(rec)
        try:
            # Interaction callbacks and webhooks are authorised by the token in the URL.
            by_url = path.startswith(("/interactions/", "/webhooks/"))
            if not by_url and request.headers.get("Authorization") != f"Bot {self.token}":
                return _json({"message": "401: Unauthorized", "code": 0}, 401)
            failure = self._take_failure(request.method, path)
            if failure is not None:
                return _json(failure.body, failure.status, failure.headers)
            return await self._route(rec)
        finally:
            await self._notify()

    async def _route(self, rec: Recorded) -> web.StreamResponse:
        m, path, body = rec.method, rec.path, rec.body
        parts = path.strip("/").split("/")
        if (m, path) == ("GET", "/users/@me"):
            return _json(p.bot_user())
        if (m, path) == ("GET", "/oauth2/applications/@me"):
            return _json(p.application())
        if m == "POST" and re.fullmatch(r"/channels/\d+/messages", path):
            return _json(self._create_message(parts[1], body or {}))
        if m == "PATCH" and re.fullmatch(r"/channels/\d+/messages/\d+", path):
            return self._edit_message(parts[3], body or {})
        if m == "PUT" and re.fullmatch(r"/channels/\d+/messages/\d+/reactions/[^/]+/@me", path):
            return web.Response(status=204)
        if m == "POST" and re.fullmatch(r"/channels/\d+/typing", path):
            return web.Response(status=204)
        if m == "GET" and re.fullmatch(r"/channels/\d+", path):
            return self._get_channel(parts[1])
        if m == "PUT" and re.fullmatch(r"/applications/\d+(/guilds/\d+)?/commands", path):
            scope = parts[3] if len(parts) == 5 else "global"
            return _json(self._put_commands(scope, body or []))
        if m == "POST" and re.fullmatch(r"/interactions/\d+/[^/]+/callback", path):
            return self._interaction_callback(parts[1], parts[2], body or {})
        if re.fullmatch(r"/webhooks/\d+/[^/]+(/messages/(@original|\d+))?", path):
            return self._webhook(rec, parts)
        self.unexpected.append(rec)
        return _json({"message": "404: Not Found", "code": 0}, 404)

    def _create_message(
        self, channel_id: str, body: dict[str, Any], *, interaction: str | None = None
    ) -> dict[str, Any]:
        msg = p.message(
            message_id=self.new_id(),
            channel_id=channel_id,
            content=body.get("content") or "",
            author=p.bot_user(),
            guild_id=self._guild_of(channel_id),
        )
        ref = body.get("message_reference")
        if ref:
            msg["message_reference"] = ref
            msg["type"] = 19
        msg["interaction_token"] = interaction
        self.messages[msg["id"]] = msg
        return msg

    def _edit_message(self, message_id: str, body: dict[str, Any]) -> web.Response:
        msg = self.messages.get(message_id)
        if msg is None:
            return _json({"message": "Unknown Message", "code": 10008}, 404)
        if "content" in body:
            msg["content"] = body["content"]
        msg["edited_timestamp"] = datetime.now(UTC).isoformat()
        msg["edits"] = msg.get("edits", 0) + 1
        return _json(msg)

    def _get_channel(self, channel_id: str) -> web.Response:
        if channel_id in self.threads:
            parent = self.threads[channel_id]
            return _json(p.thread_channel(channel_id, parent, self._guild_of(parent) or ""))
        guild = self._guild_of(channel_id)
        if guild is None:
            return _json({"message": "Unknown Channel", "code": 10003}, 404)
        return _json(p.text_channel(channel_id, guild))

    def _guild_of(self, channel_id: str) -> str | None:
        channel_id = self.threads.get(channel_id, channel_id)
        for gid, channels in self.guilds.items():
            if channel_id in channels:
                return gid
        return None

    def _put_commands(self, scope: str, body: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for cmd in body:
            full = {
                "id": self.new_id(),
                "application_id": p.APP_ID,
                "version": self.new_id(),
                "type": 1,
                "options": [],
                "default_member_permissions": None,
                "nsfw": False,
                **cmd,
            }
            perms = full["default_member_permissions"]
            full["default_member_permissions"] = None if perms is None else str(perms)
            if scope != "global":
                full["guild_id"] = scope
            out.append(full)
        self.commands[scope] = out
        return out

    def _interaction_callback(
        self, interaction_id: str, token: str, body: dict[str, Any]
    ) -> web.Response:
        if self._interaction_tokens.get(interaction_id) != token:
            return _json({"message": "Unknown interaction", "code": 10062}, 404)
        if any(r.get("interaction_id") == interaction_id for r in self.interaction_responses):
            return _json({"message": "Interaction already acknowledged", "code": 40060}, 400)
        self.interaction_responses.append({**body, "interaction_id": interaction_id})
        kind = body.get("type")
        channel_id = self._interaction_channels.get(interaction_id, p.CHANNEL_ID)
        msg = self._create_message(channel_id, body.get("data") or {}, interaction=token)
        msg["original_of"] = token
        return _json(
            {
                "interaction": {
                    "id": interaction_id,
                    "type": 2,
                    "response_message_id": msg["id"],
                    "response_message_loading": kind == 5,
                    "response_message_ephemeral": False,
                },
                "resource": {"type": kind, "message": msg},
            }
        )

    def _webhook(self, rec: Recorded, parts: list[str]) -> web.Response:
        token = parts[2]
        original = next((m for m in self.messages.values() if m.get("original_of") == token), None)
        if len(parts) == 3 and rec.method == "POST":
            channel = original["channel_id"] if original else p.CHANNEL_ID
            return _json(self._create_message(channel, rec.body or {}, interaction=token))
        if len(parts) == 5:
            target = original if parts[4] == "@original" else self.messages.get(parts[4])
            if target is None or target.get("interaction_token") != token:
                return _json({"message": "Unknown Webhook", "code": 10015}, 404)
            if rec.method == "PATCH":
                return self._edit_message(target["id"], rec.body or {})
            if rec.method == "DELETE":
                del self.messages[target["id"]]
                self.deleted.append(target)
                return web.Response(status=204)
            if rec.method == "GET":
                return _json(target)
        self.unexpected.append(rec)
        return _json({"message": "404: Not Found", "code": 0}, 404)

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
