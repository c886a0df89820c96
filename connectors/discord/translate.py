"""Discord objects -> core events.

Pure functions over discord.py models, keyed by what arrived (message, raw reaction,
application-command interaction). Where a message was said is resolved by the connector
beforehand (a thread's parent may need a REST lookup) and passed in as a :class:`Place`.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import discord

from opencomputer.bot.attachments import claimed_kind
from opencomputer.bot.events import Attachment, Chat, ChatKind, Command, Message, Reaction, User
from opencomputer.bot.quarantine import PoisonEvent
from opencomputer.bot.text import clean_event
from opencomputer.connectors.discord.files import attachment_handle

P = ParamSpec("P")
R = TypeVar("R")


def _poison_on_bad_shape(fn: Callable[P, R]) -> Callable[P, R]:
    """discord.py builds half-initialised objects from payloads of the wrong shape (a message
    without ``author``): reading them raises :class:`PoisonEvent`, the documented skip, and what
    comes out is cleaned of lone surrogates.
    """

    @functools.wraps(fn)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            result: Any = fn(*args, **kwargs)
        except (AttributeError, TypeError, ValueError, KeyError) as exc:
            raise PoisonEvent(f"malformed Discord event: {type(exc).__name__}: {exc}") from exc
        return clean_event(result)  # type: ignore[no-any-return]

    return guarded


__all__ = [
    "PLATFORM",
    "Place",
    "dm_place",
    "guild_place",
    "is_addressed",
    "strip_mentions",
    "text_command",
    "to_command",
    "to_message",
    "to_reaction",
    "wants",
]

PLATFORM = "discord"

# Message types a person writes; joins, pins, thread-created notices and the like are not.
_CHAT_TYPES = frozenset({discord.MessageType.default, discord.MessageType.reply})


@dataclass(frozen=True, slots=True)
class Place:
    """Where something happened: the chat (a DM or guild channel) and the thread inside it."""

    chat: Chat
    thread_id: str | None = None

    @property
    def channel_id(self) -> str:
        """The Discord channel to post in (a thread is a channel of its own)."""
        return self.thread_id or self.chat.id


def _user(author: discord.abc.User) -> User:
    return User(PLATFORM, str(author.id), name=author.display_name, is_bot=author.bot)


def strip_mentions(text: str, bot_id: int) -> str:
    """Remove ``<@bot>`` / ``<@!bot>`` so the model sees what the person asked."""
    return re.sub(rf"<@!?{bot_id}>", "", text).strip()


def is_addressed(
    message: discord.Message,
    place: Place,
    bot_id: int,
    trigger: str,
    is_ours: Callable[[int], bool],
) -> bool:
    """DMs always; in guilds a mention of the bot (or its role), a reply to it, or 'always'."""
    if place.chat.kind is ChatKind.DIRECT or trigger == "always":
        return True
    if any(user.id == bot_id for user in message.mentions):
        return True
    for role in message.role_mentions:
        tags = role.tags
        if tags is not None and tags.bot_id == bot_id:
            return True
    ref = message.reference
    if ref is None or ref.message_id is None:
        return False
    resolved = ref.resolved
    if isinstance(resolved, discord.Message):
        return resolved.author.id == bot_id
    return is_ours(ref.message_id)


@_poison_on_bad_shape
def wants(message: discord.Message, bot_id: int) -> bool:
    """Whether a message is one a person wrote to be read (not ours, not a bot, not a notice)."""
    author = message.author
    if author.id == bot_id or author.bot or message.webhook_id is not None:
        return False
    return message.type in _CHAT_TYPES


def _attachments(message: discord.Message) -> tuple[Attachment, ...]:
    """A message's files (voice messages are Ogg attachments too); the handle is the signed
    CDN URL with the channel and message to renew it from (connectors/discord/files.py).
    """
    return tuple(
        Attachment(
            claimed_kind(item.content_type, item.filename),
            attachment_handle(item.url, message.channel.id, message.id),
            item.filename,
            item.content_type or "",
            item.size,
        )
        for item in message.attachments
    )


@_poison_on_bad_shape
def to_message(message: discord.Message, place: Place, bot_id: int, addressed: bool) -> Message:
    """Translate a person's message into a core :class:`Message`."""
    ref = message.reference
    return Message(
        platform=PLATFORM,
        event_id=str(message.id),
        chat=place.chat,
        user=_user(message.author),
        thread_id=place.thread_id,
        text=strip_mentions(message.content, bot_id),
        message_id=str(message.id),
        reply_to=str(ref.message_id) if ref is not None and ref.message_id else None,
        addressed=addressed,
        received_at=message.created_at.timestamp(),
        attachments=_attachments(message),
    )


@_poison_on_bad_shape
def to_reaction(payload: discord.RawReactionActionEvent, place: Place, added: bool) -> Reaction:
    """Translate a reaction added or removed.

    The event id is unique per occurrence: add, remove and add again are three events (storing
    them is idempotent, so a replay does no harm).
    """
    emoji = str(payload.emoji)
    member = payload.member
    user = _user(member) if member is not None else User(PLATFORM, str(payload.user_id))
    sign = "+" if added else "-"
    return Reaction(
        platform=PLATFORM,
        event_id=f"{payload.message_id}:{payload.user_id}:{emoji}:{sign}:{time.time_ns()}",
        chat=place.chat,
        user=user,
        thread_id=place.thread_id,
        message_id=str(payload.message_id),
        emoji=emoji,
        added=added,
    )


_TEXT_COMMAND = re.compile(r"/([A-Za-z0-9_-]{1,32})(?:\s+(.*))?", re.DOTALL)


def text_command(message: Message) -> Command | None:
    """``/name args`` typed as a message (not picked from the slash menu) is a command too."""
    match = _TEXT_COMMAND.fullmatch(message.text.strip())
    if match is None or not message.addressed:
        return None
    name, args = match.groups()
    return Command(
        platform=PLATFORM,
        event_id=message.event_id,
        chat=message.chat,
        user=message.user,
        thread_id=message.thread_id,
        name=name.lower(),
        args=(args or "").strip(),
        message_id=message.message_id,
        received_at=message.received_at,
    )


def to_command(interaction: discord.Interaction, place: Place, name: str, args: str) -> Command:
    """Translate a slash command; ``message_id`` is the interaction id, so a reply finds it."""
    return Command(
        platform=PLATFORM,
        event_id=f"i{interaction.id}",
        chat=place.chat,
        user=_user(interaction.user),
        thread_id=place.thread_id,
        name=name,
        args=args,
        message_id=str(interaction.id),
    )


def dm_place(channel_id: int) -> Place:
    """Build the place of a direct-message channel."""
    return Place(Chat(PLATFORM, str(channel_id), ChatKind.DIRECT))


def guild_place(chat_id: int, title: str, thread_id: int | None = None) -> Place:
    """Build the place of a guild channel, or of a thread under channel ``chat_id``."""
    chat = Chat(PLATFORM, str(chat_id), ChatKind.GROUP, title)
    return Place(chat, str(thread_id) if thread_id is not None else None)
