"""Inbound: gateway events -> core events, in arrival order, each emitted once.

discord.py runs every event handler as its own task, so two quick messages could reach the
core out of order whenever translating one has to wait (a thread's parent looked up over
REST). :class:`Inbound` queues the events synchronously as they arrive and one consumer task
translates and emits them in that order; a replayed event (same id) is emitted only once.

Discord's gateway has no acknowledgement to withhold: an event the runtime does not take
(shutting down, storage unreachable, disk full) would be gone. So such an event is held and
offered again with capped backoff; later events of the same chat queue behind it (order per
chat holds), other chats go on. Memory is bounded (``hold_limit`` events in all; beyond it new
events are dropped, counted and logged once) and each streak is logged once each way.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable

import discord

from opencomputer.bot.connector import Emit, RuntimeStopped
from opencomputer.bot.events import Command, Message, Reaction
from opencomputer.bot.quarantine import PoisonEvent
from opencomputer.bot.storage.disk import is_disk_full
from opencomputer.bot.storage.engine import is_transient
from opencomputer.bot.text import clean_event
from opencomputer.connectors.discord.places import Places
from opencomputer.connectors.discord.translate import (
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

    hold_limit = 1000
    """Events held at most while the runtime refuses them (all chats together)."""
    retry_first = 0.25
    retry_cap = 10.0

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
        self._held: dict[str, deque[Event]] = {}  # chat -> events the runtime did not take
        self._retries: dict[str, asyncio.Task[None]] = {}
        self.held = 0
        """Events held now, in every chat."""
        self.dropped = 0
        """Events dropped because ``hold_limit`` was reached (each streak logged once)."""
        self._streak_dropped = 0

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
        """Translate and emit queued events until cancelled (held events are then dropped)."""
        try:
            while True:
                job = await self._queue.get()
                try:
                    event = await job()
                    if event is None or (not isinstance(event, Reaction) and self._repeat(event)):
                        continue
                except PoisonEvent as exc:  # one line, no traceback: the next event goes on
                    logger.warning("Discord: an inbound event was skipped (%s)", exc)
                    continue
                except Exception:
                    logger.exception("Discord: an inbound event could not be translated")
                    continue
                await self._offer(clean_event(event))
        finally:
            for task in self._retries.values():
                task.cancel()
            if self.held:
                logger.warning("Discord: %d held events were not taken before stopping", self.held)

    async def _offer(self, event: Event) -> None:
        """Emit now, or hold: behind an older held event of the same chat, or when refused."""
        key = event.address.key
        if key in self._held:
            self._hold(key, event, None)
            return
        try:
            await self._emit(event)
        except Exception as exc:
            if not _retryable(exc):
                logger.exception("Discord: an inbound event was dropped")
                return
            self._hold(key, event, exc)

    def _hold(self, key: str, event: Event, exc: Exception | None) -> None:
        if self.held >= self.hold_limit:
            if not self._streak_dropped:
                logger.error(
                    "Discord: %d events are held while the runtime refuses them; dropping new "
                    "ones until it takes them again",
                    self.held,
                )
            self._streak_dropped += 1
            self.dropped += 1
            return
        lane = self._held.get(key)
        if lane is None:
            if not self._held:
                logger.warning(
                    "Discord: the runtime did not take an event (%s: %s); holding events and "
                    "offering them again until it does",
                    type(exc).__name__,
                    exc,
                )
            lane = self._held[key] = deque()
            self._retries[key] = asyncio.create_task(self._retry(key, lane), name="discord-held")
        lane.append(event)
        self.held += 1

    async def _retry(self, key: str, lane: deque[Event]) -> None:
        """Offer one chat's held events again, oldest first, with capped backoff."""
        delay = self.retry_first
        while lane:
            await asyncio.sleep(delay)
            while lane:
                try:
                    await self._emit(lane[0])
                except Exception as exc:
                    if _retryable(exc):
                        delay = min(delay * 2, self.retry_cap)
                        break
                    logger.exception("Discord: a held inbound event was dropped")
                lane.popleft()
                self.held -= 1
                delay = self.retry_first
        del self._held[key]
        self._retries.pop(key, None)
        if not self._held:
            lost = f"; {self._streak_dropped} dropped" if self._streak_dropped else ""
            logger.info("Discord: the runtime takes events again, held ones handed over%s", lost)
            self._streak_dropped = 0

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
        if not event.text and not event.attachments:
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


def _retryable(exc: BaseException) -> bool:
    """A refusal that passes (shutdown, storage unreachable or full), not the event's fault."""
    return isinstance(exc, RuntimeStopped) or is_transient(exc) or is_disk_full(exc)
