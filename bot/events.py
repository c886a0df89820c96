"""The platform-neutral event model.

Connectors translate platform payloads into these frozen values and back; nothing past a
connector ever sees a platform dict (it rides along in ``raw`` for debugging only).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from opencomputer.bot.text import clean_text

__all__ = [
    "Address",
    "Attachment",
    "AttachmentKind",
    "Chat",
    "ChatKind",
    "Command",
    "Event",
    "Message",
    "Reaction",
    "User",
]


class ChatKind(StrEnum):
    """Whether a chat is one person talking to the bot or a shared room."""

    DIRECT = "direct"
    GROUP = "group"


@dataclass(frozen=True, slots=True)
class User:
    """A platform account. Equal when platform and id match, whatever the display name."""

    platform: str
    id: str
    name: str = field(default="", compare=False)
    is_bot: bool = field(default=False, compare=False)

    @property
    def key(self) -> str:
        """The key access control and identity linking use: ``platform:id``."""
        return f"{self.platform}:{self.id}"


@dataclass(frozen=True, slots=True)
class Chat:
    """A place messages are exchanged in (DM, group, channel, room)."""

    platform: str
    id: str
    kind: ChatKind = field(default=ChatKind.DIRECT, compare=False)
    title: str = field(default="", compare=False)

    @property
    def key(self) -> str:
        """The key group allow-lists use: ``platform:chat_id``."""
        return f"{self.platform}:{self.id}"


class AttachmentKind(StrEnum):
    """What an attached file is, broadly: the core routes on this (speech, vision, documents)."""

    AUDIO = "audio"
    IMAGE = "image"
    VIDEO = "video"
    DOCUMENT = "document"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file that came with a message, not yet downloaded.

    Until its bytes are fetched, ``kind``, ``mime``, ``size`` and ``name`` are the platform's
    claims: hints that the sender's client chose. Fetching (``bot.attachments.fetch``, through
    the connector that made it) enforces the size cap while reading and returns a copy whose
    ``mime`` and ``kind`` come from the bytes (``sniffed`` set). ``handle`` is what that
    connector needs to download the file again (a Telegram ``file_id``, a URL, a JSON object
    with a Matrix ``mxc://`` URI and its decryption keys): plain text, so a message stored
    before a crash can fetch its files after the restart.
    """

    kind: AttachmentKind
    handle: str = field(repr=False)
    name: str = ""
    mime: str = ""
    size: int | None = None
    sniffed: bool = False

    def __post_init__(self) -> None:
        # Names and types come from the sender's client: a lone surrogate would not store.
        for spec in ("name", "mime"):
            value = getattr(self, spec)
            cleaned = clean_text(value)
            if cleaned is not value:
                object.__setattr__(self, spec, cleaned)

    def to_json(self) -> dict[str, Any]:
        """The stored form (see :meth:`from_json`)."""
        return {
            "kind": str(self.kind),
            "handle": self.handle,
            "name": self.name,
            "mime": self.mime,
            "size": self.size,
            "sniffed": self.sniffed,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Attachment:
        """Rebuild a stored attachment; an unknown kind reads as ``other``."""
        kind = data.get("kind")
        size = data.get("size")
        return cls(
            kind=AttachmentKind(kind) if kind in set(AttachmentKind) else AttachmentKind.OTHER,
            handle=str(data["handle"]),
            name=str(data.get("name") or ""),
            mime=str(data.get("mime") or ""),
            size=size if isinstance(size, int) and not isinstance(size, bool) else None,
            sniffed=bool(data.get("sniffed", False)),
        )


@dataclass(frozen=True, slots=True)
class Address:
    """Where a reply goes: a chat, and optionally a thread/topic inside it.

    It is also the conversation key: one conversation per platform + chat (+ thread).
    """

    platform: str
    chat_id: str
    thread_id: str | None = None

    @property
    def key(self) -> str:
        """Stable string form, used as the conversation id in storage and checkpoints."""
        base = f"{self.platform}:{self.chat_id}"
        return f"{base}:{self.thread_id}" if self.thread_id else base

    @classmethod
    def parse(cls, key: str) -> Address:
        """Inverse of :attr:`key` (chat ids never contain ':' on the platforms we support)."""
        platform, _, rest = key.partition(":")
        chat_id, _, thread = rest.partition(":")
        return cls(platform, chat_id, thread or None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Fields every inbound event carries."""

    platform: str
    event_id: str
    chat: Chat
    user: User
    thread_id: str | None = None
    raw: Any = field(default=None, compare=False, repr=False)
    received_at: float = field(default_factory=time.time, compare=False)

    @property
    def address(self) -> Address:
        """The conversation this event belongs to (and where answers go)."""
        return Address(self.platform, self.chat.id, self.thread_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class Message(Event):
    """A user wrote something.

    ``addressed`` is the connector's verdict on whether the bot was spoken to (DM, mention,
    reply to the bot); group policy decides what to do with messages that were not.
    """

    text: str
    message_id: str = ""
    reply_to: str | None = None
    addressed: bool = True
    attachments: tuple[Attachment, ...] = ()
    """Files sent with the message; a message may be files alone (``text`` empty)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Reaction(Event):
    """A user added or removed an emoji on a message (usually one of the bot's)."""

    message_id: str
    emoji: str
    added: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Command(Event):
    """A user invoked a command (``/name args`` or a native slash command)."""

    name: str
    args: str = ""
    message_id: str = ""
