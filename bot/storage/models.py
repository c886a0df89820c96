"""Core tables. Feature modules define their own tables on the same ``SQLModel.metadata``."""

from __future__ import annotations

import time

from sqlmodel import Field, Index, SQLModel, UniqueConstraint

__all__ = [
    "ConversationRow",
    "InboundRow",
    "ReactionRow",
    "ReplyPartRow",
    "ReplyPostRow",
    "ReplyRow",
]


def _now() -> float:
    return time.time()


class InboundRow(SQLModel, table=True):
    """Every accepted inbound message, stored before it is handled.

    ``status`` moves accepted -> answered (or failed, retryable); rows left ``accepted`` by a
    crash are handled again at the next start. Scale-out workers claim a row first
    (``processing`` with ``owner`` = worker id) so two workers never answer it twice.
    """

    __tablename__ = "inbound_messages"
    __table_args__ = (
        UniqueConstraint("platform", "event_id", name="uq_inbound_event"),
        # One index for a conversation's messages and its unfinished ones (migration 0012).
        Index("ix_inbound_messages_conversation_status", "conversation", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=32)
    event_id: str = Field(max_length=255)
    conversation: str = Field(max_length=512)
    chat_id: str = Field(max_length=255)
    thread_id: str | None = Field(default=None, max_length=255)
    message_id: str = Field(default="", max_length=255)
    user_id: str = Field(max_length=255, index=True)
    user_name: str = Field(default="", max_length=255)
    chat_kind: str = Field(default="direct", max_length=16)
    text: str
    attachments: str | None = Field(
        default=None, description="JSON list of the message's files (bot/storage/attachments.py)."
    )
    status: str = Field(default="accepted", max_length=16)
    owner: str | None = Field(default=None, max_length=64)
    claimed_at: float | None = Field(default=None, description="Owner's last sign of life.")
    error: str | None = None
    received_at: float = Field(default_factory=_now)


class ReplyRow(SQLModel, table=True):
    """The outbox: a reply is recorded before it is sent and marked when it landed."""

    __tablename__ = "replies"

    id: int | None = Field(default=None, primary_key=True)
    inbound_id: int | None = Field(default=None, foreign_key="inbound_messages.id", index=True)
    conversation: str = Field(index=True, max_length=512)
    platform: str = Field(max_length=32)
    chat_id: str = Field(max_length=255)
    thread_id: str | None = Field(default=None, max_length=255)
    text: str
    status: str = Field(default="pending", max_length=16)  # no index: 0012
    model: str = Field(default="", max_length=255)
    variant_id: int | None = Field(default=None)
    run_id: str = Field(default="", max_length=64)
    failure: str | None = Field(default=None, description="Model/tool failure behind this reply.")
    created_at: float = Field(default_factory=_now)
    sent_at: float | None = None


class ReplyPartRow(SQLModel, table=True):
    """Platform message ids of a sent reply (a long reply is several messages)."""

    __tablename__ = "reply_parts"
    __table_args__ = (UniqueConstraint("platform", "chat_id", "message_id", name="uq_reply_part"),)

    id: int | None = Field(default=None, primary_key=True)
    reply_id: int = Field(foreign_key="replies.id", index=True)
    platform: str = Field(max_length=32)
    chat_id: str = Field(max_length=255)
    message_id: str = Field(max_length=255)
    position: int = 0


class ReplyPostRow(SQLModel, table=True):
    """A platform message a reply posted, stored right after the post, before the reply is done.

    Keyed by the reply key (``in<inbound id>``, ``reply<reply id>``) and the part's position, so
    a turn restarted after a crash, or a gateway restarted mid-reply, edits the messages already
    posted instead of posting the answer again. ``finished`` marks the parts of a delivered
    reply: a repeated final operation (a worker resending it to a new gateway) returns them
    without touching the platform.
    """

    __tablename__ = "reply_posts"
    __table_args__ = (UniqueConstraint("key", "position", name="uq_reply_post"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=64)
    position: int = 0
    platform: str = Field(max_length=32)
    chat_id: str = Field(max_length=255)
    message_id: str = Field(max_length=255)
    finished: bool = False
    created_at: float = Field(default_factory=_now)


class ReactionRow(SQLModel, table=True):
    """One user's current reaction with one emoji on one message (removed ones are deleted)."""

    __tablename__ = "reactions"
    __table_args__ = (
        UniqueConstraint("platform", "chat_id", "message_id", "user_id", "emoji", name="uq_react"),
    )

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=32)
    chat_id: str = Field(max_length=255)
    message_id: str = Field(max_length=255)
    reply_id: int | None = Field(default=None, foreign_key="replies.id", index=True)
    user_id: str = Field(max_length=255)
    emoji: str = Field(max_length=64)
    created_at: float = Field(default_factory=_now)


class ConversationRow(SQLModel, table=True):
    """Per-conversation state outside the graph: the epoch ``/reset`` bumps."""

    __tablename__ = "conversations"

    key: str = Field(primary_key=True, max_length=512)
    epoch: int = 0
    updated_at: float = Field(default_factory=_now)
