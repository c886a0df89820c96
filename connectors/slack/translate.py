"""Slack payloads to core events: a dispatch table keyed on the Events API event type.

Everything here is pure (no I/O), so it is tested with plain dicts shaped like Slack's.
A payload of the wrong shape raises :class:`~bot.quarantine.PoisonEvent` (the connector keeps
it aside and acknowledges it); every event that comes out has its text cleaned of lone
surrogates (``opencomputer.bot.text.clean_event``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass
from typing import Any

from opencomputer.bot import text as core_text
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

__all__ = [
    "HANDLED_EVENTS",
    "PLATFORM",
    "BotIdentity",
    "clean_text",
    "emoji_name",
    "emoji_unicode",
    "translate_command",
    "translate_event",
]

PLATFORM = "slack"

Payload = Mapping[str, Any]
SlackEvent = Message | Reaction | None
Threads = Container[Any]


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """Who the bot is in this workspace, from ``auth.test``."""

    user_id: str
    bot_id: str = ""
    team_id: str = ""


# Subtypes that are still a person writing; every other subtype (bot_message, message_changed,
# channel_join, ...) is bookkeeping the agent must not answer.
_USER_SUBTYPES = frozenset({None, "file_share", "thread_broadcast"})

_EMOJI = {
    "+1": "👍",
    "thumbsup": "👍",
    "-1": "👎",
    "thumbsdown": "👎",
    "heart": "❤️",
    "tada": "🎉",
    "joy": "😂",
    "smile": "😄",
    "slightly_smiling_face": "🙂",
    "pray": "🙏",
    "fire": "🔥",
    "eyes": "👀",
    "rocket": "🚀",
    "100": "💯",
    "white_check_mark": "✅",
    "heavy_check_mark": "✔️",
    "x": "❌",
    "thinking_face": "🤔",
    "confused": "😕",
    "disappointed": "😞",
    "rage": "😡",
    "clap": "👏",
    "star": "⭐",
    "ok_hand": "👌",
    "warning": "⚠️",
}
_NAMES = {emoji: name for name, emoji in reversed(_EMOJI.items())}  # first name wins


def emoji_unicode(name: str) -> str:
    """Slack's emoji name (``+1``, ``+1::skin-tone-3``) as the unicode emoji when known."""
    base = name.strip(":").split("::", 1)[0]
    return _EMOJI.get(base, base)


def emoji_name(emoji: str) -> str:
    """Return the Slack name ``reactions.add`` wants for a unicode emoji or a ``:name:``."""
    return _NAMES.get(emoji, emoji.strip(":"))


_LINK = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")


