"""The async repository the runtime talks to. SQLAlchemy Core on SQLModel tables: an ORM
session per call would cost more than the rest of a turn.

The three writes every turn makes (accept the message, record the reply, mark it sent) are each
written once against :class:`~bot.storage.writer.Tx`; ``bot/storage/writer.py`` says how they
run on each database and why.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from opencomputer.bot.events import Address, Message, Reaction
from opencomputer.bot.storage.attachments import attachments_to_json
from opencomputer.bot.storage.engine import async_url, create_engine, is_transient, sqlite_path
from opencomputer.bot.storage.models import (
    ConversationRow,
    InboundRow,
    ReactionRow,
    ReplyPartRow,
    ReplyPostRow,
    ReplyRow,
)
from opencomputer.bot.storage.writer import CoreTx, SqliteWriter, Tx

__all__ = ["ReplyMeta", "SqlStore"]

_IN = InboundRow.__table__  # type: ignore[attr-defined]
_REPLY = ReplyRow.__table__  # type: ignore[attr-defined]
_PART = ReplyPartRow.__table__  # type: ignore[attr-defined]
_POST = ReplyPostRow.__table__  # type: ignore[attr-defined]
_REACT = ReactionRow.__table__  # type: ignore[attr-defined]
_CONV = ConversationRow.__table__  # type: ignore[attr-defined]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ReplyMeta:
    """What produced a reply, so feedback can be credited to it."""

    model: str = ""
    variant_id: int | None = None
    run_id: str = ""
    failure: str | None = None


async def _again_if_transient(call: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run ``call`` once more when the first try met a dead connection (the pool then has a
    fresh one): an accepted message must not depend on a database restart's timing.
    """
    try:
        return await call(*args)
    except Exception as exc:
        if not is_transient(exc):
            raise
    return await call(*args)


