"""Joining the parts of a long message that Telegram split into several updates.

A Telegram client cuts text longer than 4096 characters into several messages sent back to
back. Answering the first part alone would waste a turn on half a question, so a message that
is nearly as long as the limit is held for a moment; parts from the same person in the same
chat (and topic) arriving within the window are appended, and the whole is emitted once the
window passes or a short (last) part arrives.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from opencomputer.bot.events import Message
from opencomputer.connectors.telegram.render import utf16_len

__all__ = ["SplitJoiner"]

logger = logging.getLogger(__name__)

_Key = tuple[str, str, str | None]


@dataclass(slots=True)
class _Held:
    parts: list[Message]
    task: asyncio.Task[None] | None = field(default=None)


def _key(msg: Message) -> _Key:
    return (msg.chat.id, msg.user.id, msg.thread_id)


class SplitJoiner:
    """Holds near-limit messages for ``window`` seconds to catch their continuation."""

    def __init__(
        self,
        deliver: Callable[[Message], Awaitable[None]],
        *,
        window: float = 1.0,
        threshold: int = 3500,
    ) -> None:
        self._deliver = deliver
        self.window = window
        self.threshold = threshold
        self._held: dict[_Key, _Held] = {}
        self._failing = False  # handing over failed last time (log once per streak)

    @property
    def holding(self) -> int:
        """How many conversations have a message waiting for its continuation."""
        return len(self._held)

    async def offer(self, msg: Message) -> None:
        """Emit ``msg`` now, or hold it (or add it to what is held) for its next part."""
        key = _key(msg)
        long = utf16_len(msg.text) >= self.threshold
        held = self._held.get(key)
        if held is None:
            if not long:
                await self._deliver(msg)
                return
            held = self._held[key] = _Held([msg])
            self._arm(key, held)
            return
        held.parts.append(msg)
        if long:  # another full part: more may follow
            self._arm(key, held)
        else:  # a short part ends the split message
            await self.flush(key)

    def _arm(self, key: _Key, held: _Held) -> None:
        """(Re)start the window after which ``held`` is emitted as it is."""
        if held.task is not None:
            held.task.cancel()
        held.task = asyncio.create_task(self._expire(key, held), name="telegram-join")

    async def flush_for(self, chat_id: str, user_id: str, thread_id: str | None) -> None:
        """Emit what one person holds in one place (a command from them must come after it)."""
        await self.flush((chat_id, user_id, thread_id))

    async def flush(self, key: _Key | None = None) -> None:
        """Emit one held message, or every one (at shutdown)."""
        keys = list(self._held) if key is None else [key]
        for k in keys:
            held = self._held.pop(k, None)
            if held is None:
                continue
            if held.task is not None and held.task is not asyncio.current_task():
                held.task.cancel()
            try:
                await self._deliver(_joined(held.parts))
            except Exception:
                self._hold_again(k, held)
                raise

    async def drain(self) -> int:
        """At shutdown: try each held message once, then drop the rest; return how many."""
        lost = 0
        for key in list(self._held):
            try:
                await self.flush(key)
            except Exception as exc:
                lost += 1
                logger.warning("a held Telegram message could not be handed over: %s", exc)
        for held in self._held.values():
            if held.task is not None:
                held.task.cancel()
        self._held.clear()
        return lost

    def _hold_again(self, key: _Key, held: _Held) -> None:
        """Delivery failed (runtime busy or stopping): keep the parts and try again later."""
        if key in self._held:  # a new part started a new hold meanwhile; keep ours first
            self._held[key].parts[:0] = held.parts
            return
        held.task = None
        self._arm(key, held)
        self._held[key] = held

    async def _expire(self, key: _Key, held: _Held) -> None:
        await asyncio.sleep(self.window)
        if self._held.get(key) is not held:
            return
        try:
            await self.flush(key)
        except Exception as exc:  # held again; one line per streak (a full disk may last)
            if not self._failing:
                logger.error(
                    "could not hand a joined Telegram message to the runtime (%s); "
                    "holding it and trying again",
                    exc,
                )
            self._failing = True
        else:
            if self._failing:
                logger.info("joined Telegram messages are handed to the runtime again")
            self._failing = False


def _joined(parts: list[Message]) -> Message:
    """One message from its parts: identified by the first, answered below the last."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    return dataclasses.replace(
        first,
        text="\n".join(p.text for p in parts),
        message_id=parts[-1].message_id,
        raw=tuple(p.raw for p in parts),
        attachments=tuple(a for p in parts for a in p.attachments),
    )
