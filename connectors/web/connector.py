"""The web chat as a channel: a page at ``/chat``, messages in by POST, answers out by SSE.

A visitor is the user ``web:<id>`` of their own direct chat (``session.py`` says how the id is
kept), so access control treats them as any stranger on a messenger: under the default
``pairing`` policy the first message gets the pairing text with a code and an admin approves
it with ``/allow CODE``.

- ``POST /chat/messages`` (JSON ``{"id", "text"}``, CSRF header) emits a neutral
  :class:`~bot.events.Message` (``/name args``: a :class:`~bot.events.Command`). 202 means the
  runtime stored it; a resent ``id`` is the same message, stored once.
- The runtime streams the answer through :meth:`WebConnector.send` and :meth:`~WebConnector.edit`
  as to any messenger; each call is written to the chat log (``log.py``) and then pushed to
  the visitor's open pages over ``GET /chat/events`` (server-sent events carrying the message
  id and its whole text). A page that (re)connects first gets the log's newest messages.
- ``POST /chat/reactions`` turns 👍/👎 on a bot message into :class:`~bot.events.Reaction`
  events, which the feedback feature scores like a reaction on any platform.

Every refusal is one JSON line ``{"error": ...}`` with its status, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlalchemy import select

from opencomputer.bot.connector import (
    Capabilities,
    CommandSpec,
    ConnectorState,
    Formatting,
    RuntimeStopped,
)
from opencomputer.bot.events import Address, Message
from opencomputer.bot.hooks import DataRights
from opencomputer.bot.http import too_large_as
from opencomputer.bot.ratelimit import SLOW_DOWN, LocalLimiter, client_network
from opencomputer.bot.storage.models import InboundRow
from opencomputer.bot.text import clean_text
from opencomputer.connectors.web.log import VOTES, ChatLog, Listeners
from opencomputer.connectors.web.session import COOKIE, Sessions, load_secret
from opencomputer.connectors.web.wire import (
    BOT_ID,
    CLIENT_ID,
    HEADERS,
    MAX_BODY,
    NEW_VISITORS,
    NO_STORE,
    PLATFORM,
    STATIC,
    Refused,
    error,
    event_of,
    reaction_of,
    read_json,
    read_static,
    sse,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from opencomputer.bot.config import Settings
    from opencomputer.bot.connector import Emit

__all__ = ["MAX_BODY", "PLATFORM", "WebConnector", "client_network", "create"]

logger = logging.getLogger(__name__)

_PING = 15.0  # seconds between SSE comments (proxies close streams that stay silent)
_IN = InboundRow.__table__  # type: ignore[attr-defined]
_SLOW_DOWN_START = SLOW_DOWN.split("{", 1)[0]
_YEAR = 365 * 24 * 3600
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WebConnector:
    """``/chat``: the page, its session, messages in, answers out by server-sent events."""

    platform = PLATFORM
    capabilities = Capabilities(
        max_length=1_000_000,  # one growing message per answer: the page wraps it
        can_edit=True,
        can_react=False,
        can_type=True,
        formatting=Formatting.MARKDOWN,  # rendered, safely, by the page
        edit_interval=0.15,
        keeps_messages=True,  # the chat log outlives the process: a restarted turn edits
    )

    def __init__(
        self,
        settings: Settings,
        emit: Emit,
        *,
        store: Any = None,
        engine: AsyncEngine | None = None,
        hooks: Any = None,
        **_services: Any,
    ) -> None:
        self.settings = settings
        self.emit = emit
        self.state = ConnectorState.STOPPED
        self.listeners = Listeners()
        self._store = store  # the app's (ChannelServices): its database pool is shared
        self._engine = engine
        self._own_engine = False
        self._log: ChatLog | None = None
        self._sessions: Sessions | None = None
        self._files: dict[str, bytes] = {}
        self._emitting: dict[str, list[str]] = {}  # visitor -> notices sent while emitting
        self._closing = False
        self._limiter = LocalLimiter()
        self.new_visitors = NEW_VISITORS
        """New sessions (cookies) one client address may start (``wire.NEW_VISITORS``)."""
        if hooks is not None:  # /forget and /export reach the chat log (ChannelServices)
            hooks.register(DataRights(self.forget, self.export), "web-data")

    # --- data rights -----------------------------------------------------------------------
    async def forget(self, _person: str, accounts: list[str]) -> str:
        """Delete the person's web chat logs (their ``web:`` accounts)."""
        if self._log is None:
            return ""
        gone = await self._log.forget(_web_chats(accounts))
        return f"{gone} web chat messages" if gone else ""

    async def export(self, _person: str, accounts: list[str]) -> dict[str, Any]:
        """The person's web chat logs."""
        if self._log is None:
            return {}
        return {"web_chat": await self._log.export(_web_chats(accounts))}

    # --- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Read the server secret and the page's files; share the app's database."""
        self._closing = False
        secret = await asyncio.to_thread(load_secret, self.settings.data_dir)
        self._sessions = Sessions(secret)
        self._files = await asyncio.to_thread(read_static)
        if self._engine is None and self._store is not None:
            self._engine = self._store.engine
        if self._engine is None:  # built without the app's services: a pool of its own
            from opencomputer.bot.storage import create_engine

            self._engine = create_engine(self.settings.resolved_database_url)
            self._own_engine = True
        self._log = ChatLog(self._engine)
        self.state = ConnectorState.CONNECTED
        logger.info("web chat at /chat on the HTTP app")

    async def stop(self) -> None:
        """End every open event stream (pages reconnect to the next start) and close."""
        self._closing = True
        self.listeners.close_all()
        if self._own_engine and self._engine is not None:
            await self._engine.dispose()
            self._engine, self._own_engine = None, False
        self.state = ConnectorState.STOPPED

    @property
    def log(self) -> ChatLog:
        """The chat log (after :meth:`start`)."""
        if self._log is None:
            raise RuntimeError("WebConnector.start() was not called")
        return self._log

    @property
    def sessions(self) -> Sessions:
        """Cookies and CSRF tokens (after :meth:`start`)."""
        if self._sessions is None:
            raise RuntimeError("WebConnector.start() was not called")
        return self._sessions

    # --- what the runtime calls ------------------------------------------------------------
    def render(self, markdown: str) -> list[str]:
        """Markdown as is: the page renders it (escaped) in the browser."""
        return [markdown]

    async def send(self, address: Address, text: str, *, reply_to: str | None = None) -> str:
        """A new bot message in a visitor's chat: logged, then shown on their open pages."""
        mid = "b" + uuid.uuid4().hex
        now = time.time()
        await self.log.add(address.chat_id, mid, "bot", text, now)
        if reply_to is None and address.chat_id in self._emitting:
            self._emitting[address.chat_id].append(text)  # a rule's answer to this request
        self.listeners.push(
            address.chat_id,
            {"type": "message", "id": mid, "role": "bot", "text": text, "at": now, "vote": None},
        )
        return mid

    async def edit(self, address: Address, message_id: str, text: str) -> None:
        """The message's new text: logged, then shown."""
        shown = await self.log.edit(address.chat_id, message_id, text)
        if shown is None:
            raise LookupError(f"web chat {address.chat_id[:8]}… has no message {message_id}")
        self.listeners.push(address.chat_id, {"type": "message", **shown})

    async def react(self, address: Address, message_id: str, emoji: str) -> None:
        """The bot does not react in the web chat (``can_react`` is false)."""

    async def typing(self, address: Address) -> None:
        """Show the visitor's open pages that an answer is coming."""
        self.listeners.push(address.chat_id, {"type": "typing"})

    async def register_commands(self, commands: Sequence[CommandSpec]) -> None:
        """Commands are typed as ``/name``; ``/help`` lists them."""

    # --- HTTP --------------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        """The page, its assets and its API, all under ``/chat``."""
        return [
            web.get("/chat", self._guarded(self._page)),
            web.get("/chat/", self._slash),
            web.get("/chat/static/{name}", self._guarded(self._static)),
            web.get("/chat/session", self._guarded(self._session)),
            web.get("/chat/history", self._guarded(self._history)),
            web.get("/chat/events", self._guarded(self._events)),
            web.post("/chat/messages", self._guarded(self._post_message)),
            web.post("/chat/reactions", self._guarded(self._post_reaction)),
        ]

    def _guarded(self, handler: Handler) -> Handler:
        async def run(request: web.Request) -> web.StreamResponse:
            if self._sessions is None or not self._files:  # routes are up before start()
                return error(503, "the web chat is not ready; see the server log, retry soon")
            try:
                return await handler(request)
            except Refused as refusal:
                if refusal.retry_after is not None:
                    return error(
                        refusal.status, str(refusal), **{"Retry-After": str(refusal.retry_after)}
                    )
                return error(refusal.status, str(refusal))
            except RuntimeStopped:
                return error(503, "the server is restarting; send again in a moment")
            except web.HTTPException:
                raise
            except Exception as exc:
                logger.error("web chat: %s %s failed: %r", request.method, request.path, exc)
                return error(500, "internal error; see the server log")

        return too_large_as(run, _too_large)

    async def _page(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=self._files["index.html"],
            content_type="text/html",
            charset="utf-8",
            headers={**HEADERS, "Cache-Control": "no-cache"},
        )

    async def _slash(self, _request: web.Request) -> web.Response:
        raise web.HTTPFound("../chat", headers=HEADERS)  # relative: works behind a prefix

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC:
            return error(404, "no such file")
        return web.Response(
            body=self._files[name],
            content_type=STATIC[name],
            charset="utf-8",
            headers={**HEADERS, "Cache-Control": "no-cache"},
        )

    def _visitor(self, request: web.Request) -> str:
        visitor = self.sessions.visitor(request.cookies.get(COOKIE))
        if visitor is None:
            raise Refused(403, "no chat session (cookies blocked?): reload the page")
        return visitor

    def _secure(self, request: web.Request) -> bool:
        choice = self.settings.web_cookie_secure
        if choice != "auto":
            return choice == "true"
        forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        return request.secure or forwarded == "https"

    async def _session(self, request: web.Request) -> web.Response:
        """The visitor (a new one gets the cookie) and the CSRF token their page sends."""
        visitor = self.sessions.visitor(request.cookies.get(COOKIE))
        cookie = None
        if visitor is None:
            where = client_network(request.remote)
            decision = await self._limiter.take(f"web-new:{where}", self.new_visitors)
            if not decision.allowed:  # each new visitor may make a pairing request
                minutes = max(1, math.ceil(decision.retry_after / 60))
                logger.info("web chat: too many new sessions from %s", request.remote)
                raise Refused(
                    429,
                    "too many new chat sessions from your address; allow cookies for this "
                    f"site, or try again in {minutes} min",
                    retry_after=max(1, math.ceil(decision.retry_after)),
                )
            visitor, cookie = self.sessions.issue()
        response = web.json_response(
            {
                "ok": True,
                "user": f"{PLATFORM}:{visitor}",
                "csrf": self.sessions.csrf(visitor),
                "max_chars": self.settings.web_max_chars,
            },
            headers=NO_STORE,
        )
        if cookie is not None:
            response.set_cookie(
                COOKIE,
                cookie,
                max_age=_YEAR,
                path="/",
                httponly=True,
                samesite="Strict",
                secure=self._secure(request),
            )
        return response

    async def _history(self, request: web.Request) -> web.Response:
        visitor = self._visitor(request)
        messages = await self.log.recent(visitor)
        return web.json_response(
            {"ok": True, "user": f"{PLATFORM}:{visitor}", "messages": messages},
            headers=NO_STORE,
        )

    async def _events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: the chat's newest messages first, then each change live."""
        visitor = self._visitor(request)
        if self._closing:
            raise Refused(503, "the server is restarting")
        response = web.StreamResponse(
            headers={
                **NO_STORE,
                "Content-Type": "text/event-stream; charset=utf-8",
                "X-Accel-Buffering": "no",  # nginx: pass each event on at once
            }
        )
        await response.prepare(request)
        last = request.headers.get("Last-Event-ID", "")
        with self.listeners.listen(visitor) as queue:  # before reading: nothing falls between
            try:
                await response.write(b"retry: 2000\n\n" + await self._catch_up(visitor, last))
                while True:
                    try:
                        async with asyncio.timeout(_PING):
                            item = await queue.get()
                    except TimeoutError:
                        await response.write(b": ping\n\n")
                        continue
                    if item is None:
                        break
                    data = {k: v for k, v in item.items() if k not in ("type", "seq")}
                    seq = item.get("seq")
                    event_id = None if seq is None else self.listeners.event_id(seq)
                    await response.write(sse(item["type"], data, event_id))
            except (ConnectionError, RuntimeError):
                return response  # the page went away; it reads the log when it comes back
        with contextlib.suppress(ConnectionError, RuntimeError):
            await response.write_eof()
        return response

    async def _catch_up(self, visitor: str, last: str) -> bytes:
        """What a (re)connecting page is sent first: only the messages that changed since
        ``Last-Event-ID`` when that is known here, else ``history`` (the newest messages, which
        the page shows in place of what it had).
        """
        event_id = self.listeners.event_id()  # before reading: a later change is resent
        changed = self.listeners.since(visitor, last) if last else None
        history = await self.log.recent(visitor)
        if changed is not None:
            current = {m["id"]: m for m in history}
            if all(mid in current for mid in changed):
                return b"".join(sse("message", current[mid], event_id) for mid in changed)
        return sse("history", {"messages": history}, event_id)

    async def _post_message(self, request: web.Request) -> web.Response:
        visitor = self._visitor(request)
        data = await read_json(request, self.sessions, visitor)
        client_id, text = data.get("id"), data.get("text")
        if not isinstance(client_id, str) or not CLIENT_ID.match(client_id):
            raise Refused(400, "'id' must be 8-64 letters, digits, '-' or '_'")
        if not isinstance(text, str) or not text.strip():
            raise Refused(400, "'text' must be a non-empty string")
        text = clean_text(text.strip())
        if len(text) > self.settings.web_max_chars:
            raise Refused(
                413, f"message longer than {self.settings.web_max_chars} characters; shorten it"
            )
        now = time.time()
        event = event_of(visitor, client_id, text, now)
        notices = self._emitting.setdefault(visitor, [])
        try:
            await self.emit(event)
        finally:
            if self._emitting.get(visitor) is notices:
                del self._emitting[visitor]
        if isinstance(event, Message) and not await self._stored(event.event_id):
            if any(n.startswith(_SLOW_DOWN_START) for n in notices):
                raise Refused(429, "you are sending messages too fast; wait a little")
            if notices:  # the pairing text (with its code) or a refusal, shown in the chat
                raise Refused(
                    403,
                    "not accepted: see the answer above (an admin approves a "
                    "pairing code with /allow CODE)",
                )
            raise Refused(  # dropped silently: a code was given earlier, or still too fast
                403,
                "not accepted: this chat is not allowed yet (an admin approves the pairing "
                "code it was given) or it is sending too fast; wait a little",
            )
        if await self.log.add(visitor, client_id, "user", text, now):
            self.listeners.push(
                visitor,
                {"type": "message", "id": client_id, "role": "user", "text": text, "at": now},
            )
        return web.json_response({"ok": True, "id": client_id}, status=202, headers=NO_STORE)

    async def _stored(self, event_id: str) -> bool:
        assert self._engine is not None
        async with self._engine.connect() as conn:
            found = await conn.scalar(
                select(_IN.c.id).where(_IN.c.platform == PLATFORM, _IN.c.event_id == event_id)
            )
        return found is not None

    async def _post_reaction(self, request: web.Request) -> web.Response:
        """A vote on a bot message: one of 👍/👎 at a time (the other is taken back)."""
        visitor = self._visitor(request)
        data = await read_json(request, self.sessions, visitor)
        mid, emoji, added = data.get("message_id"), data.get("emoji"), data.get("added", True)
        if emoji not in VOTES:
            raise Refused(400, f"'emoji' must be one of {' '.join(VOTES)}")
        if not isinstance(added, bool):
            raise Refused(400, "'added' must be true or false")
        if not isinstance(mid, str) or not BOT_ID.match(mid):
            raise Refused(400, "'message_id' must name a bot message")
        if await self.log.role_of(visitor, mid) != "bot":
            raise Refused(404, "no such bot message in this chat")
        votes = [(e, False) for e in VOTES if e != emoji] if added else []
        for vote, on in [*votes, (emoji, added)]:
            await self.emit(reaction_of(visitor, mid, vote, on))
        return web.json_response({"ok": True}, status=202, headers=NO_STORE)


def _too_large(limit: int) -> web.Response:
    """A body over the HTTP app's limit, refused before it is read: the chat's one line."""
    return error(413, f"request larger than {limit // 1024} KiB; shorten the message")


def create(settings: Settings, emit: Emit, **services: Any) -> WebConnector:
    """The channel's factory; the app's ``store`` and ``hooks`` may come as keywords."""
    return WebConnector(settings, emit, store=services.get("store"), hooks=services.get("hooks"))


def _web_chats(accounts: list[str]) -> list[str]:
    """The chat ids of a person's web accounts (a visitor's chat is keyed by their id)."""
    return [key.partition(":")[2] for key in accounts if key.startswith("web:")]
