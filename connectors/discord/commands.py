"""Native slash commands: building the application command tree and publishing it.

Every :class:`CommandSpec` becomes an application command (plus one per alias) with an
optional free-text ``args`` option. Admin commands carry ``default_member_permissions =
administrator``, so Discord hides them from everyone else in guilds (the command router still
checks ``OC_ADMINS``: default permissions are only a default a server owner can change).
Commands go to each guild in ``DISCORD_GUILD_IDS`` (updates show at once) or, without it,
globally (Discord may take a while to show changes everywhere).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import discord
from discord import app_commands

from opencomputer.bot.connector import CommandSpec

__all__ = ["AppCommand", "Invoke", "build_commands", "command_name", "install", "sync"]

logger = logging.getLogger(__name__)

Invoke = Callable[[discord.Interaction, str, str], Awaitable[None]]
"""Called with the interaction, the core command name and the argument text."""

AppCommand = app_commands.Command[Any, ..., None]


def command_name(name: str) -> str | None:
    """Return a valid Discord command name for ``name`` (lowercase, 1-32 of ``[-_a-z0-9]``)."""
    cleaned = re.sub(r"[^-_\w]", "_", name.strip().lstrip("/").lower())[:32]
    return cleaned if re.fullmatch(r"[-_\w]{1,32}", cleaned) else None


def _command(name: str, spec: CommandSpec, invoke: Invoke) -> AppCommand:
    target = spec.name
    description = (spec.help or spec.name).strip().splitlines()[0][:100] or spec.name
    callback: Callable[..., Awaitable[None]]
    if spec.args:

        async def with_args(interaction: discord.Interaction, args: str | None = None) -> None:
            await invoke(interaction, target, args or "")

        callback = app_commands.describe(args=spec.args[:100])(with_args)
    else:

        async def without_args(interaction: discord.Interaction) -> None:
            await invoke(interaction, target, "")

        callback = without_args
    cmd: AppCommand = app_commands.Command(name=name, description=description, callback=callback)
    if spec.admin:
        cmd.default_permissions = discord.Permissions(administrator=True)
    return cmd


def build_commands(specs: Sequence[CommandSpec], invoke: Invoke) -> list[AppCommand]:
    """One application command per name and alias; invalid or repeated names are skipped."""
    seen: set[str] = set()
    out: list[AppCommand] = []
    for spec in specs:
        for raw in (spec.name, *spec.aliases):
            name = command_name(raw)
            if name is None:
                logger.warning("Discord: %r is not a valid slash command name", raw)
                continue
            if name not in seen:
                seen.add(name)
                out.append(_command(name, spec, invoke))
    return out


def install(
    tree: app_commands.CommandTree[Any],
    specs: Sequence[CommandSpec],
    guild_ids: Sequence[int],
    invoke: Invoke,
) -> int:
    """Replace the tree's commands with ``specs`` locally (no request); return how many.

    Done as soon as the client exists, so an interaction that arrives before the first sync
    (Discord still has the commands from the last run) finds its command.
    """
    guilds = [discord.Object(id=g) for g in guild_ids]
    tree.clear_commands(guild=None)
    for guild in guilds:
        tree.clear_commands(guild=guild)
    commands = build_commands(specs, invoke)
    for command in commands:
        tree.add_command(command, guilds=guilds or discord.utils.MISSING)
    return len(commands)


async def sync(tree: app_commands.CommandTree[Any], guild_ids: Sequence[int]) -> bool:
    """Publish the installed commands to Discord; False (logged) on failure."""
    try:
        if guild_ids:
            for guild_id in guild_ids:
                await tree.sync(guild=discord.Object(id=guild_id))
        else:
            await tree.sync()
    except discord.HTTPException as exc:
        logger.error(
            "Discord: registering slash commands failed (%s); invite the bot with the "
            "'applications.commands' scope (see docs/discord.md)",
            exc,
        )
        return False
    scope = f"in {len(guild_ids)} guild(s)" if guild_ids else "globally"
    logger.info("Discord: slash commands registered %s", scope)
    return True