class SqlStore:
    """Inbound messages, the reply outbox, reactions and conversation epochs."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: AsyncEngine | None = None
        self._writer: SqliteWriter | None = None
        self._epochs: dict[str, int] = {}

    @property
    def engine(self) -> AsyncEngine:
        """The engine; feature modules share it for their own tables."""
        if self._engine is None:
            raise RuntimeError("SqlStore.start() was not called")
        return self._engine

    @property
    def writer(self) -> SqliteWriter | None:
        """The SQLite writer (None on PostgreSQL): the graph checkpoints go through it too."""
        return self._writer

    async def start(self, *, upgrade: bool = False) -> None:
        """Open the engine and check the schema (``bot/storage/migrate.py``): an empty database
        gets every table, an older one is migrated only with ``upgrade`` (a backup first), else
        :class:`~bot.storage.migrate.SchemaError` says to run ``opencomputer db upgrade``.
        """
        from opencomputer.bot.storage.migrate import prepare

        self._engine = create_engine(self.url)
        try:
            await prepare(self._engine, allow_upgrade=upgrade)
        except BaseException:
            await self.stop()
            raise
        path = sqlite_path(async_url(self.url))
        if path is not None:
            self._writer = SqliteWriter(path)

    async def stop(self) -> None:
        """Close every pooled connection."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    async def transact(self, work: Callable[..., T], *args: Any) -> T:
        """Run ``work(tx, *args)`` in one transaction (see ``bot/storage/writer.py``)."""
        if self._writer is not None:
            return await self._writer.run(work, *args)
        async with self.engine.begin() as conn:
            return await conn.run_sync(lambda sync: work(CoreTx(sync), *args))

    async def ping(self) -> None:
        """Raise if the database cannot be reached."""
        async with self.engine.connect() as conn:
            await conn.execute(select(1))

    # --- inbound -----------------------------------------------------------------------
    async def accept_inbound(self, msg: Message) -> int | None:
        """Persist an inbound message; None when this platform event was stored before."""
        values = {
            "platform": msg.platform,
            "event_id": msg.event_id,
            "conversation": msg.address.key,
            "chat_id": msg.chat.id,
            "thread_id": msg.thread_id,
            "message_id": msg.message_id,
            "user_id": msg.user.id,
            "user_name": msg.user.name,
            "chat_kind": str(msg.chat.kind),
            "text": msg.text,
            "attachments": attachments_to_json(msg.attachments),
            "status": "accepted",
            "received_at": msg.received_at,
        }
        try:
            return await _again_if_transient(self.transact, _insert_inbound, values)
        except (IntegrityError, sqlite3.IntegrityError):
            return None

    async def mark_inbound(self, inbound_id: int, status: str, error: str | None = None) -> None:
        """Move an inbound message to ``answered``, ``failed`` or ``ignored``."""
        await self.transact(_run, _MARK_INBOUND, {"iid": inbound_id, "st": status, "err": error})

    async def unfinished_inbound(self, *, replying: bool = False) -> Sequence[Any]:
        """Messages accepted but never answered (a crash or shutdown came first), oldest first;
        with ``replying``, also those whose recorded reply is not delivered yet.
        """
        statuses = (
            ("accepted", "processing", "replying") if replying else ("accepted", "processing")
        )
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(_IN).where(_IN.c.status.in_(statuses)).order_by(_IN.c.id)
            )
            return list(rows)

    async def inbound_status(self, inbound_id: int) -> str | None:
        """Where a stored message stands (a job run again checks before answering again)."""
        async with self.engine.connect() as conn:
            value = await conn.scalar(select(_IN.c.status).where(_IN.c.id == inbound_id))
            return None if value is None else str(value)

    async def pending_reply_for(self, inbound_id: int) -> Any | None:
        """The recorded, undelivered reply to a message."""
        async with self.engine.connect() as conn:
            row = await conn.execute(
                select(_REPLY)
                .where(_REPLY.c.inbound_id == inbound_id, _REPLY.c.status == "pending")
                .order_by(_REPLY.c.id.desc())
                .limit(1)
            )
            return row.first()

    async def last_failed(self, conversation: str) -> Any | None:
        """The newest failed message of a conversation, for ``/retry``."""
        async with self.engine.connect() as conn:
            row = await conn.execute(
                select(_IN)
                .where(_IN.c.conversation == conversation, _IN.c.status == "failed")
                .order_by(_IN.c.id.desc())
                .limit(1)
            )
            return row.first()

    # --- outbox ------------------------------------------------------------------------
    async def record_reply(
        self, inbound_id: int | None, address: Address, text: str, meta: ReplyMeta
    ) -> int:
        """Store a reply as pending, in one transaction with its inbound message moving to
        ``replying`` (it becomes answered or failed once the reply is delivered: until then the
        conversation's next message waits, so answers arrive in order).
        """
        values = {
            "inbound_id": inbound_id,
            "conversation": address.key,
            "platform": address.platform,
            "chat_id": address.chat_id,
            "thread_id": address.thread_id,
            "text": text,
            "status": "pending",
            "model": meta.model,
            "variant_id": meta.variant_id,
            "run_id": meta.run_id,
            "failure": meta.failure,
            "created_at": time.time(),
        }
        return await self.transact(_insert_reply, values)

    async def mark_reply_sent(self, reply_id: int, address: Address, ids: Sequence[str]) -> None:
        """Record the platform message ids a reply landed as (once: a repeat is a no-op)."""
        parts = [
            {
                "reply_id": reply_id,
                "platform": address.platform,
                "chat_id": address.chat_id,
                "message_id": mid,
                "position": i,
            }
            for i, mid in enumerate(ids)
        ]
        await self.transact(_mark_sent, reply_id, parts)

    # --- posts of replies in progress (see ReplyPostRow) ------------------------------
    async def record_post(self, key: str, address: Address, position: int, message_id: str) -> None:
        """Store the platform message a reply just posted at ``position`` (the hot path's one
        extra write per posted part); a repeat for the same position replaces the id.
        """
        values = {
            "key": key,
            "position": position,
            "platform": address.platform,
            "chat_id": address.chat_id,
            "message_id": message_id,
            "finished": False,
            "created_at": time.time(),
        }
        try:
            await self.transact(_insert_post, values)
        except (IntegrityError, sqlite3.IntegrityError):
            await self.transact(_replace_post, values)

    async def reply_posts(self, key: str) -> list[tuple[str, bool]]:
        """The messages a reply posted so far, by position: (message id, finished)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(_POST.c.message_id, _POST.c.finished)
                .where(_POST.c.key == key)
                .order_by(_POST.c.position)
            )
            return [(str(r.message_id), bool(r.finished)) for r in rows]

    async def forget_posts(self, key: str) -> None:
        """Drop a reply key's posts (``/retry`` answers a failed message in a new message)."""
        await self.transact(_run, _FORGET_POSTS, {"k": key})

    async def finish_posts(self, key: str, count: int) -> None:
        """Mark a reply's first ``count`` posts as its delivered final answer."""
        await self.transact(_run, _FINISH_POSTS, {"k": key, "n": count})

    async def pending_replies(self) -> Sequence[Any]:
        """Replies recorded but not confirmed sent (the process died in between)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(_REPLY).where(_REPLY.c.status == "pending").order_by(_REPLY.c.id)
            )
            return list(rows)

    async def reply_for_message(self, platform: str, chat_id: str, message_id: str) -> Any | None:
        """The reply that a platform message belongs to, if the bot sent it."""
        async with self.engine.connect() as conn:
            row = await conn.execute(
                select(_REPLY)
                .join(_PART, _PART.c.reply_id == _REPLY.c.id)
                .where(
                    _PART.c.platform == platform,
                    _PART.c.chat_id == chat_id,
                    _PART.c.message_id == message_id,
                )
            )
            return row.first()

    async def last_reply(self, conversation: str) -> Any | None:
        """The newest reply sent in a conversation (terminal ``/good`` and ``/bad`` rate it)."""
        async with self.engine.connect() as conn:
            row = await conn.execute(
                select(_REPLY, _PART.c.message_id)
                .join(_PART, _PART.c.reply_id == _REPLY.c.id)
                .where(_REPLY.c.conversation == conversation)
                .order_by(_REPLY.c.id.desc(), _PART.c.position.desc())
                .limit(1)
            )
            return row.first()

    # --- reactions ---------------------------------------------------------------------
    async def record_reaction(self, reaction: Reaction) -> int | None:
        """Store or remove a reaction; return the reply it rates (None if not a bot reply)."""
        reply = await self.reply_for_message(
            reaction.platform, reaction.chat.id, reaction.message_id
        )
        reply_id = int(reply.id) if reply is not None else None
        values = {
            "platform": reaction.platform,
            "chat_id": reaction.chat.id,
            "message_id": reaction.message_id,
            "reply_id": reply_id,
            "user_id": reaction.user.id,
            "emoji": reaction.emoji,
            "created_at": reaction.received_at,
        }
        await self.transact(_set_reaction, values, reaction.added)
        return reply_id

    async def reactions_for_reply(self, reply_id: int) -> Sequence[Any]:
        """Current reactions on a reply."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(_REACT).where(_REACT.c.reply_id == reply_id))
            return list(rows)

    # --- conversations -----------------------------------------------------------------
    async def epoch(self, conversation: str) -> int:
        """The conversation's current epoch (cached: only ``reset`` changes it)."""
        cached = self._epochs.get(conversation)
        if cached is not None:
            return cached
        async with self.engine.connect() as conn:
            value = await conn.scalar(select(_CONV.c.epoch).where(_CONV.c.key == conversation))
        self._epochs[conversation] = int(value or 0)
        return self._epochs[conversation]

    async def reset(self, conversation: str) -> int:
        """Start a new conversation in the same place: the graph thread id changes."""
        new = await self.epoch(conversation) + 1
        async with self.engine.begin() as conn:
            changed = await conn.execute(
                update(_CONV).where(_CONV.c.key == conversation).values(epoch=new)
            )
            if changed.rowcount == 0:
                await conn.execute(insert(_CONV).values(key=conversation, epoch=new))
        self._epochs[conversation] = new
        return new

    async def count_inbound(self) -> int:
        """How many messages were ever accepted (for ``/status`` and tests)."""
        async with self.engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(_IN)) or 0)


