"""Inbound translation: nio room events -> core events, by a dispatch table on the event class.

Only the pure parts live here (who spoke, was the bot addressed, which thread, is it a
command); questions that need the homeserver ("did the bot send that event?") are answered by
an injected async predicate, so this module stays free of I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from nio import Event as NioEvent
from nio import (
    MatrixRoom,
    ReactionEvent,
    RoomEncryptedAudio,
    RoomEncryptedFile,
    RoomEncryptedImage,
    RoomEncryptedMedia,
    RoomEncryptedVideo,
    RoomMessageAudio,
    RoomMessageEmote,
    RoomMessageFile,
    RoomMessageImage,
    RoomMessageText,
    RoomMessageVideo,
)

from opencomputer.bot.attachments import claimed_kind
from opencomputer.bot.events import (
    Attachment,
    AttachmentKind,
    Chat,
    ChatKind,
    Command,
    Message,
    Reaction,
    User,
)
from opencomputer.bot.quarantine import PoisonEvent
from opencomputer.bot.text import clean_event

__all__ = ["PLATFORM", "Translator", "chat_for", "parse_event", "relation"]

PLATFORM = "matrix"

IsOwnEvent = Callable[[str, str], Awaitable[bool]]
"""(room id, event id) -> whether the bot sent that event."""


def relation(source: dict[str, Any]) -> dict[str, Any]:
    """Return the event's ``m.relates_to`` (empty when absent or malformed)."""
    rel = source.get("content", {}).get("m.relates_to")
    return rel if isinstance(rel, dict) else {}


def _str(value: Any) -> str | None:
    """Event ids from other clients' content are untrusted: only non-empty strings count."""
    return value if isinstance(value, str) and value else None


def parse_event(source: Any) -> Any:
    """Parse one raw room event with matrix-nio; :class:`PoisonEvent` if nio cannot.

    nio returns ``BadEvent`` for content that fails its schema (the translator ignores those)
    but raises on some top-level fields of the wrong type.
    """
    if not isinstance(source, dict):
        raise PoisonEvent(f"an event must be an object, not {type(source).__name__}")
    try:
        return NioEvent.parse_event(source)
    except Exception as exc:
        raise PoisonEvent(f"matrix-nio cannot parse it: {type(exc).__name__}: {exc}") from exc


_KINDS = {
    "m.image": AttachmentKind.IMAGE,
    "m.audio": AttachmentKind.AUDIO,
    "m.video": AttachmentKind.VIDEO,
}


def media(event: Any) -> tuple[str, tuple[Attachment, ...]]:
    """The caption and the file of an ``m.image``/``m.audio``/``m.video``/``m.file`` event.

    ``body`` is the file name, unless a separate ``filename`` is given: then ``body`` is the
    caption (Matrix 1.10). The handle is JSON: the ``mxc://`` URI, plus the key, IV and hash
    that decrypt it for media sent in encrypted rooms (``content.file``).
    """
    content = event.source.get("content", {})
    body = str(content.get("body") or "")
    filename = content.get("filename")
    if isinstance(filename, str) and filename and filename != body:
        name, caption = filename, body
    else:
        name, caption = body or "file", ""
    info = content.get("info")
    info = info if isinstance(info, dict) else {}
    mime = str(info.get("mimetype") or "")
    size = info.get("size")
    size = size if isinstance(size, int) and not isinstance(size, bool) else None
    ref: dict[str, Any] = {"url": str(event.url)}
    if isinstance(event, RoomEncryptedMedia):
        ref.update(key=event.key, iv=event.iv, hashes=event.hashes)
        mime = mime or str(event.mimetype or "")
    kind = _KINDS.get(str(content.get("msgtype"))) or claimed_kind(mime, name)
    return caption, (Attachment(kind, json.dumps(ref), name, mime, size),)


def chat_for(room: MatrixRoom) -> Chat:
    """Describe a room; one with at most two members (joined or invited) is a DM."""
    kind = ChatKind.DIRECT if room.member_count <= 2 else ChatKind.GROUP
    return Chat(PLATFORM, room.room_id, kind, room.display_name)


