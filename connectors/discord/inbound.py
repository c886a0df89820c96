"""Inbound: gateway events -> core events, in arrival order, each emitted once.

discord.py runs every event handler as its own task, so two quick messages could reach the
core out of order whenever translating one has to wait (a thread's parent looked up over
REST). :class:`Inbound` queues the events synchronously as they arrive and one consumer task
translates and emits them in that order; a replayed event (same id) is emitted only once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import discord

from bot.connector import Emit, RuntimeStopped
from bot.events import Command, Message, Reaction
from bot.quarantine import PoisonEvent
from bot.text import clean_event
from connectors.discord.places import Places
from connectors.discord.translate import (
    is_addressed,
    text_command,
    to_message,
    to_reaction,
    wants,
)

__all__ = ["Inbound", "Lru"]

logger = logging.getLogger(__name__)

Event = Message | Reaction | Command
Job = Callable[[], Awaitable[Event | None]]


class Lru(OrderedDict[str, None]):
    """A bounded set of recent ids that forgets the oldest."""

    def __init__(self, size: int = 4096) -> None:
        super().__init__()
        self.size = size

    def add(self, key: str) -> None:
        """Remember ``key``."""
        self[key] = None
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class Inbound:
    """Queues gateway events and emits their core translation, in order, once."""

    def __init__(
        self, client: discord.Client, places: Places, emit: Emit, trigger: str, sent: Lru
    ) -> None:
        self.client = client
        self._places = places
        self._emit = emit
        self._trigger = trigger
        self._sent = sent  # ids of messages the bot posted: replies to them address the bot
        self._seen = Lru()  # event ids emitted: a gateway replay is not emitted twice
        self._queue: asyncio.Queue[Job] = asyncio.Queue()

    def message(self, message: discord.Message) -> None:
        """Queue a MESSAGE_CREATE (synchronously, so arrival order is kept)."""
        self._queue.put_nowait(lambda: self._translate_message(message))

    def reaction(self, payload: discord.RawReactionActionEvent, added: bool) -> None:
        """Queue a reaction add/remove."""
        self._queue.put_nowait(lambda: self._translate_reaction(payload, added))

    def command(self, command: Command) -> None:
        """Queue an already translated slash command."""

        async def ready() -> Command:
            return command

        self._queue.put_nowait(ready)

    async def run(self) -> None:
        """Translate and emit queued events until cancelled."""
        while True:
            job = await self._queue.get()
            try:
                event = await job()
                if event is None or (not isinstance(event, Reaction) and self._repeat(event)):
                    continue
                await self._emit(clean_event(event))
            except RuntimeStopped:
                logger.warning("Discord: an event arrived during shutdown and was not taken")
            except PoisonEvent as exc:  # one line, no traceback: the next event goes on
                logger.warning("Discord: an inbound event was skipped (%s)", exc)
            except Exception:
                logger.exception("Discord: an inbound event was dropped")

    def _repeat(self, event: Message | Command) -> bool:
        if event.event_id in self._seen:
            return True
        self._seen.add(event.event_id)
        return False

    async def _translate_message(self, message: discord.Message) -> Message | Command | None:
        me = self.client.user
        if me is None or not wants(message, me.id):
            return None
        place = await self._places.of_channel(message.channel)
        ours = self._sent.__contains__
        addressed = is_addressed(message, place, me.id, self._trigger, lambda i: ours(str(i)))
        event = to_message(message, place, me.id, addressed)
        if not event.text:
            return None
        return text_command(event) or event

    async def _translate_reaction(
        self, payload: discord.RawReactionActionEvent, added: bool
    ) -> Reaction | None:
        me = self.client.user
        if me is None or payload.user_id == me.id:
            return None
        ours = str(payload.message_id) in self._sent
        author = payload.message_author_id
        if added and not (author == me.id or (author is None and ours)):
            return None  # feedback is only about the bot's own messages
        # Removals carry no author: they are passed on (removing unknown feedback is a no-op).
        place = await self._places.of_ids(payload.channel_id, payload.guild_id)
        return to_reaction(payload, place, added)
