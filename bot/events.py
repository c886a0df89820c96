"""The platform-neutral event model.

Connectors translate platform payloads into these frozen values and back; nothing past a
connector ever sees a platform dict (it rides along in ``raw`` for debugging only).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "Address",
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
