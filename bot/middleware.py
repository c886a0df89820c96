"""Cross-cutting rules applied to every inbound event before it is accepted.

A middleware is ``async def mw(event, call_next)``: call ``call_next(event)`` to pass the event
on, or return without calling it to drop the event. One small function per rule.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from opencomputer.bot.events import ChatKind, Command, Message, Reaction

__all__ = ["Handler", "Middleware", "chain", "ignore_bots", "require_address"]

logger = logging.getLogger(__name__)

Event = Message | Reaction | Command
Handler = Callable[[Event], Awaitable[None]]
Middleware = Callable[[Event, Handler], Awaitable[None]]


def chain(middleware: Sequence[Middleware], final: Handler) -> Handler:
    """Compose middleware around ``final`` (the first in the list runs first)."""
    handler = final
    for mw in reversed(middleware):
        handler = _bind(mw, handler)
    return handler


def _bind(mw: Middleware, nxt: Handler) -> Handler:
    async def run(event: Event) -> None:
        await mw(event, nxt)

    return run


async def ignore_bots(event: Event, call_next: Handler) -> None:
    """Bots (ourselves included) never start a turn: two bots must not talk in a loop."""
    if event.user.is_bot:
        return
    await call_next(event)


def require_address(trigger: str) -> Middleware:
    """In group chats, answer only when addressed (mention, reply, command) unless 'always'."""

    async def mw(event: Event, call_next: Handler) -> None:
        if (
            trigger == "mention"
            and isinstance(event, Message)
            and event.chat.kind is ChatKind.GROUP
            and not event.addressed
        ):
            return
        await call_next(event)

    return mw
