"""The chat log of every visitor (``web_messages``), and who is listening to it live.

Every message the page shows is written before it is pushed to open pages, so a page that
(re)connects reads the log and misses nothing: not after a dropped connection, not after a
server restart (a reply being written when the server stopped is finished by the runtime's
recovery, which edits the same message).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select, update

from opencomputer.bot.storage.models import ReactionRow
from opencomputer.connectors.web.models import WebMessageRow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["HISTORY", "REPLAY", "REPLAY_CHATS", "VOTES", "ChatLog", "Listeners", "message"]

_MSG = WebMessageRow.__table__  # type: ignore[attr-defined]
_REACT = ReactionRow.__table__  # type: ignore[attr-defined]
HISTORY = 200
"""Messages a page gets when it (re)connects: the newest ones."""
VOTES = ("👍", "👎")
_QUEUE = 256  # events a slow page may lag behind before it is dropped (it reconnects)
REPLAY = 64
"""Message changes kept per chat for pages that reconnect with ``Last-Event-ID``."""
REPLAY_CHATS = 1024
"""Chats whose changes are kept (the most recently active); older ones reconnect to history."""


def message(row: Any, vote: str | None = None) -> dict[str, Any]:
    """The JSON form of one message, as the page reads it."""
    return {
        "id": row.message_id,
        "role": row.role,
        "text": row.text,
        "at": row.created_at,
        "vote": vote,
    }


class ChatLog:
    """Reads and writes ``web_messages`` (the app's database pool)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def add(self, chat: str, message_id: str, role: str, text: str, at: float) -> bool:
        """Store a new message; False when this chat has it already (a resent message)."""
        async with self.engine.begin() as conn:
            found = await conn.scalar(
                select(_MSG.c.id).where(_MSG.c.chat_id == chat, _MSG.c.message_id == message_id)
            )
            if found is not None:
                return False
            await conn.execute(
                insert(_MSG).values(
                    chat_id=chat,
                    message_id=message_id,
                    role=role,
                    text=text,
                    created_at=at,
                    updated_at=time.time(),
                )
            )
        return True

    async def edit(self, chat: str, message_id: str, text: str) -> dict[str, Any] | None:
        """Replace a bot message's text; its new form, or None if it is not in this chat."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(_MSG)
                .where(_MSG.c.chat_id == chat, _MSG.c.message_id == message_id)
                .values(text=text, updated_at=time.time())
            )
            row = (
                await conn.execute(
                    select(_MSG).where(_MSG.c.chat_id == chat, _MSG.c.message_id == message_id)
                )
            ).first()
        return None if row is None else message(row)

    async def role_of(self, chat: str, message_id: str) -> str | None:
        """Who wrote a message of this chat (None: no such message here)."""
        async with self.engine.connect() as conn:
            value = await conn.scalar(
                select(_MSG.c.role).where(_MSG.c.chat_id == chat, _MSG.c.message_id == message_id)
            )
        return None if value is None else str(value)

    async def forget(self, chats: list[str]) -> int:
        """Delete the chat logs of these visitors (``/forget``); how many messages went."""
        if not chats:
            return 0
        async with self.engine.begin() as conn:
            gone = await conn.execute(delete(_MSG).where(_MSG.c.chat_id.in_(chats)))
        return int(gone.rowcount or 0)

    async def export(self, chats: list[str]) -> list[dict[str, Any]]:
        """Every message of these visitors' chat logs (``/export``), oldest first."""
        if not chats:
            return []
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(_MSG).where(_MSG.c.chat_id.in_(chats)).order_by(_MSG.c.id)
            )
            return [{"chat": r.chat_id, **message(r)} for r in rows]

    async def recent(self, chat: str, limit: int = HISTORY) -> list[dict[str, Any]]:
        """The chat's newest messages, oldest first, each bot message with the visitor's vote."""
        async with self.engine.connect() as conn:
            rows = list(
                await conn.execute(
                    select(_MSG)
                    .where(_MSG.c.chat_id == chat)
                    .order_by(_MSG.c.created_at.desc(), _MSG.c.id.desc())
                    .limit(limit)
                )
            )
            votes: dict[str, str] = {}
            for vote in await conn.execute(
                select(_REACT.c.message_id, _REACT.c.emoji).where(
                    _REACT.c.platform == "web",
                    _REACT.c.chat_id == chat,
                    _REACT.c.user_id == chat,
                    _REACT.c.emoji.in_(VOTES),
                )
            ):
                votes[str(vote.message_id)] = str(vote.emoji)
        return [message(row, votes.get(row.message_id)) for row in reversed(rows)]


