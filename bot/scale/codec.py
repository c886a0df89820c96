"""Core events <-> compact JSON, for the stream between gateway and workers."""

from __future__ import annotations

from typing import Any

import orjson

from opencomputer.bot.events import Attachment, Chat, ChatKind, Command, Message, User

__all__ = ["decode_event", "encode_event"]


def encode_event(event: Message | Command) -> bytes:
    """Serialise a message or command (the raw platform payload stays behind)."""
    data: dict[str, Any] = {
        "t": "c" if isinstance(event, Command) else "m",
        "p": event.platform,
        "e": event.event_id,
        "c": [event.chat.id, str(event.chat.kind), event.chat.title],
        "u": [event.user.id, event.user.name, event.user.is_bot],
        "th": event.thread_id,
        "at": event.received_at,
    }
    if isinstance(event, Command):
        data.update(n=event.name, a=event.args, mid=event.message_id)
    else:
        data.update(x=event.text, mid=event.message_id, r=event.reply_to, ad=event.addressed)
        if event.attachments:  # handles only: the bytes are fetched by whoever needs them
            data["f"] = [a.to_json() for a in event.attachments]
    return orjson.dumps(data)


def decode_event(raw: bytes | str) -> Message | Command:
    """Inverse of :func:`encode_event`."""
    data = orjson.loads(raw)
    platform = data["p"]
    chat_id, kind, title = data["c"]
    user_id, name, is_bot = data["u"]
    common: dict[str, Any] = {
        "platform": platform,
        "event_id": data["e"],
        "chat": Chat(platform, chat_id, ChatKind(kind), title),
        "user": User(platform, user_id, name, is_bot),
        "thread_id": data["th"],
        "received_at": data["at"],
    }
    if data["t"] == "c":
        return Command(**common, name=data["n"], args=data["a"], message_id=data["mid"])
    return Message(
        **common,
        text=data["x"],
        message_id=data["mid"],
        reply_to=data["r"],
        addressed=data["ad"],
        attachments=tuple(Attachment.from_json(a) for a in data.get("f", ())),
    )
