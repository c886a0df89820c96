"""Following a request's turn from ``emit`` to the recorded answer.

The runtime answers a message with ``reply_to`` set to its ``message_id``, which is the
request's own id here: that is how a reply stream is matched to its request, so a recovered
older turn in the same conversation never leaks into another request's answer. A send with no
``reply_to`` while a request is being accepted is a rule's notice (pairing code, refusal, slow
down) instead of an answer.

The answer is final when the runtime has recorded it: the message's stored status turns
``answered`` (or ``failed``) and the reply's text is read from the outbox. That record, not the
HTTP connection, is the truth, so a client that disconnects mid-stream loses nothing and a
replayed request (same idempotency key: the same event id, stored once) is answered from the
record without a second turn.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from opencomputer.bot.apikeys.keys import PLATFORM
from opencomputer.bot.connector import Emit, RuntimeStopped
from opencomputer.bot.ratelimit import SLOW_DOWN
from opencomputer.bot.storage.models import InboundRow, ReplyRow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from opencomputer.bot.events import Address, Message

__all__ = ["Outcome", "Turn", "Turns"]

logger = logging.getLogger(__name__)

_IN = InboundRow.__table__  # type: ignore[attr-defined]
_REPLY = ReplyRow.__table__  # type: ignore[attr-defined]
_DONE = ("answered", "failed", "ignored")
_SLOW_DOWN_START = SLOW_DOWN.split("{", 1)[0]


@dataclass(slots=True)
class Outcome:
    """How a request ends: the answer, or an HTTP error in OpenAI's format."""

    text: str = ""
    status: int = 200
    message: str = ""
    kind: str = ""
    code: str | None = None


@dataclass(eq=False, slots=True)
class Turn:
    """One request waiting for its answer."""

    message: Message
    text: str = ""
    """The answer's text so far, as the runtime last showed it."""
    notice: str = ""
    """What a rule said instead of answering."""
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when ``text`` changes: wakes the response writer."""
    activity: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when ``text`` changes: the record may come soon, look sooner."""

    def show(self, text: str) -> None:
        """The runtime shows ``text`` as the answer so far."""
        self.text = text
        self.changed.set()
        self.activity.set()


class Turns:
    """The requests waiting for answers, and the reply streams matched to them."""

    def __init__(self, emit: Emit, engine: Callable[[], AsyncEngine], *, max_wait: float) -> None:
        self.emit = emit
        self.engine = engine
        self.max_wait = max_wait
        # message id (= event id) -> its waiting turns (a replay waits beside the original)
        self._waiting: dict[str, list[Turn]] = {}
        self._streams: dict[str, str] = {}  # reply stream's message id -> request id
        self._emitting: dict[str, list[Turn]] = {}  # conversation -> turns inside emit
        self._tasks: set[asyncio.Task[Outcome]] = set()

    # --- the runtime's side --------------------------------------------------------------
    def posted(self, address: Address, mid: str, text: str, reply_to: str | None) -> None:
        """A reply stream began (``reply_to`` names its request), or a rule's notice."""
        if reply_to in self._waiting:
            self._streams[mid] = reply_to
            for turn in self._waiting[reply_to]:
                turn.show(text)
        elif reply_to is None:
            for waiting in self._emitting.get(address.key, []):
                waiting.notice = text

    def edited(self, mid: str, text: str) -> None:
        """A reply stream's text changed."""
        for turn in self._waiting.get(self._streams.get(mid, ""), []):
            turn.show(text)

    # --- the request's side --------------------------------------------------------------
    def begin(self, message: Message) -> tuple[Turn, asyncio.Task[Outcome]]:
        """Emit the message and follow its turn in a task of its own: a client that goes
        away ends its handler, never the bookkeeping that follows the turn to its end.
        """
        turn = Turn(message)
        task = asyncio.create_task(self._follow(turn), name=f"api:{message.event_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return turn, task

    async def cancel_all(self) -> None:
        """Stop following (at shutdown: stored messages are answered at the next start)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _follow(self, turn: Turn) -> Outcome:
        request_id = turn.message.message_id
        self._waiting.setdefault(request_id, []).append(turn)
        try:
            return await self._answer(turn)
        finally:
            waiting = self._waiting[request_id]
            waiting.remove(turn)
            if not waiting:
                del self._waiting[request_id]
                for mid in [m for m, r in self._streams.items() if r == request_id]:
                    del self._streams[mid]

    async def _answer(self, turn: Turn) -> Outcome:
        message = turn.message
        conversation = message.address.key
        self._emitting.setdefault(conversation, []).append(turn)
        try:
            await self.emit(message)
        except RuntimeStopped:
            return Outcome(
                status=503,
                message="opencomputer is not taking messages right now; try again shortly",
                kind="server_error",
                code="unavailable",
            )
        finally:
            waiting = self._emitting.get(conversation, [])
            if turn in waiting:
                waiting.remove(turn)
            if not waiting:
                self._emitting.pop(conversation, None)
        inbound_id = await self._stored(message.event_id)
        if inbound_id is None:
            return _refused(turn.notice)
        try:
            async with asyncio.timeout(self.max_wait):
                return await self._recorded(turn, inbound_id)
        except TimeoutError:
            return Outcome(
                status=504,
                message=f"no answer within {self.max_wait:.0f} s; the agent goes on and "
                "keeps the answer in this conversation",
                kind="server_error",
                code="timeout",
            )

    async def _stored(self, event_id: str) -> int | None:
        async with self.engine().connect() as conn:
            value = await conn.scalar(
                select(_IN.c.id).where(_IN.c.platform == PLATFORM, _IN.c.event_id == event_id)
            )
        return None if value is None else int(value)

    async def _recorded(self, turn: Turn, inbound_id: int) -> Outcome:
        """Wait until the runtime has recorded and delivered the answer; return it.

        Looked up soon after each change of the streamed text (the final one comes right
        before the record), and at most every half second while the agent thinks.
        """
        delay = 0.02
        while True:
            async with self.engine().connect() as conn:
                status = await conn.scalar(select(_IN.c.status).where(_IN.c.id == inbound_id))
                if status in _DONE:
                    reply = (
                        await conn.execute(
                            select(_REPLY.c.text, _REPLY.c.failure)
                            .where(_REPLY.c.inbound_id == inbound_id)
                            .order_by(_REPLY.c.id.desc())
                            .limit(1)
                        )
                    ).first()
                    return _finished(reply)
            turn.activity.clear()
            try:
                async with asyncio.timeout(delay):
                    await turn.activity.wait()
                delay = 0.02
            except TimeoutError:
                delay = min(delay * 2, 0.5)


def _finished(reply: Any) -> Outcome:
    if reply is None:
        return Outcome(status=500, message="the message was not answered", kind="server_error")
    if reply.failure:
        return Outcome(
            status=502,
            message=f"the agent could not answer ({reply.failure}); try again",
            kind="server_error",
            code="agent_failed",
        )
    return Outcome(text=str(reply.text))


def _refused(notice: str) -> Outcome:
    """A rule stopped the message before it was stored (rate limit, access control)."""
    if notice.startswith(_SLOW_DOWN_START):
        return Outcome(status=429, message=notice, kind="requests", code="rate_limit_exceeded")
    return Outcome(
        status=403,
        message=notice
        or "opencomputer did not take this message (this person is denied, or over "
        "OC_RATE_LIMIT_USER)",
        kind="permission_error",
        code="not_allowed",
    )
