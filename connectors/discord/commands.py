"""Native slash commands: building the command tree, and answering interactions.

Every :class:`CommandSpec` becomes an application command (plus one per alias) with an
optional free-text ``args`` option. Admin commands carry ``default_member_permissions =
administrator``, so Discord hides them from everyone else in guilds (the command router still
checks ``OC_ADMINS``: default permissions are only a default a server owner can change).

An interaction must be answered within 3 seconds. :class:`InteractionReplies` keeps the
interaction until the core sends the command's reply: if it comes in time it *is* the answer;
if not, the interaction is deferred ("thinking...") and the reply replaces that placeholder.
Either way the reply lands in the channel, and edits to it go through the interaction token.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import discord
from discord import app_commands

from bot.connector import CommandSpec
from bot.events import Address

__all__ = ["InteractionReplies", "build_commands", "command_name"]

logger = logging.getLogger(__name__)

Invoke = Callable[[discord.Interaction, str, str], Awaitable[None]]
"""Called with the interaction, the core command name and the argument text."""

_TOKEN_LIFETIME = 14 * 60.0  # interaction tokens last 15 minutes; keep a margin


def command_name(name: str) -> str | None:
    """A valid Discord command name for ``name`` (lowercase, 1-32 of ``[-_a-z0-9]``)."""
    cleaned = re.sub(r"[^-_\w]", "_", name.strip().lstrip("/").lower())[:32]
    return cleaned if re.fullmatch(r"[-_\w]{1,32}", cleaned) else None


def _command(name: str, spec: CommandSpec, invoke: Invoke) -> app_commands.Command[..., None]:
    target = spec.name
    description = (spec.help or spec.name).strip().splitlines()[0][:100] or spec.name
    if spec.args:

        async def with_args(interaction: discord.Interaction, args: str | None = None) -> None:
            await invoke(interaction, target, args or "")

        callback = app_commands.describe(args=spec.args[:100])(with_args)
    else:

        async def without_args(interaction: discord.Interaction) -> None:
            await invoke(interaction, target, "")

        callback = without_args
    cmd = app_commands.Command(name=name, description=description, callback=callback)
    if spec.admin:
        cmd.default_permissions = discord.Permissions(administrator=True)
    return cmd


def build_commands(
    specs: Sequence[CommandSpec], invoke: Invoke
) -> list[app_commands.Command[..., None]]:
    """One application command per name and alias; invalid or repeated names are skipped."""
    seen: set[str] = set()
    out: list[app_commands.Command[..., None]] = []
    for spec in specs:
        for raw in (spec.name, *spec.aliases):
            name = command_name(raw)
            if name is None or name in seen:
                if name is None:
                    logger.warning("Discord: %r is not a valid slash command name", raw)
                continue
            seen.add(name)
            out.append(_command(name, spec, invoke))
    return out


@dataclass
class _Pending:
    interaction: discord.Interaction
    address: Address
    created: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    deferred: bool = False
    answered: bool = False
    timer: asyncio.Task[None] | None = None


class InteractionReplies:
    """Interactions waiting for their reply, and the messages sent through them."""

    def __init__(self, defer_after: float = 2.0) -> None:
        self.defer_after = defer_after
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._messages: OrderedDict[str, _Pending] = OrderedDict()

    def add(self, interaction: discord.Interaction, address: Address) -> None:
        """Hold ``interaction`` for its reply; defer it if none comes within ``defer_after``."""
        pending = _Pending(interaction, address)
        self._expire()
        self._pending[str(interaction.id)] = pending
        pending.timer = asyncio.create_task(self._defer_later(pending))

    async def _defer_later(self, pending: _Pending) -> None:
        await asyncio.sleep(self.defer_after)
        async with pending.lock:
            if pending.answered or pending.interaction.response.is_done():
                return
            try:
                await pending.interaction.response.defer(thinking=True)
                pending.deferred = True
            except discord.HTTPException as exc:
                logger.warning("Discord: could not defer an interaction: %s", exc)

    def _take(self, address: Address, reply_to: str | None) -> _Pending | None:
        if reply_to is not None and reply_to in self._pending:
            return self._pending.pop(reply_to)
        for key, pending in self._pending.items():
            if pending.address == address:
                return self._pending.pop(key)
        return None

    async def send(self, address: Address, text: str, reply_to: str | None) -> str | None:
        """Send ``text`` as the answer to a held interaction; None when none is held."""
        pending = self._take(address, reply_to)
        if pending is None:
            return None
        # The defer timer is left to run: cancelling it mid-request could lose a defer that
        # Discord already applied. Under the lock it sees ``answered`` and does nothing.
        async with pending.lock:
            pending.answered = True
            interaction = pending.interaction
            try:
                if pending.deferred:
                    message = await interaction.edit_original_response(content=text)
                    message_id = message.id
                else:
                    response = await interaction.response.send_message(text)
                    if response.message_id is None:
                        return None
                    message_id = response.message_id
            except discord.HTTPException as exc:
                logger.warning("Discord: interaction answer failed, posting instead: %s", exc)
                return None
        key = str(message_id)
        self._messages[key] = pending
        return key

    async def edit(self, message_id: str, text: str) -> bool:
        """Edit an interaction's answer through its token; False if it is not one (or stale)."""
        pending = self._messages.get(message_id)
        if pending is None or time.monotonic() - pending.created > _TOKEN_LIFETIME:
            return False
        await pending.interaction.edit_original_response(content=text)
        return True

    def _expire(self) -> None:
        now = time.monotonic()
        for table in (self._pending, self._messages):
            while table:
                key, pending = next(iter(table.items()))
                if now - pending.created <= _TOKEN_LIFETIME:
                    break
                del table[key]
                if pending.timer is not None:
                    pending.timer.cancel()

    def close(self) -> None:
        """Cancel every defer timer."""
        for pending in (*self._pending.values(), *self._messages.values()):
            if pending.timer is not None:
                pending.timer.cancel()
        self._pending.clear()
        self._messages.clear()
