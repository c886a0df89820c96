"""Resolving where a Discord event happened: DM, guild channel, or thread under a channel.

A thread is a channel of its own in Discord; the core wants it as a thread inside its parent
channel (``Address.thread_id``), so the parent must be known. The gateway's guild cache usually
has it; threads the cache missed are looked up once over REST and remembered.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

import discord

from opencomputer.connectors.discord.translate import Place, dm_place, guild_place

__all__ = ["Places"]

logger = logging.getLogger(__name__)

_REMEMBER = 4096


class Places:
    """Maps channels to :class:`Place`, caching thread parents."""

    def __init__(self, client: discord.Client) -> None:
        self.client = client
        self._parents: OrderedDict[int, tuple[int, str]] = OrderedDict()

    def remember_thread(self, thread_id: str, parent_id: str, title: str = "") -> None:
        """Note that ``thread_id`` lives under ``parent_id`` (learned from our own sends)."""
        if thread_id.isdigit() and parent_id.isdigit():
            self._remember(int(thread_id), int(parent_id), title)

    def _remember(self, thread_id: int, parent_id: int, title: str) -> None:
        known = self._parents.get(thread_id)
        self._parents[thread_id] = (parent_id, title or (known[1] if known else ""))
        self._parents.move_to_end(thread_id)
        while len(self._parents) > _REMEMBER:
            self._parents.popitem(last=False)

    async def of_ids(self, channel_id: int, guild_id: int | None) -> Place:
        """Locate a raw event (reactions carry only ids)."""
        if guild_id is None:
            return dm_place(channel_id)
        return await self._resolve(channel_id, self.client.get_channel(channel_id))

    async def of_channel(self, channel: Any) -> Place:
        """Locate a message or interaction by its channel object."""
        if isinstance(channel, discord.Thread | discord.abc.GuildChannel):
            return await self._resolve(channel.id, channel)
        if isinstance(channel, discord.PartialMessageable):
            # A channel the cache does not know (yet): its guild id says whether it is a DM.
            return await self.of_ids(channel.id, channel.guild_id)
        if channel is None:
            raise ValueError("an event without a channel")
        return dm_place(channel.id)

    async def _resolve(self, channel_id: int, channel: Any) -> Place:
        if isinstance(channel, discord.Thread):
            parent = channel.parent
            title = parent.name if parent is not None else ""
            self._remember(channel_id, channel.parent_id, title)
            return guild_place(channel.parent_id, title, channel_id)
        if isinstance(channel, discord.abc.GuildChannel):
            return guild_place(channel_id, channel.name)
        known = self._parents.get(channel_id)
        if known is not None:
            return guild_place(known[0], known[1], channel_id)
        try:
            fetched = await self.client.fetch_channel(channel_id)
        except (discord.HTTPException, discord.InvalidData) as exc:
            logger.debug("Discord: channel %s could not be looked up: %s", channel_id, exc)
            return guild_place(channel_id, "")
        if isinstance(fetched, discord.Thread | discord.abc.GuildChannel):
            return await self._resolve(channel_id, fetched)
        return dm_place(channel_id)
