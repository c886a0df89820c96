"""Telegram updates to core events, by a dispatch table keyed on the update's kind.

Nothing here does I/O: it takes a python-telegram-bot ``Update`` and who the bot is, and returns
the neutral events it stands for (none for updates the core has no use for).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from telegram import Chat as TgChat
from telegram import Message as TgMessage
from telegram import MessageEntity, MessageReactionUpdated, ReactionType, Update
from telegram import User as TgUser
from telegram.constants import ChatType

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

__all__ = ["ALLOWED_UPDATES", "PLATFORM", "BotIdentity", "translate_update"]

PLATFORM = "telegram"

ALLOWED_UPDATES = ["message", "message_reaction"]
"""What the bot asks Telegram for. ``message_reaction`` is not in Telegram's default set."""

_COMMAND = re.compile(r"^/([A-Za-z0-9_]{1,64})(?:@([A-Za-z0-9_]+))?(?:\s+(.*))?$", re.DOTALL)

TgEvent = Message | Reaction | Command


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """Who the bot is: mentions, replies and ``/cmd@name`` are judged against it."""

    id: int
    username: str


def _user(tg_user: TgUser) -> User:
    name = tg_user.full_name or tg_user.username or ""
    return User(PLATFORM, str(tg_user.id), name=name, is_bot=bool(tg_user.is_bot))


def _chat(tg_chat: TgChat) -> Chat:
    kind = ChatKind.DIRECT if tg_chat.type == ChatType.PRIVATE else ChatKind.GROUP
    title = tg_chat.title or tg_chat.full_name or ""
    return Chat(PLATFORM, str(tg_chat.id), kind=kind, title=title)


def message_event_id(chat_id: int | str, message_id: int | str) -> str:
    """Event id of a message: the same for every delivery of it (polling, webhook, replay)."""
    return f"{chat_id}:{message_id}"


def _thread(msg: TgMessage) -> str | None:
    """Forum topics are separate conversations; reply threads in plain groups are not."""
    if msg.is_topic_message and msg.message_thread_id:
        return str(msg.message_thread_id)
    return None


def _real_reply(msg: TgMessage) -> TgMessage | None:
    """Return the message replied to, minus the topic-root 'reply' of forum messages."""
    target = msg.reply_to_message
    if target is None or target.forum_topic_created is not None:
        return None
    if msg.is_topic_message and target.message_id == msg.message_thread_id:
        return None
    return target


def _mentions(msg: TgMessage, me: BotIdentity) -> bool:
    entities = msg.parse_entities() if msg.text else msg.parse_caption_entities()
    for entity, text in entities.items():
        if entity.type == MessageEntity.MENTION and text[1:].lower() == me.username.lower():
            return True
        if entity.type == MessageEntity.TEXT_MENTION and entity.user and entity.user.id == me.id:
            return True
    return False


def _strip_mention(text: str, me: BotIdentity) -> str:
    """Drop a leading ``@bot`` (and punctuation after it): it addresses, it is not content."""
    pattern = rf"^\s*@{re.escape(me.username)}\b[\s,:;.!-]*"
    return re.sub(pattern, "", text, count=1, flags=re.IGNORECASE)


def _attachments(msg: TgMessage) -> tuple[Attachment, ...]:
    """The files of a message; the handle is the ``file_id`` that ``getFile`` resolves.

    A photo comes in several sizes: the largest is taken. Types and names are the sender's
    client's claims (the bytes are sniffed when fetched).
    """
    found: list[Attachment] = []
    if msg.photo:
        best = max(msg.photo, key=lambda p: (p.width * p.height, p.file_size or 0))
        found.append(
            Attachment(
                AttachmentKind.IMAGE, best.file_id, "photo.jpg", "image/jpeg", best.file_size
            )
        )
    media = (
        (msg.voice, AttachmentKind.AUDIO, "voice.ogg"),
        (msg.audio, AttachmentKind.AUDIO, "audio"),
        (msg.video, AttachmentKind.VIDEO, "video.mp4"),
        (msg.video_note, AttachmentKind.VIDEO, "video_note.mp4"),
        (msg.animation, AttachmentKind.VIDEO, "animation.mp4"),
        (msg.document, AttachmentKind.DOCUMENT, "document"),
    )
    for item, kind, default_name in media:
        if item is None:
            continue
        name = getattr(item, "file_name", None) or default_name
        mime = getattr(item, "mime_type", None) or ""
        found.append(Attachment(kind, item.file_id, name, mime, item.file_size))
    return tuple(found)


