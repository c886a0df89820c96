"""The control room's live events: one watcher shared by every open page, with replay.

One task looks at each source (approvals, overview, plugins, people, schedules, conversations)
every ``poll`` seconds while a page listens, and records a source's data as an event whenever
it differs from the last recorded one. It looks at the database rather than hooking into each
feature, so it also sees what other processes and the CLI changed.

Events carry ids ``<epoch>-<seq>``. A reconnecting ``EventSource`` sends the last id it saw
(``Last-Event-ID``) and gets exactly the events recorded after it from a bounded buffer; an id
the buffer no longer reaches, or from another epoch (another process, a restart, or a watcher
that stopped for lack of listeners and so may have missed changes), gets one ``reload`` event
followed by the current data of every source.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["BUFFER", "LINGER", "POLL", "Event", "LiveFeed", "Source"]

logger = logging.getLogger(__name__)

Source = Callable[[], Awaitable[dict[str, Any] | None]]
"""A source's current data (``None``: its feature is off, nothing to send)."""
POLL = 1.0
"""Seconds between looks (cheap queries; a control room has one or two admins watching)."""
BUFFER = 256
"""Events kept for replay (about four minutes of constant change at one source a second)."""
LINGER = 60.0
"""Seconds the watcher goes on after the last page left: a page that reconnects (a phone
waking up, a proxy dropping the stream) in that time gets what it missed, not a reload."""


@dataclass(frozen=True, slots=True)
class Event:
    """One recorded change: its id, the source's name, its data as JSON text."""

    seq: int
    kind: str
    text: str


class LiveFeed:
    """Records changes of the sources; hands each stream what it has not seen."""

    def __init__(
        self,
        sources: dict[str, Source],
        closing: asyncio.Event,
        *,
        poll: float = POLL,
        size: int = BUFFER,
        linger: float = LINGER,
    ) -> None:
        self.sources = sources
        self.closing = closing
        self.poll = poll
        self.linger = linger
        self.epoch = ""
        self.seq = 0
        self.events: deque[Event] = deque(maxlen=size)
        self.latest: dict[str, Event] = {}
        self.listeners = 0
        self.changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._left_at = 0.0

    # --- ids ------------------------------------------------------------------------------
    def event_id(self, event: Event) -> str:
        """The id a browser sends back as ``Last-Event-ID``."""
        return f"{self.epoch}-{event.seq}"

    def since(self, last_id: str) -> list[Event] | None:
        """The events after ``last_id``, or None when the buffer cannot say (reload)."""
        epoch, _, seq = last_id.strip().partition("-")
        if epoch != self.epoch or not seq.isdigit():
            return None
        after = int(seq)
        if after > self.seq or (self.events and after < self.events[0].seq - 1):
            return None
        return [e for e in self.events if e.seq > after]

    def snapshot(self) -> list[Event]:
        """The current data of every source, in the sources' order."""
        return [self.latest[k] for k in self.sources if k in self.latest]

    # --- listening ------------------------------------------------------------------------
    async def join(self) -> None:
        """A page listens: start the watcher if needed and wait for its first look.

        Counts the listener before its first wait, so a caller's ``finally: leave()`` always
        balances it, even when the page goes away during the wait.
        """
        self.listeners += 1
        if self._task is None or self._task.done():
            self.epoch = secrets.token_hex(4)  # a new watcher may have missed changes
            self.seq, self.latest = 0, {}
            self.events.clear()
            self._ready = asyncio.Event()
            self._task = asyncio.create_task(self._watch(), name="control-live")
        await self._ready.wait()

    def leave(self) -> None:
        """A page stopped listening."""
        self.listeners -= 1
        self._left_at = time.monotonic()

    async def wait(self, seq: int, seconds: float) -> None:
        """Return once an event after ``seq`` is recorded, or after ``seconds``."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds), self.changed:
                await self.changed.wait_for(lambda: self.seq > seq or self.closing.is_set())

    async def stop(self) -> None:
        """End the watcher (the app stops)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        async with self.changed:
            self.changed.notify_all()

    # --- the watcher ----------------------------------------------------------------------
    async def look(self) -> None:
        """Look at every source once; record what changed."""
        for kind, source in self.sources.items():
            try:
                data = await source()
            except Exception as exc:  # one failing source must not silence the others
                logger.warning("control room: live %s failed: %r", kind, exc)
                continue
            if data is None:
                continue
            text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
            known = self.latest.get(kind)
            if known is not None and known.text == text:
                continue
            self.seq += 1
            event = Event(self.seq, kind, text)
            self.events.append(event)
            self.latest[kind] = event
        async with self.changed:
            self.changed.notify_all()

    async def _watch(self) -> None:
        try:
            await self.look()
        finally:
            self._ready.set()  # a failed first look must not leave pages waiting
        while not self.closing.is_set():
            if self.listeners <= 0 and time.monotonic() - self._left_at > self.linger:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.closing.wait(), self.poll)
            if not self.closing.is_set():
                await self.look()
