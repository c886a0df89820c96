"""The local terminal channel (``opencomputer chat``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opencomputer.connectors.terminal.connector import TerminalConnector

if TYPE_CHECKING:
    from opencomputer.bot.config import Settings
    from opencomputer.bot.connector import Emit

__all__ = ["TerminalConnector", "create"]


def create(_settings: Settings, emit: Emit, **services: Any) -> TerminalConnector:
    """The channel's factory (``connectors.builtin:TERMINAL``): the terminal waits for each
    answer (``wait_idle``) before it prompts again; files sent to it land in
    ``<data dir>/files``.
    """
    return TerminalConnector(
        emit,
        wait_idle=services["wait_idle"],
        files_dir=_settings.data_dir / "files",
        hooks=services.get("hooks"),
    )