# --- the per-turn transactions, each written once for both runners ----------------------
_TO_REPLYING = (
    update(_IN)
    .where(_IN.c.id == bindparam("iid"))
    .values(status="replying", error=bindparam("err"))
)
_MARK_SENT = (
    update(_REPLY)
    .where(_REPLY.c.id == bindparam("rid"), _REPLY.c.status == "pending")
    .values(status="sent", sent_at=bindparam("at"))
    .returning(_REPLY.c.inbound_id, _REPLY.c.failure)
)
_TO_DONE = (
    update(_IN)
    .where(_IN.c.id == bindparam("iid"), _IN.c.status == "replying")
    .values(status=bindparam("st"))
)


def _insert_inbound(tx: Tx, values: dict[str, Any]) -> int:
    return tx.insert(_IN, values)


# Every write goes through ``transact`` (on SQLite: the writer thread, which waits out a full
# disk); statements are module constants because the writer caches their compiled SQL.
_MARK_INBOUND = (
    update(_IN)
    .where(_IN.c.id == bindparam("iid"))
    .values(status=bindparam("st"), error=bindparam("err"))
)
_FORGET_POSTS = delete(_POST).where(_POST.c.key == bindparam("k"))
_FINISH_POSTS = (
    update(_POST)
    .where(_POST.c.key == bindparam("k"), _POST.c.position < bindparam("n"))
    .values(finished=True)
)
_DROP_REACTION = delete(_REACT).where(
    _REACT.c.platform == bindparam("p"),
    _REACT.c.chat_id == bindparam("c"),
    _REACT.c.message_id == bindparam("m"),
    _REACT.c.user_id == bindparam("u"),
    _REACT.c.emoji == bindparam("e"),
)