def clean_text(text: str, bot_user_id: str = "") -> str:
    """Turn Slack's inbound markup back into what a person typed.

    The bot's own mention is removed, links and mentions made readable, entities decoded.
    """

    def link(m: re.Match[str]) -> str:
        target, label = m.group(1), m.group(2)
        if target.startswith("@"):
            return "" if target[1:] == bot_user_id else "@" + (label or target[1:]).lstrip("@")
        if target.startswith("#"):
            return f"#{label or target[1:]}"
        if target.startswith("!"):
            return "@" + (label or target[1:].split("^")[0]).lstrip("@")
        if label and label != target.removeprefix("mailto:"):
            return f"{label} ({target})"
        return target.removeprefix("mailto:") if label else target

    text = _LINK.sub(link, text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def _chat(channel: str, channel_type: str | None) -> Chat:
    direct = channel_type == "im" or (channel_type is None and channel.startswith("D"))
    return Chat(PLATFORM, channel, ChatKind.DIRECT if direct else ChatKind.GROUP)


def _event_id(body: Payload, event: Payload) -> str:
    return str(body.get("event_id") or f"{event.get('channel', '')}:{event.get('ts', '')}")


def _attachments(event: Payload) -> tuple[Attachment, ...]:
    """The files shared with a message (``file_share``); the handle is ``url_private_download``,
    fetched with the bot token. Files without one (hidden by the plan's limit, deleted, or in
    Slack Connect awaiting ``files.info``) are left out.
    """
    found: list[Attachment] = []
    for item in event.get("files") or ():
        if not isinstance(item, Mapping):
            continue
        url = item.get("url_private_download") or item.get("url_private")
        if not isinstance(url, str) or not url:
            continue
        name = str(item.get("name") or item.get("title") or "file")
        mime = str(item.get("mimetype") or "")
        size = item.get("size")
        size = size if isinstance(size, int) and not isinstance(size, bool) else None
        # a recorded audio clip is AAC in MP4, at times labelled video/mp4: its subtype tells
        audio = item.get("subtype") == "slack_audio"
        kind = AttachmentKind.AUDIO if audio else claimed_kind(mime, name)
        found.append(Attachment(kind, url, name, mime, size))
    return tuple(found)


def _message(body: Payload, event: Payload, me: BotIdentity, threads: Threads) -> SlackEvent:
    if event.get("subtype") not in _USER_SUBTYPES or event.get("bot_id"):
        return None
    user, channel = event.get("user"), str(event.get("channel", ""))
    if not user or user == me.user_id or not channel:
        return None
    chat = _chat(channel, event.get("channel_type"))
    raw_text = str(event.get("text") or "")
    thread = event.get("thread_ts")
    addressed = True
    if chat.kind is ChatKind.GROUP:
        if me.user_id and f"<@{me.user_id}" in raw_text:
            return None  # the app_mention event for the same message is the one we answer
        # Un-mentioned channel talk is addressed only inside a thread the bot takes part in.
        addressed = bool(thread) and (
            (channel, thread) in threads or event.get("parent_user_id") == me.user_id
        )
    return Message(
        platform=PLATFORM,
        event_id=_event_id(body, event),
        chat=chat,
        user=User(PLATFORM, str(user)),
        thread_id=str(thread) if thread else None,
        text=clean_text(raw_text, me.user_id),
        message_id=str(event.get("ts", "")),
        addressed=addressed,
        raw=body,
        attachments=_attachments(event),
    )


def _mention(body: Payload, event: Payload, me: BotIdentity, threads: Threads) -> SlackEvent:
    if event.get("bot_id") or not event.get("user") or event.get("user") == me.user_id:
        return None
    channel = str(event.get("channel", ""))
    thread = event.get("thread_ts")
    return Message(
        platform=PLATFORM,
        event_id=_event_id(body, event),
        chat=_chat(channel, event.get("channel_type")),
        user=User(PLATFORM, str(event["user"])),
        thread_id=str(thread) if thread else None,
        text=clean_text(str(event.get("text") or ""), me.user_id),
        message_id=str(event.get("ts", "")),
        addressed=True,
        raw=body,
        attachments=_attachments(event),
    )


def _reaction(body: Payload, event: Payload, me: BotIdentity, threads: Threads) -> SlackEvent:
    item = _object(event.get("item") or {}, "event.item")
    user = event.get("user")
    if item.get("type") != "message" or not user or user == me.user_id:
        return None
    if me.user_id and event.get("item_user") not in (None, me.user_id):
        return None  # feedback is about the bot's replies only
    channel = str(item.get("channel", ""))
    return Reaction(
        platform=PLATFORM,
        event_id=_event_id(body, event),
        chat=_chat(channel, None),
        user=User(PLATFORM, str(user)),
        message_id=str(item.get("ts", "")),
        emoji=emoji_unicode(str(event.get("reaction", ""))),
        added=event.get("type") == "reaction_added",
        raw=body,
    )


_DISPATCH: dict[str, Callable[[Payload, Payload, BotIdentity, Threads], SlackEvent]] = {
    "message": _message,
    "app_mention": _mention,
    "reaction_added": _reaction,
    "reaction_removed": _reaction,
}


HANDLED_EVENTS = frozenset(_DISPATCH)
"""Events API types that become core events (the manifest subscribes to exactly these)."""


def translate_event(body: Payload, me: BotIdentity, threads: Threads = ()) -> SlackEvent:
    """Translate an Events API envelope (``{"event_id", "event": {...}}``); None to ignore.

    ``threads`` holds ``(channel, thread_ts)`` pairs the bot answered in, so follow-ups there
    count as addressed to it without a mention.
    """
    event = _object(_object(body, "the envelope").get("event") or {}, "event")
    handler = _DISPATCH.get(str(event.get("type", "")))
    if handler is None:
        return None
    try:
        return core_text.clean_event(handler(body, event, me, threads))
    except (AttributeError, TypeError, ValueError, KeyError) as exc:  # fields of wrong types
        raise PoisonEvent(f"malformed {event.get('type')} event: {exc}") from exc


def _object(value: Any, what: str) -> Payload:
    if not isinstance(value, Mapping):
        raise PoisonEvent(f"{what} is a {type(value).__name__}, not an object")
    return value


def translate_command(body: Payload) -> Command:
    """Translate a slash command: ``/oc reset now`` is ``Command(name="reset", args="now")``."""
    words = str(_object(body, "the command").get("text") or "").strip().split(maxsplit=1)
    name = words[0].lstrip("/").lower() if words else "help"
    channel = str(body.get("channel_id", ""))
    direct = body.get("channel_name") == "directmessage" or channel.startswith("D")
    trigger = body.get("trigger_id") or f"{channel}:{body.get('user_id')}:{body.get('text')}"
    command = Command(
        platform=PLATFORM,
        event_id=f"cmd:{trigger}",
        chat=Chat(PLATFORM, channel, ChatKind.DIRECT if direct else ChatKind.GROUP),
        user=User(PLATFORM, str(body.get("user_id", "")), name=str(body.get("user_name", ""))),
        name=name,
        args=clean_text(words[1]) if len(words) > 1 else "",
        raw=body,
    )
    return core_text.clean_event(command)
