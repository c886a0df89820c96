"""Discord connector (discord.py).

Importing this package imports discord.py, so the app does it only when ``DISCORD_BOT_TOKEN``
is set.
"""

import warnings

with warnings.catch_warnings():
    # discord.py 2.x imports the stdlib ``audioop`` (voice), deprecated since Python 3.11; we
    # use no voice, and the warning would fail a run with warnings as errors.
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    import discord  # noqa: F401

from opencomputer.connectors.discord.connector import DiscordConnector

__all__ = ["DiscordConnector"]
