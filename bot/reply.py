"""Streaming a reply to a platform: one message edited as tokens arrive, split when too long.

Edits are throttled to the connector's ``edit_interval`` and coalesced (only the newest text is
sent); the final text always lands, even if an edit in between failed.

A reply with a durable key (``in<inbound id>``, ``reply<reply id>``) stores each message it
posts in a :class:`PostLedger` right after the post, before that message shows any of the
answer: it is posted as :data:`PLACEHOLDER` and edited afterwards. A restarted turn (crash,
re-run, new gateway) calls :meth:`~ReplyStream.resume` and edits those messages instead of
posting again. The one window bookkeeping cannot close (the platform took the post, the process
died before learning its id) then leaves a stray placeholder, never a second copy of the answer.
Platforms that cannot edit (``can_edit`` false) get each part posted with its final text and
stored right after: a crash in that window posts that part again at the next start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from opencomputer.bot.connector import Connector
from opencomputer.bot.events import Address

__all__ = ["PLACEHOLDER", "PostLedger", "ReplySink", "ReplyStream", "is_durable_key", "reply_key"]

logger = logging.getLogger(__name__)

PLACEHOLDER = "…"
"""What a durable reply's new message shows until it is edited to carry the answer."""


def reply_key(inbound_id: int | None, reply_id: int | None = None) -> str | None:
    """The durable key of a reply: its message's (one answer per message), else its own."""
    if inbound_id is not None:
        return f"in{inbound_id}"
    return None if reply_id is None else f"reply{reply_id}"


def is_durable_key(key: str | None) -> bool:
    """Whether ``key`` names a stored reply (others, ``s<uuid>``, live only in memory)."""
    return key is not None and key.startswith(("in", "reply"))


class PostLedger(Protocol):
    """Where a reply's posted messages are stored (:class:`~bot.storage.store.SqlStore`)."""

    async def record_post(self, key: str, address: Address, position: int, message_id: str) -> None:
        """Store the message posted at ``position``."""

    async def reply_posts(self, key: str) -> list[tuple[str, bool]]:
        """The messages posted so far by position: (message id, finished)."""
        ...


class ReplySink(Protocol):
    """Where a turn's answer goes: a local :class:`ReplyStream`, or one relayed to a gateway."""

    @property
    def started(self) -> bool:
        """Whether anything reached the platform yet."""
        ...

    async def token(self, text: str) -> None:
        """Append streamed text."""

    async def resume(self) -> None:
        """Continue a reply an earlier run began: edit its messages rather than post anew."""

    async def restart(self) -> None:
        """Drop interim text (a new model round begins)."""

    async def typing(self) -> None:
        """Show the bot is working."""

    async def finish(self, text: str) -> list[str]:
        """Show exactly ``text``; return the platform message ids holding it."""
        ...


class ReplyStream:
    """Accumulates streamed text and mirrors it onto platform messages."""

    def __init__(
        self,
        connector: Connector,
        address: Address,
        reply_to: str | None = None,
        *,
        key: str | None = None,
        ledger: PostLedger | None = None,
    ) -> None:
        self.connector = connector
        self.address = address
        self.reply_to = reply_to
        self.text = ""
        self.key = key if ledger is not None and is_durable_key(key) else None
        self.ledger = ledger
        self.delivered: list[str] | None = None
        """Set by :meth:`resume` when an earlier run finished this reply: its message ids."""
        # (message id, rendered text shown; None: posted by an earlier run, text unknown)
        self._sent: list[tuple[str, str | None]] = []
        self._unrecorded: list[int] = []  # positions posted but not stored in the ledger yet
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

    async def resume(self) -> None:
        """Adopt the messages an earlier run of this reply posted (read once, before use)."""
        if self.key is None or self.ledger is None or self._sent:
            return
        posts = await self.ledger.reply_posts(self.key)
        self._sent = [(mid, None) for mid, _finished in posts]
        if posts and all(finished for _mid, finished in posts):
            self.delivered = [mid for mid, _finished in posts]

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
        count = await self._flush(text)
        if self._live:  # parts an earlier, longer version left over: no second copy of text
            blank = self._placeholder
            for i in range(count, len(self._sent)):
                mid, shown = self._sent[i]
                if shown != blank:
                    await self.connector.edit(self.address, mid, blank)
                    self._sent[i] = (mid, blank)
        return [mid for mid, _ in self._sent[:count]]

    @property
    def _placeholder(self) -> str:
        return self.connector.render(PLACEHOLDER)[0]

    async def _flush_interim(self) -> None:
        try:
            await self._flush(self.text)
        except Exception as exc:  # an interim edit may fail; the final one retries
            logger.warning("streaming edit to %s failed: %s", self.address.key, exc)

    async def _flush(self, text: str) -> int:
        """Show ``text``; return how many messages hold it."""
        self._last_flush = time.monotonic()
        await self._record()  # an earlier flush's post whose storing failed
        if not text.strip():
            return 0
        chunks = self.connector.render(text)
        for i, chunk in enumerate(chunks):
            if i < len(self._sent):
                mid, shown = self._sent[i]
                if shown is None and not self._live:
                    shown = chunk  # posted whole by an earlier run, and it cannot be edited
                if shown != chunk:
                    await self.connector.edit(self.address, mid, chunk)
                self._sent[i] = (mid, chunk)
                continue
            reply_to = self.reply_to if i == 0 else None
            first = self._placeholder if self.key is not None and self._live else chunk
            mid = await self.connector.send(self.address, first, reply_to=reply_to)
            self._sent.append((mid, first))
            self._unrecorded.append(i)
            await self._record()
            if first != chunk:
                await self.connector.edit(self.address, mid, chunk)
                self._sent[i] = (mid, chunk)
        self._last_flush = time.monotonic()
        return len(chunks)

    async def _record(self) -> None:
        """Store posted messages in the ledger (before they are edited to carry the answer)."""
        if self.key is None or self.ledger is None:
            self._unrecorded.clear()
            return
        while self._unrecorded:
            i = self._unrecorded[0]
            await self.ledger.record_post(self.key, self.address, i, self._sent[i][0])
            self._unrecorded.pop(0)
