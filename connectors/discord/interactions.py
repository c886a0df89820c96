"""Answering slash-command interactions with the core's reply.

An interaction must be answered within 3 seconds. :class:`InteractionReplies` keeps the
interaction until the core sends the command's reply (``reply_to`` = the interaction id): if it
comes in time it *is* the answer; if not, the interaction is deferred ("thinking...") and the
reply replaces that placeholder. Either way the reply lands in the channel, and edits to it go
through the interaction token while that is valid.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import discord

__all__ = ["InteractionReplies"]

logger = logging.getLogger(__name__)

_TOKEN_LIFETIME = 14 * 60.0  # interaction tokens last 15 minutes; keep a margin


@dataclass
class _Pending:
    interaction: discord.Interaction
    created: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    deferred: bool = False
    answered: bool = False
    timer: asyncio.Task[None] | None = None


class InteractionReplies:
    """Interactions waiting for their reply, and the messages sent through them."""

    def __init__(self, defer_after: float = 2.0, lifetime: float = _TOKEN_LIFETIME) -> None:
        self.defer_after = defer_after
        self.lifetime = lifetime
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._messages: OrderedDict[str, _Pending] = OrderedDict()

    def add(self, interaction: discord.Interaction) -> None:
        """Hold ``interaction`` for its reply; defer it if none comes within ``defer_after``."""
        pending = _Pending(interaction)
        self._expire()
        self._pending[str(interaction.id)] = pending
        pending.timer = asyncio.create_task(self._defer_later(pending))

    async def _defer_later(self, pending: _Pending) -> None:
        await asyncio.sleep(self.defer_after)
        async with pending.lock:
            if pending.answered or pending.interaction.response.is_done():
                return
            try:
                await pending.interaction.response.defer(thinking=True)
                pending.deferred = True
            except discord.HTTPException as exc:
                logger.warning("Discord: could not defer an interaction: %s", exc)
                return
        # A command whose answer went elsewhere (or never came) must not leave "thinking..."
        # behind: remove the placeholder before the token expires.
        await asyncio.sleep(max(0.0, self.lifetime - self.defer_after))
        async with pending.lock:
            if pending.answered:
                return
            pending.answered = True
            self._pending.pop(str(pending.interaction.id), None)
            with contextlib.suppress(discord.HTTPException):
                await pending.interaction.delete_original_response()

    async def send(self, text: str, reply_to: str | None) -> str | None:
        """Answer the held interaction ``reply_to`` with ``text``; None when it is not one.

        Only an exact match counts: the command router replies with ``reply_to`` set to the
        interaction id, while later chunks and other replies in the channel are posted.
        """
        pending = self._pending.get(reply_to) if reply_to is not None else None
        if pending is None:
            return None
        del self._pending[str(reply_to)]
        # The defer timer is left to run: cancelling it mid-request could lose a defer that
        # Discord already applied. Under the lock it sees ``answered`` and does nothing.
        async with pending.lock:
            pending.answered = True
            interaction = pending.interaction
            try:
                if pending.deferred:
                    message = await interaction.edit_original_response(content=text)
                    message_id = message.id
                else:
                    response = await interaction.response.send_message(text)
                    if response.message_id is None:
                        return None
                    message_id = response.message_id
            except discord.HTTPException as exc:
                logger.warning("Discord: interaction answer failed, posting instead: %s", exc)
                return None
        key = str(message_id)
        self._messages[key] = pending
        return key

    async def edit(self, message_id: str, text: str) -> bool:
        """Edit an interaction's answer through its token; False if it is not one (or stale)."""
        pending = self._messages.get(message_id)
        if pending is None or time.monotonic() - pending.created > self.lifetime:
            return False
        await pending.interaction.edit_original_response(content=text)
        return True

    def _expire(self) -> None:
        now = time.monotonic()
        for table in (self._pending, self._messages):
            while table:
                key, pending = next(iter(table.items()))
                if now - pending.created <= self.lifetime:
                    break
                del table[key]
                if pending.timer is not None:
                    pending.timer.cancel()

    def close(self) -> None:
        """Cancel every defer timer."""
        for pending in (*self._pending.values(), *self._messages.values()):
            if pending.timer is not None:
                pending.timer.cancel()
        self._pending.clear()
        self._messages.clear()
