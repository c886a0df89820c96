"""The access rule in the inbound chain.

Events from people who may not talk are stopped here, before anything of theirs is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from opencomputer.bot.access.policy import AccessPolicy, Verdict, user_subject
from opencomputer.bot.events import ChatKind, Command, Message, Reaction
from opencomputer.bot.middleware import Handler, Middleware

__all__ = ["PAIRING_TEXT", "REFUSED_TEXT", "access_middleware"]

logger = logging.getLogger(__name__)

PAIRING_TEXT = (
    "Hi! This assistant is private and does not know you yet.\n"
    "Ask its admin to send `/allow {code}` — the code works for one hour.\n"
    "If you already use this assistant on another app, send `/link` there and "
    "`/link <code>` here instead."
)
REFUSED_TEXT = "Sorry, this assistant is private and only answers people its admin allowed."

Say = Callable[..., Awaitable[object]]
_OPEN_TO_STRANGERS = frozenset({"link"})  # proves ownership of an allowed account instead


def access_middleware(policy: AccessPolicy, say: Say) -> Middleware:
    """Build the middleware; ``say(address, text)`` answers strangers (once, not per message)."""
    refused: set[str] = set()

    async def mw(event: Message | Reaction | Command, call_next: Handler) -> None:
        verdict = policy.check(event)
        if verdict in (Verdict.PAIR, Verdict.REFUSE):  # a grant stored by another process?
            await policy.reload_subject(user_subject(event.user.key))
            verdict = policy.check(event)
        if verdict is Verdict.ALLOW:
            await call_next(event)
            return
        if (
            isinstance(event, Command)
            and event.name in _OPEN_TO_STRANGERS
            and event.args.strip()
            and event.chat.kind is ChatKind.DIRECT
            and not policy.is_denied(event.user)
        ):
            await call_next(event)
            return
        if verdict is Verdict.PAIR:
            pairing = await policy.pair(event.user, event.address)
            if pairing.new:
                await _tell(say, event, PAIRING_TEXT.format(code=pairing.code))
            return
        if verdict is Verdict.REFUSE and event.user.key not in refused:
            refused.add(event.user.key)
            await _tell(say, event, REFUSED_TEXT)
            return
        logger.debug("dropped %s from %s (%s)", type(event).__name__, event.user.key, verdict)

    return mw


async def _tell(say: Say, event: Message | Reaction | Command, text: str) -> None:
    try:
        await say(event.address, text)
    except Exception as exc:  # the answer to a stranger is best effort
        logger.warning("could not answer %s: %s", event.user.key, exc)
