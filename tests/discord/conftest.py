"""Fixtures for the Discord tests live in ``discord_helpers`` (importable by name)."""

from tests.discord.discord_helpers import connector, discord_env, fake, sink

__all__ = ["connector", "discord_env", "fake", "sink"]