def _from_message(update: Update, me: BotIdentity) -> list[TgEvent]:
    msg = update.message
    if msg is None or msg.from_user is None:
        return []
    if msg.from_user.id == me.id:
        return []  # the bot's own message
    text = msg.text if msg.text is not None else msg.caption
    attachments = _attachments(msg)
    if not text and not attachments:
        return []
    text = text or ""
    chat, user, thread = _chat(msg.chat), _user(msg.from_user), _thread(msg)
    event_id = message_event_id(msg.chat.id, msg.message_id)
    match = _COMMAND.match(text.strip())
    if match and msg.text is not None:
        name, target, args = match.groups()
        if target and target.lower() != me.username.lower():
            return []  # /cmd@otherbot
        return [
            Command(
                platform=PLATFORM,
                event_id=event_id,
                chat=chat,
                user=user,
                thread_id=thread,
                raw=update,
                name=name.lower(),
                args=(args or "").strip(),
                message_id=str(msg.message_id),
            )
        ]
    reply = _real_reply(msg)
    replied_to_bot = bool(reply and reply.from_user and reply.from_user.id == me.id)
    addressed = chat.kind is ChatKind.DIRECT or replied_to_bot or _mentions(msg, me)
    return [
        Message(
            platform=PLATFORM,
            event_id=event_id,
            chat=chat,
            user=user,
            thread_id=thread,
            raw=update,
            text=_strip_mention(text, me) or text,
            message_id=str(msg.message_id),
            reply_to=str(reply.message_id) if reply else None,
            addressed=addressed,
            attachments=attachments,
        )
    ]


def reaction_key(reaction: ReactionType) -> str:
    """Name a reaction: the emoji itself; custom emoji and paid stars get stable pseudo-names."""
    emoji = getattr(reaction, "emoji", None)
    if emoji:
        return str(emoji)
    custom = getattr(reaction, "custom_emoji_id", None)
    return f"custom:{custom}" if custom else str(reaction.type)


def _from_reaction(update: Update, me: BotIdentity) -> list[TgEvent]:
    change: MessageReactionUpdated | None = update.message_reaction
    if change is None:
        return []
    if change.user is not None:
        if change.user.id == me.id:
            return []
        user = _user(change.user)
    elif change.actor_chat is not None:  # anonymous group admin
        user = User(PLATFORM, str(change.actor_chat.id), name=change.actor_chat.title or "")
    else:
        return []
    old = [reaction_key(r) for r in change.old_reaction]
    new = [reaction_key(r) for r in change.new_reaction]
    events: list[TgEvent] = []
    for emoji, added in [(e, False) for e in old if e not in new] + [
        (e, True) for e in new if e not in old
    ]:
        events.append(
            Reaction(
                platform=PLATFORM,
                event_id=f"u{update.update_id}:{'+' if added else '-'}{emoji}",
                chat=_chat(change.chat),
                user=user,
                raw=update,
                message_id=str(change.message_id),
                emoji=emoji,
                added=added,
            )
        )
    return events


_DISPATCH: dict[str, Callable[[Update, BotIdentity], list[TgEvent]]] = {
    "message": _from_message,
    "message_reaction": _from_reaction,
}


def translate_update(update: Update, me: BotIdentity) -> list[TgEvent]:
    """Return the core events an update stands for (an empty list for anything else).

    python-telegram-bot takes fields of the wrong type as they come (a list for a text, no
    chat): such an update raises :class:`~bot.quarantine.PoisonEvent`. Every text in the
    events is cleaned of lone surrogates.
    """
    for kind, handler in _DISPATCH.items():
        if getattr(update, kind, None) is not None:
            try:
                events = handler(update, me)
            except (AttributeError, TypeError, ValueError, KeyError, IndexError) as exc:
                raise PoisonEvent(f"malformed {kind}: {type(exc).__name__}: {exc}") from exc
            return [clean_event(e) for e in events]
    return []
