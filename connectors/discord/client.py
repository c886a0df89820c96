"""The discord.py client the connector drives: intents, options and event forwarding.

Subclassing ``discord.Client`` and defining ``on_<event>`` methods is discord.py's documented
way to receive events; each method only forwards to the connector's :class:`Events`, so the
platform glue stays in one place and nothing here holds state of its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

import discord
from discord import app_commands
from discord.state import ConnectionState

__all__ = ["Events", "GatewayClient", "intents"]

logger = logging.getLogger(__name__)

Poisoned = Callable[[str, dict[str, Any], str], None]
"""Called with (event name, raw data, reason) for a dispatch discord.py could not parse."""


class Events(Protocol):
    """What the connector does with gateway events."""

    def connected(self) -> None:
        """Handle READY or RESUMED."""

    def disconnected(self) -> None:
        """Handle a dropped gateway connection (discord.py reconnects on its own)."""

    def message(self, message: discord.Message) -> None:
        """Handle MESSAGE_CREATE."""

    def reaction(self, payload: discord.RawReactionActionEvent, added: bool) -> None:
        """Handle MESSAGE_REACTION_ADD / _REMOVE."""

    async def ready(self) -> None:
        """Handle a filled guild cache (first READY and every re-IDENTIFY)."""

    def poisoned(self, event: str, data: dict[str, Any], reason: str) -> None:
        """Handle a dispatch discord.py could not parse (it was skipped)."""


def _guarded(event: str, parse: Callable[[Any], None], poisoned: Poisoned) -> Callable[[Any], None]:
    """Wrap one discord.py dispatch parser so a malformed payload is skipped, not fatal.

    Without this, an exception in a parser escapes the gateway's receive loop and ends
    ``Client.connect``: the connection is dropped and the bot logs in again, losing the events
    of the reconnect. Session events (READY, RESUMED) are left alone: without them there is
    no session to keep.
    """

    def parse_or_skip(data: Any) -> None:
        try:
            parse(data)
        except Exception as exc:
            raw = data if isinstance(data, dict) else {"data": repr(data)}
            poisoned(event, raw, f"{type(exc).__name__}: {exc}")

    return parse_or_skip


class _GuardedState(ConnectionState):  # type: ignore[type-arg]
    """discord.py's connection state with every dispatch parser guarded (see ``_guarded``)."""

    def __init__(self, *, poisoned: Poisoned, **options: Any) -> None:
        super().__init__(**options)
        for event, parse in list(self.parsers.items()):
            if event not in ("READY", "RESUMED"):
                self.parsers[event] = _guarded(event, parse, poisoned)


def intents() -> discord.Intents:
    """Exactly the intents the bot needs; message content is privileged (see docs/discord.md)."""
    wanted = discord.Intents.none()
    wanted.guilds = True
    wanted.guild_messages = True
    wanted.dm_messages = True
    wanted.message_content = True
    wanted.guild_reactions = True
    wanted.dm_reactions = True
    return wanted


class GatewayClient(discord.Client):
    """A ``discord.Client`` whose events go to :class:`Events`, with a slash command tree."""

    def __init__(self, events: Events, *, identify_delay: float = 5.0, **options: Any) -> None:
        options.setdefault("intents", intents())
        options.setdefault("max_messages", None)  # no message cache: we never read it
        options.setdefault("chunk_guilds_at_startup", False)
        # The model's text must never ping: no @everyone, role or user mentions in any answer
        # (channel messages and interaction replies alike); the reply reference still shows.
        options.setdefault(
            "allowed_mentions", discord.AllowedMentions(everyone=False, users=False, roles=False)
        )
        super().__init__(**options)
        self._events = events
        self._identify_delay = identify_delay
        self.tree: app_commands.CommandTree[GatewayClient] = app_commands.CommandTree(self)

    def _get_state(self, **options: Any) -> ConnectionState:  # type: ignore[type-arg]
        """discord.py's documented-by-subclass seam for the connection state (as
        ``AutoShardedClient`` uses it): ours guards each dispatch parser.
        """
        return _GuardedState(
            poisoned=self._poisoned,
            dispatch=self.dispatch,
            handlers=self._handlers,
            hooks=self._hooks,
            http=self.http,
            **options,
        )

    def _poisoned(self, event: str, data: dict[str, Any], reason: str) -> None:
        # _get_state runs inside Client.__init__, before self._events is set.
        events = getattr(self, "_events", None)
        if events is not None:
            events.poisoned(event, data, reason)
        else:
            logger.warning("Discord: a malformed %s was skipped (%s)", event, reason)

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """Space out re-IDENTIFYs (Discord allows one per 5 s); the first goes at once."""
        if not initial and self._identify_delay > 0:
            await asyncio.sleep(self._identify_delay)

    async def on_connect(self) -> None:  # noqa: D102 (event names say it all)
        self._events.connected()

    async def on_resumed(self) -> None:  # noqa: D102
        self._events.connected()

    async def on_disconnect(self) -> None:  # noqa: D102
        self._events.disconnected()

    async def on_ready(self) -> None:  # noqa: D102
        await self._events.ready()

    async def on_message(self, message: discord.Message) -> None:  # noqa: D102
        self._events.message(message)

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:  # noqa: D102
        self._events.reaction(payload, True)

    async def on_raw_reaction_remove(self, payload: discord.RawReactionActionEvent) -> None:  # noqa: D102
        self._events.reaction(payload, False)
