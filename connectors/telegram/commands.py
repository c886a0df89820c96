"""The command menu Telegram shows, built from the core's command specs.

Everyone gets the public commands (default scope); each admin's private chat with the bot gets
the public and the admin commands (a chat scope), so the menu never advertises commands a user
cannot run. Telegram takes at most 100 commands per scope, names of 1-32 ``[a-z0-9_]``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence

from telegram import BotCommand

from opencomputer.bot.connector import CommandSpec

__all__ = ["MAX_COMMANDS", "admin_user_ids", "bot_commands"]

logger = logging.getLogger(__name__)

MAX_COMMANDS = 100
_NAME = re.compile(r"^[a-z0-9_]{1,32}$")


def bot_commands(specs: Iterable[CommandSpec]) -> list[BotCommand]:
    """Telegram command objects for ``specs`` (invalid names skipped, at most 100)."""
    out: list[BotCommand] = []
    seen: set[str] = set()
    for spec in specs:
        name = spec.name.lower().replace("-", "_")
        if not _NAME.match(name) or name in seen:
            logger.debug("command %r cannot be a Telegram menu entry; skipped", spec.name)
            continue
        seen.add(name)
        usage = f" {spec.args}" if spec.args else ""
        description = (spec.help or name).strip().splitlines()[0] + usage
        out.append(BotCommand(name, description[:256]))
    if len(out) > MAX_COMMANDS:
        logger.warning(
            "Telegram menus hold %d commands; %d not listed (they still work when typed)",
            MAX_COMMANDS,
            len(out) - MAX_COMMANDS,
        )
        out = out[:MAX_COMMANDS]
    return out


def admin_user_ids(admins: Sequence[str]) -> list[int]:
    """Telegram user ids among ``OC_ADMINS`` entries (``telegram:<user_id>``)."""
    ids: list[int] = []
    for entry in admins:
        platform, _, user_id = entry.partition(":")
        if platform == "telegram" and user_id.lstrip("-").isdigit():
            ids.append(int(user_id))
    return ids
