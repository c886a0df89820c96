"""The OpenAI-compatible API as a channel: HTTP requests in, the agent's streamed answer out.

A request becomes a neutral :class:`~bot.events.Message` handed to ``emit`` (the runtime stores
it, queues it on its conversation's lane and runs the agent with its tools, memory and
plugins). The runtime streams the answer back through :meth:`ApiConnector.send` and
:meth:`ApiConnector.edit` as to any messenger, each call carrying the whole text so far; the
waiting request turns that into server-sent deltas (``stream.py``) and ends with the answer the
runtime recorded (``turns.py``).

Keys are checked on every request (``bot/apikeys``), never logged, and rate limited per key.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import math
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web

from opencomputer.bot.apikeys.keys import PLATFORM, ApiKey, authenticate
from opencomputer.bot.connector import Capabilities, CommandSpec, ConnectorState, Emit, Formatting
from opencomputer.bot.events import Address, Chat, ChatKind, Message, User
from opencomputer.bot.http import too_large_as
from opencomputer.bot.ratelimit import LocalLimiter, parse_rate
from opencomputer.connectors.api import wire
from opencomputer.connectors.api.stream import Events
from opencomputer.connectors.api.turns import Outcome, Turn, Turns
from opencomputer.connectors.api.wire import BadRequest, ChatRequest, error_response

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from opencomputer.bot.config import Settings
    from opencomputer.bot.ratelimit import Limiter

__all__ = ["ApiConnector"]

logger = logging.getLogger(__name__)

_PING = 10.0  # seconds between SSE comments while the agent thinks (proxies drop idle streams)


class ApiConnector:
    """``POST /v1/chat/completions`` and ``GET /v1/models`` on the shared HTTP app."""

    platform = PLATFORM
    capabilities = Capabilities(
        max_length=10**9,  # one message: the whole answer is one growing text
        can_edit=True,
        can_react=False,
        can_type=False,
        formatting=Formatting.MARKDOWN,
        edit_interval=0.05,  # nothing to rate-limit: stream nearly as fast as the model writes
        keeps_messages=False,  # an HTTP response does not outlive the process
    )

    def __init__(
        self,
        settings: Settings,
        emit: Emit,
        *,
        engine: AsyncEngine | None = None,
        limiter: Limiter | None = None,
        store: Any = None,
        **_services: Any,
    ) -> None:
        self.settings = settings
        self.emit = emit
        self.state = ConnectorState.STOPPED
        self._engine = engine
        self._store = (
            store  # the app's (opencomputer.bot.channels.ChannelServices): its engine is shared
        )
        self._own_engine = False
        self._bucket = parse_rate(settings.api_rate)
        self._limiter: Limiter = limiter or LocalLimiter()
        self._own_limiter = limiter is None
        self._redis: Any = None
        # a request waits this long for its answer (the turn goes on and is stored after)
        self.turns = Turns(
            emit, lambda: self.engine, max_wait=max(600.0, 2 * settings.model_timeout)
        )
        self._ids = itertools.count(1)
        self._created = wire.now()

    # --- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Open the database the keys live in (the routes are mounted by the app)."""
        if self._engine is None and self._store is not None:
            self._engine = self._store.engine
        if self._engine is None:  # built without the app's services: a pool of its own
            from opencomputer.bot.storage import create_engine

            self._engine = create_engine(self.settings.resolved_database_url)
            self._own_engine = True
        if self._own_limiter and self.settings.redis_url:  # every gateway shares the limits
            import redis.asyncio as redis

            from opencomputer.bot.ratelimit import RedisLimiter

            self._redis = redis.from_url(self.settings.redis_url)
            self._limiter = RedisLimiter(
                self._redis, prefix=f"{self.settings.redis_prefix}:ratelimit:"
            )
        self.state = ConnectorState.CONNECTED

    async def stop(self) -> None:
        """Stop waiting for answers (stored turns finish at the next start) and close."""
        await self.turns.cancel_all()
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
        if self._own_engine and self._engine is not None:
            await self._engine.dispose()
            self._engine, self._own_engine = None, False
        self.state = ConnectorState.STOPPED

    @property
    def engine(self) -> AsyncEngine:
        """The database engine (after :meth:`start`)."""
        if self._engine is None:
            raise RuntimeError("ApiConnector.start() was not called")
        return self._engine

    # --- what the runtime calls ----------------------------------------------------------
    def render(self, markdown: str) -> list[str]:
        """Markdown is what OpenAI clients render: passed through whole, never split."""
        return [markdown]

    async def send(self, address: Address, text: str, *, reply_to: str | None = None) -> str:
        """A reply stream began (``reply_to`` names its request), or a rule's notice."""
        mid = f"api-{next(self._ids)}"
        self.turns.posted(address, mid, text, reply_to)
        return mid

    async def edit(self, address: Address, message_id: str, text: str) -> None:
        """The answer grew (or was replaced by the final text)."""
        self.turns.edited(message_id, text)

    async def react(self, address: Address, message_id: str, emoji: str) -> None:
        """No reactions in this API."""

    async def typing(self, address: Address) -> None:
        """No typing indicator: the open response is the sign of work."""

    async def register_commands(self, commands: Sequence[CommandSpec]) -> None:
        """Chat commands are not offered over the API."""

    # --- HTTP ----------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        """The OpenAI endpoints, and OpenAI-style 404s for the rest of ``/v1``."""
        return [
            web.post("/v1/chat/completions", self._guarded(self._completions)),
            web.get("/v1/models", self._guarded(self._models)),
            web.get("/v1/models/{model}", self._guarded(self._model)),
            web.route("*", "/v1/{tail:.*}", self._guarded(self._unknown)),
        ]

    def _guarded(self, handler: Any) -> Any:
        """Any failure is a JSON error with one line, never a traceback on the wire."""

        async def run(request: web.Request) -> web.StreamResponse:
            try:
                response: web.StreamResponse = await handler(request)
                return response
            except web.HTTPException:
                raise
            except Exception as exc:
                logger.error("api: %s %s failed: %r", request.method, request.path, exc)
                return error_response(500, "internal error; see the server log", "server_error")

        return too_large_as(run, _too_large)

    async def _unknown(self, request: web.Request) -> web.Response:
        return error_response(
            404, f"no such endpoint: {request.method} {request.path}", "invalid_request_error"
        )

    async def _authorize(self, request: web.Request) -> ApiKey | web.Response:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return error_response(
                401,
                "missing API key: send 'Authorization: Bearer <key>' "
                "(create one with: opencomputer keys create --person NAME)",
                "invalid_request_error",
                "invalid_api_key",
            )
        key = await authenticate(self.engine, token.strip())
        if key is None:
            logger.info("api: refused an unknown or revoked key from %s", request.remote)
            return error_response(
                401,
                "invalid API key (unknown or revoked); see: opencomputer keys list",
                "invalid_request_error",
                "invalid_api_key",
            )
        if self._bucket is not None:
            decision = await self._limiter.take(f"apikey:{key.id}", self._bucket)
            if not decision.allowed:
                wait = max(1, math.ceil(decision.retry_after))
                return error_response(
                    429,
                    f"rate limit of this key reached (OC_API_RATE); retry in {wait} s",
                    "requests",
                    "rate_limit_exceeded",
                    headers={"Retry-After": str(wait)},
                )
        return key

    async def _models(self, request: web.Request) -> web.Response:
        key = await self._authorize(request)
        if isinstance(key, web.Response):
            return key
        return web.json_response({"object": "list", "data": [self._model_entry()]})

    async def _model(self, request: web.Request) -> web.Response:
        key = await self._authorize(request)
        if isinstance(key, web.Response):
            return key
        if request.match_info["model"] != wire.MODEL_ID:
            return error_response(
                404,
                f"no model {request.match_info['model']!r}; this server has {wire.MODEL_ID!r}",
                "invalid_request_error",
                "model_not_found",
            )
        return web.json_response(self._model_entry())

    def _model_entry(self) -> dict[str, Any]:
        return {
            "id": wire.MODEL_ID,
            "object": "model",
            "created": self._created,
            "owned_by": "opencomputer",
        }

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        key = await self._authorize(request)
        if isinstance(key, web.Response):
            return key
        try:
            chat = wire.parse_request(await request.read())
        except BadRequest as exc:
            return error_response(400, str(exc), "invalid_request_error", param=exc.param)
        turn, task = self.turns.begin(self._message(key, chat, request))
        if chat.stream:
            return await self._stream(request, chat, turn, task)
        outcome = await _outcome(task)
        if outcome.status != 200:
            return _error(outcome)
        cid = "chatcmpl-" + uuid.uuid4().hex
        return web.json_response(wire.completion(cid, chat.model, outcome.text, wire.now()))

    def _message(self, key: ApiKey, chat: ChatRequest, request: web.Request) -> Message:
        """The neutral message: the person's DM, one thread per conversation."""
        person = key.person
        header = request.headers.get("X-Conversation-Id") or request.headers.get(
            "X-OpenWebUI-Chat-Id"
        )
        conversation = wire.conversation_id(header, chat.user)
        replay = request.headers.get("Idempotency-Key")
        if replay:  # the same key from the same person is the same message: stored once
            raw = f"{person}\0{replay}".encode("utf-8", "surrogatepass")
            event_id = "idem-" + hashlib.sha256(raw).hexdigest()[:40]
        else:
            event_id = uuid.uuid4().hex
        return Message(
            platform=PLATFORM,
            event_id=event_id,
            chat=Chat(PLATFORM, person, ChatKind.DIRECT, title=person),
            user=User(PLATFORM, person, person),
            thread_id=conversation,
            text=chat.text,
            message_id=event_id,
        )

    async def _stream(
        self, request: web.Request, chat: ChatRequest, turn: Turn, task: asyncio.Task[Outcome]
    ) -> web.StreamResponse:
        """Server-sent ``chat.completion.chunk`` events as the answer grows, then ``[DONE]``."""
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # nginx: pass each event on at once
            }
        )
        await response.prepare(request)
        out = Events(response, "chatcmpl-" + uuid.uuid4().hex, chat.model)
        await out.delta({"role": "assistant", "content": ""})
        while not task.done() and not out.gone:
            turn.changed.clear()
            changed = asyncio.create_task(turn.changed.wait())
            try:
                done, _ = await asyncio.wait(
                    {changed, task}, timeout=_PING, return_when="FIRST_COMPLETED"
                )
            finally:
                changed.cancel()
            if not done:
                await out.raw(b": still thinking\n\n")
            await out.text(turn.text)
        if out.gone:
            return response  # the turn goes on and is stored; nobody is listening here
        outcome = await _outcome(task)
        if outcome.status != 200:
            await out.raw(wire.event(wire.error_body(outcome.message, outcome.kind, outcome.code)))
        else:
            await out.text(outcome.text)
            await out.delta({}, finish="stop")
            if chat.include_usage:
                await out.usage()
        await out.raw(b"data: [DONE]\n\n")
        with contextlib.suppress(ConnectionError, RuntimeError):
            await response.write_eof()
        return response


async def _outcome(task: asyncio.Task[Outcome]) -> Outcome:
    """The request's outcome; shielded, so a handler cancelled by its client leaves the
    turn's bookkeeping running. A task cancelled by shutdown is a 503.
    """
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if not task.cancelled():
            raise  # the handler itself was cancelled
        return Outcome(
            status=503,
            message="opencomputer is shutting down; the message is kept and answered after "
            "the restart",
            kind="server_error",
            code="unavailable",
        )


def _too_large(limit: int) -> web.Response:
    """A body over the HTTP app's limit, in OpenAI's error format (refused before reading)."""
    return error_response(
        413,
        f"request body larger than {limit // 1024} KiB: send a shorter conversation "
        "(only the last user message is read)",
        "invalid_request_error",
        "request_too_large",
    )


def _error(outcome: Outcome) -> web.Response:
    """A failed request; 5xx after a turn ran must not be retried by the client (a retry
    would be a second turn), a refused one may be after a while.
    """
    headers = {"x-should-retry": "false"} if outcome.status >= 500 else None
    if outcome.status == 429:
        headers = {"Retry-After": "60"}
    return error_response(
        outcome.status, outcome.message, outcome.kind, outcome.code, headers=headers
    )
