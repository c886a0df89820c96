"""Everything the Telegram connector sends, through one limiter.

Texts arrive already rendered (HTML, within the limit). Two Bot API answers are not failures:
"message is not modified" on an edit (the text is already what we want) and a markup error,
after which the same text goes out again as plain text rather than not at all.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from telegram import Bot, BotCommandScopeChat, BotCommandScopeDefault, InputFile, ReplyParameters
from telegram.constants import ChatAction, ParseMode
from telegram.error import BadRequest, ChatMigrated, TelegramError

from opencomputer.bot.connector import CommandSpec
from opencomputer.bot.events import Address
from opencomputer.bot.outfiles import OutFile
from opencomputer.connectors.telegram.commands import admin_user_ids, bot_commands
from opencomputer.connectors.telegram.limiter import OutboundLimiter
from opencomputer.connectors.telegram.render import html_to_plain

__all__ = ["CAPTION_LIMIT", "FILE_LIMIT", "PHOTO_LIMIT", "TelegramOutbound"]

logger = logging.getLogger(__name__)

FILE_LIMIT = 50 * 1024 * 1024
"""What the Bot API accepts as an upload (a local Bot API server takes more)."""
PHOTO_LIMIT = 10 * 1024 * 1024
"""``sendPhoto``'s own limit; a larger picture goes as a document."""
CAPTION_LIMIT = 1024
_PHOTO_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})


def _chat_id(address: Address) -> int | str:
    """Numeric ids as ints; ``@channelname`` stays a string."""
    value = address.chat_id
    return int(value) if value.lstrip("-").isdigit() else value


def _is_markup_error(exc: BadRequest) -> bool:
    return "can't parse entities" in exc.message.lower()


def _not_modified(exc: BadRequest) -> bool:
    return "message is not modified" in exc.message.lower()


class TelegramOutbound:
    """send / edit / react / typing / command menus for one bot."""

    def __init__(self, limiter: OutboundLimiter) -> None:
        self.limiter = limiter
        self.bot: Bot | None = None

    def _bot(self) -> Bot:
        if self.bot is None:
            raise RuntimeError("the Telegram connector is not started")
        return self.bot

    async def send(self, address: Address, text: str, reply_to: str | None = None) -> str:
        """Post one HTML chunk; return its message id."""
        bot = self._bot()
        kwargs: dict[str, Any] = {"chat_id": _chat_id(address)}
        if address.thread_id:
            kwargs["message_thread_id"] = int(address.thread_id)
        if reply_to:
            kwargs["reply_parameters"] = ReplyParameters(
                int(reply_to), allow_sending_without_reply=True
            )

        async def call() -> str:
            try:
                sent = await bot.send_message(text=text, parse_mode=ParseMode.HTML, **kwargs)
            except ChatMigrated as exc:  # the group became a supergroup with a new id
                logger.warning("Telegram chat %s moved to %s", address.chat_id, exc.new_chat_id)
                kwargs["chat_id"] = exc.new_chat_id
                sent = await bot.send_message(text=text, parse_mode=ParseMode.HTML, **kwargs)
            except BadRequest as exc:
                if not _is_markup_error(exc):
                    raise
                logger.warning("Telegram refused the markup (%s); sending plain text", exc.message)
                sent = await bot.send_message(text=html_to_plain(text), **kwargs)
            return str(sent.message_id)

        result = await self.limiter.call(address.chat_id, call)
        assert result is not None  # sends never coalesce
        return result

    async def send_file(self, address: Address, file: OutFile, reply_to: str | None = None) -> str:
        """Upload a file (multipart): ``sendVoice`` for a voice note (OGG/Opus), ``sendPhoto``
        for a picture Telegram can show (JPEG/PNG/WebP, up to 10 MB), ``sendAudio`` for other
        audio, ``sendDocument`` for everything else. The caption goes as plain text.
        """
        bot = self._bot()
        kwargs: dict[str, Any] = {"chat_id": _chat_id(address)}
        if address.thread_id:
            kwargs["message_thread_id"] = int(address.thread_id)
        if reply_to and reply_to.isdigit():
            kwargs["reply_parameters"] = ReplyParameters(
                int(reply_to), allow_sending_without_reply=True
            )
        caption = file.caption[:CAPTION_LIMIT] or None
        upload = InputFile(file.data, filename=file.name)

        async def call() -> str:
            if file.voice and file.mime in ("audio/ogg", "audio/opus"):
                sent = await bot.send_voice(voice=upload, caption=caption, **kwargs)
            elif file.mime in _PHOTO_TYPES and file.size <= PHOTO_LIMIT:
                sent = await bot.send_photo(photo=upload, caption=caption, **kwargs)
            elif file.kind == "audio":
                sent = await bot.send_audio(audio=upload, caption=caption, **kwargs)
            else:
                sent = await bot.send_document(document=upload, caption=caption, **kwargs)
            return str(sent.message_id)

        result = await self.limiter.call(address.chat_id, call)
        assert result is not None  # sends never coalesce
        return result

    async def edit(self, address: Address, message_id: str, text: str) -> None:
        """Replace a message's text; a newer edit of the same message supersedes a waiting one."""
        bot = self._bot()
        chat_id, mid = _chat_id(address), int(message_id)

        async def call() -> None:
            try:
                await bot.edit_message_text(
                    text=text, chat_id=chat_id, message_id=mid, parse_mode=ParseMode.HTML
                )
            except BadRequest as exc:
                if _not_modified(exc):
                    return
                if not _is_markup_error(exc):
                    raise
                logger.warning(
                    "Telegram refused the markup (%s); editing as plain text", exc.message
                )
                try:
                    await bot.edit_message_text(
                        text=html_to_plain(text), chat_id=chat_id, message_id=mid
                    )
                except BadRequest as again:
                    if not _not_modified(again):
                        raise

        await self.limiter.call(address.chat_id, call, coalesce=(address.chat_id, message_id))

    async def react(self, address: Address, message_id: str, emoji: str) -> None:
        """Set the bot's reaction on a message (Telegram allows a fixed set of emoji)."""
        bot = self._bot()

        async def call() -> None:
            await bot.set_message_reaction(_chat_id(address), int(message_id), reaction=emoji)

        await self.limiter.call(address.chat_id, call)

    async def typing(self, address: Address) -> None:
        """Show "typing…" for ~5 s. Best effort: a failure here is not worth an error."""
        thread = int(address.thread_id) if address.thread_id else None
        try:
            await self._bot().send_chat_action(
                _chat_id(address), ChatAction.TYPING, message_thread_id=thread
            )
        except TelegramError as exc:
            logger.debug("typing action in %s failed: %s", address.key, exc)

    async def set_commands(self, specs: Sequence[CommandSpec], admins: Sequence[str]) -> None:
        """Publish the public menu, and public + admin commands in each admin's chat."""
        bot = self._bot()
        await bot.set_my_commands(
            bot_commands(s for s in specs if not s.admin), scope=BotCommandScopeDefault()
        )
        everything = bot_commands(specs)
        for user_id in admin_user_ids(admins):
            try:
                await bot.set_my_commands(everything, scope=BotCommandScopeChat(user_id))
            except BadRequest as exc:  # e.g. the admin never opened a chat with the bot
                logger.warning("admin command menu for Telegram user %s: %s", user_id, exc.message)
