"""The discord.py client the connector drives: intents, options and event forwarding.

Subclassing ``discord.Client`` and defining ``on_<event>`` methods is discord.py's documented
way to receive events; each method only forwards to the connector's :class:`Events`, so the
platform glue stays in one place and nothing here holds state of its own.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import discord
from discord import app_commands

__all__ = ["Events", "GatewayClient", "intents"]


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