class Listeners:
    """The open event streams of each visitor (one per tab), and what changed lately.

    Every message event gets an id ``<epoch>-<seq>``. For the last :data:`REPLAY_CHATS`
    chats with news, the ids of the messages changed lately are kept (ids, not texts: the log
    has the texts), so a page that reconnects with ``Last-Event-ID`` is sent only the messages
    that changed since, in their current form (:meth:`since`).
    """

    def __init__(self) -> None:
        self._queues: dict[str, set[asyncio.Queue[dict[str, Any] | None]]] = {}
        self.epoch = secrets.token_hex(4)
        self.seq = 0
        self._changed: OrderedDict[str, tuple[int, deque[tuple[int, str]]]] = OrderedDict()
        """chat -> (floor, [(seq, message id)]): every change after seq ``floor`` is listed."""

    def event_id(self, seq: int | None = None) -> str:
        """The SSE id of event ``seq`` (default: the newest)."""
        return f"{self.epoch}-{self.seq if seq is None else seq}"

    def since(self, chat: str, last_id: str) -> list[str] | None:
        """The ids of this chat's messages changed after event ``last_id``, oldest change
        first; None when that is not known here (another process or epoch, or too long ago).
        """
        epoch, _, number = last_id.strip().partition("-")
        if epoch != self.epoch or not number.isdigit() or int(number) > self.seq:
            return None
        last = int(number)
        floor, changes = self._changed.get(chat, (self.seq, deque()))
        if last < floor:
            return None
        ids: dict[str, None] = {}
        for seq, message_id in changes:
            if seq > last:
                ids.pop(message_id, None)
                ids[message_id] = None  # ordered by its latest change
        return list(ids)

    def _record(self, chat: str, message_id: str) -> int:
        self.seq += 1
        floor, changes = self._changed.pop(chat, (self.seq - 1, deque(maxlen=REPLAY)))
        if len(changes) == changes.maxlen:
            floor = changes[0][0]  # about to be dropped: replays must start after it
        changes.append((self.seq, message_id))
        self._changed[chat] = (floor, changes)  # newest news last
        while len(self._changed) > REPLAY_CHATS:
            self._changed.popitem(last=False)
        return self.seq

    @contextlib.contextmanager
    def listen(self, chat: str) -> Iterator[asyncio.Queue[dict[str, Any] | None]]:
        """A queue of this chat's events for as long as the block runs (None: stop)."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(_QUEUE)
        self._queues.setdefault(chat, set()).add(queue)
        try:
            yield queue
        finally:
            queues = self._queues.get(chat, set())
            queues.discard(queue)
            if not queues:
                self._queues.pop(chat, None)

    def push(self, chat: str, event: dict[str, Any]) -> None:
        """Hand an event to every open page of the chat; a page too far behind is closed
        (its browser reconnects and reads the log, so it loses nothing). A message event is
        numbered first (``seq``), for replay.
        """
        if event.get("type") == "message":
            event = {**event, "seq": self._record(chat, str(event["id"]))}
        for queue in list(self._queues.get(chat, ())):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                self._close(queue)

    def close_all(self) -> None:
        """End every stream (the server stops; pages reconnect to the next one)."""
        for queues in list(self._queues.values()):
            for queue in list(queues):
                self._close(queue)

    @staticmethod
    def _close(queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        while True:
            try:
                queue.put_nowait(None)
                return
            except asyncio.QueueFull:
                queue.get_nowait()  # make room for the stop; what is dropped, the log has

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())