def _run(tx: Tx, statement: Any, params: dict[str, Any]) -> None:
    tx.execute(statement, params)


def _set_reaction(tx: Tx, values: dict[str, Any], added: bool) -> None:
    """A reaction replaces the same person's same emoji on the message; a removal deletes it."""
    tx.execute(
        _DROP_REACTION,
        {
            "p": values["platform"],
            "c": values["chat_id"],
            "m": values["message_id"],
            "u": values["user_id"],
            "e": values["emoji"],
        },
    )
    if added:
        tx.insert(_REACT, values)


def _insert_post(tx: Tx, values: dict[str, Any]) -> None:
    tx.insert(_POST, values)


_DROP_POST = delete(_POST).where(
    _POST.c.key == bindparam("k"), _POST.c.position == bindparam("pos")
)


def _replace_post(tx: Tx, values: dict[str, Any]) -> None:
    tx.execute(_DROP_POST, {"k": values["key"], "pos": values["position"]})
    tx.insert(_POST, values)


def _insert_reply(tx: Tx, values: dict[str, Any]) -> int:
    """The reply goes in as pending; its message waits in ``replying`` until it is delivered
    (the conversation's next message waits for that, so answers arrive in order).
    """
    reply_id = tx.insert(_REPLY, values)
    if values["inbound_id"] is not None:
        tx.execute(_TO_REPLYING, {"iid": values["inbound_id"], "err": values["failure"]})
    return reply_id


def _mark_sent(tx: Tx, reply_id: int, parts: list[dict[str, Any]]) -> None:
    marked = tx.first(_MARK_SENT, {"rid": reply_id, "at": time.time()})
    if marked is None:
        return
    inbound_id, failure = marked[0], marked[1]
    if inbound_id is not None:
        tx.execute(_TO_DONE, {"iid": inbound_id, "st": "failed" if failure else "answered"})
    tx.insert_many(_PART, parts)
