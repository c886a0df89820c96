"""The local terminal channel (``opencomputer chat``)."""

from connectors.terminal.connector import TerminalConnector

__all__ = ["TerminalConnector"]
