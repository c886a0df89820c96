"""Streaming a reply to a platform: one message edited as tokens arrive, split when too long.

Edits are throttled to the connector's ``edit_interval`` and coalesced (only the newest text is
sent); the final text always lands, even if an edit in between failed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from bot.connector import Connector
from bot.events import Address

__all__ = ["ReplySink", "ReplyStream"]

logger = logging.getLogger(__name__)


class ReplySink(Protocol):
    """Where a turn's answer goes: a local :class:`ReplyStream`, or one relayed to a gateway."""

    @property
    def started(self) -> bool:
        """Whether anything reached the platform yet."""
        ...

    async def token(self, text: str) -> None:
        """Append streamed text."""

    async def restart(self) -> None:
        """Drop interim text (a new model round begins)."""

    async def typing(self) -> None:
        """Show the bot is working."""

    async def finish(self, text: str) -> list[str]:
        """Show exactly ``text``; return the platform message ids holding it."""
        ...


class ReplyStream:
    """Accumulates streamed text and mirrors it onto platform messages."""

    def __init__(self, connector: Connector, address: Address, reply_to: str | None = None) -> None:
        self.connector = connector
        self.address = address
        self.reply_to = reply_to
        self.text = ""
        self._sent: list[tuple[str, str]] = []  # (message id, rendered text)
        self._last_flush = 0.0
        self._flushing: asyncio.Task[None] | None = None
        caps = connector.capabilities
        self._live = caps.can_edit
        self._interval = caps.edit_interval

    @property
    def started(self) -> bool:
        """Whether anything reached the platform yet."""
        return bool(self._sent)

    async def token(self, text: str) -> None:
        """Append streamed text; schedule an edit if the throttle allows."""
        await self.show(self.text + text)

    async def show(self, text: str) -> None:
        """Replace the text streamed so far (a gateway relays whole snapshots from workers)."""
        self.text = text
        if not self._live or (self._flushing is not None and not self._flushing.done()):
            return
        if time.monotonic() - self._last_flush >= self._interval:
            self._flushing = asyncio.create_task(self._flush_interim())

    async def restart(self) -> None:
        """A new model round: interim text so far is replaced by what comes next."""
        self.text = ""

    async def typing(self) -> None:
        """Show the typing indicator where the platform has one."""
        if self.connector.capabilities.can_type:
            await self.connector.typing(self.address)

    async def finish(self, text: str) -> list[str]:
        """Make the platform show exactly ``text``; return the ids of the messages holding it."""
        if self._flushing is not None:
            await asyncio.gather(self._flushing, return_exceptions=True)
        self.text = text
        await self._flush(text)
        return [mid for mid, _ in self._sent]

    async def _flush_interim(self) -> None:
        try:
            await self._flush(self.text)
        except Exception as exc:  # an interim edit may fail; the final one retries
            logger.warning("streaming edit to %s failed: %s", self.address.key, exc)

    async def _flush(self, text: str) -> None:
        self._last_flush = time.monotonic()
        if not text.strip():
            return
        chunks = self.connector.render(text)
        for i, chunk in enumerate(chunks):
            if i < len(self._sent):
                mid, shown = self._sent[i]
                if shown != chunk:
                    await self.connector.edit(self.address, mid, chunk)
                    self._sent[i] = (mid, chunk)
            else:
                reply_to = self.reply_to if i == 0 else None
                mid = await self.connector.send(self.address, chunk, reply_to=reply_to)
                self._sent.append((mid, chunk))
        self._last_flush = time.monotonic()