@dataclass(slots=True)
class Translator:
    """Turns the room events the bot cares about into core events."""

    user_id: str
    is_own_event: IsOwnEvent
    command_prefix: str = "!"
    display_name: str = ""

    async def translate(self, room: MatrixRoom, event: Any) -> Message | Command | Reaction | None:
        """Return the core event for ``event``, or None when it is not for the core.

        Texts come out cleaned of lone surrogates; content of the wrong types raises
        :class:`~bot.quarantine.PoisonEvent` (the connector quarantines the event).
        """
        if event.sender == self.user_id:
            return None
        handler = _DISPATCH.get(type(event))
        if handler is None:
            return None
        try:
            core = await handler(self, room, event)
        except (AttributeError, TypeError, ValueError, KeyError) as exc:  # fields of wrong types
            raise PoisonEvent(f"malformed {type(event).__name__}: {exc}") from exc
        return clean_event(core)

    def user(self, room: MatrixRoom, user_id: str) -> User:
        """Return the core user for ``user_id``, named as the room shows them."""
        return User(PLATFORM, user_id, room.user_name(user_id) or user_id)

    async def _message(self, room: MatrixRoom, event: Any) -> Message | Command | None:
        rel = relation(event.source)
        if rel.get("rel_type") == "m.replace":
            return None  # a user's edit: the original was handled already
        thread_id = _str(rel.get("event_id")) if rel.get("rel_type") == "m.thread" else None
        reply = rel.get("m.in_reply_to", {})
        replied = _str(reply.get("event_id")) if isinstance(reply, dict) else None
        # In a thread the reply is usually a fallback to the thread's latest event, not one the
        # user chose; it still tells whether they answered the bot.
        reply_to = None if rel.get("is_falling_back") else replied
        chat = chat_for(room)
        body, attachments = (event.body, ()) if isinstance(event, _TEXTS) else media(event)
        text, mentioned = self._strip_mention(body.strip())
        if isinstance(event, RoomMessageEmote):
            text = f"* {room.user_name(event.sender) or event.sender} {text}"
        common: dict[str, Any] = {
            "platform": PLATFORM,
            "event_id": event.event_id,
            "chat": chat,
            "user": self.user(room, event.sender),
            "thread_id": thread_id,
            "raw": event.source,
        }
        prefix = self.command_prefix
        if not attachments and prefix and text.startswith(prefix) and len(text) > len(prefix):
            name, _, args = text[len(prefix) :].partition(" ")
            if name and not name[0].isspace():
                return Command(
                    **common, name=name.lower(), args=args.strip(), message_id=event.event_id
                )
        addressed = (
            chat.kind is ChatKind.DIRECT
            or mentioned
            or self._mentions_me(event.source)
            or bool(replied and await self.is_own_event(room.room_id, replied))
        )
        if not addressed and thread_id:
            addressed = await self.is_own_event(room.room_id, thread_id)
        return Message(
            **common,
            text=text,
            message_id=event.event_id,
            reply_to=reply_to,
            addressed=addressed,
            attachments=attachments,
        )

    async def _reaction(self, room: MatrixRoom, event: ReactionEvent) -> Reaction | None:
        if not await self.is_own_event(room.room_id, event.reacts_to):
            return None  # feedback is only about the bot's own messages
        return Reaction(
            platform=PLATFORM,
            event_id=event.event_id,
            chat=chat_for(room),
            user=self.user(room, event.sender),
            message_id=event.reacts_to,
            emoji=event.key.replace("\ufe0f", ""),  # 👍️ and 👍 are the same feedback
            raw=event.source,
        )

    def _names(self) -> list[str]:
        localpart = self.user_id.lstrip("@").split(":", 1)[0]
        names = [self.user_id, localpart]
        if self.display_name and self.display_name not in names:
            names.append(self.display_name)
        return [n for n in names if len(n) >= 2]

    def _strip_mention(self, text: str) -> tuple[str, bool]:
        """Remove a leading ``name:``/``@name,`` address; report whether one was there."""
        for name in sorted(self._names(), key=len, reverse=True):
            match = re.match(rf"@?{re.escape(name)}\s*[:,]\s*", text, flags=re.IGNORECASE)
            if match is None and name == self.user_id:
                match = re.match(rf"{re.escape(name)}\s+", text)
            if match:
                return text[match.end() :].strip(), True
        return text, False

    def _mentions_me(self, source: dict[str, Any]) -> bool:
        content = source.get("content", {})
        mentions = content.get("m.mentions")
        if isinstance(mentions, dict) and self.user_id in (mentions.get("user_ids") or []):
            return True
        html = unquote(str(content.get("formatted_body", "")))
        if f"matrix.to/#/{self.user_id}" in html:
            return True
        body = str(content.get("body", ""))
        if self.user_id in body:
            return True
        name = self.display_name
        return bool(name) and re.search(rf"(?<!\w){re.escape(name)}(?!\w)", body, re.I) is not None


_Handler = Callable[[Translator, MatrixRoom, Any], Awaitable[Any]]
_TEXTS = (RoomMessageText, RoomMessageEmote)

_DISPATCH: dict[type, _Handler] = {
    RoomMessageText: Translator._message,
    RoomMessageEmote: Translator._message,
    RoomMessageImage: Translator._message,
    RoomMessageAudio: Translator._message,
    RoomMessageVideo: Translator._message,
    RoomMessageFile: Translator._message,
    RoomEncryptedImage: Translator._message,
    RoomEncryptedAudio: Translator._message,
    RoomEncryptedVideo: Translator._message,
    RoomEncryptedFile: Translator._message,
    ReactionEvent: Translator._reaction,
}
