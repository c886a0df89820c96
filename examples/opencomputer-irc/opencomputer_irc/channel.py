"""What the ``opencomputer.channels`` entry point names: the channel's declaration.

Kept light on purpose: opencomputer reads it at every start (and in ``doctor``) to learn whether
IRC is configured; the connector module is imported only when it is.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from opencomputer import Channel, Settings

__all__ = ["CHANNEL", "IrcSettings"]


class IrcSettings(BaseSettings):
    """The channel's own settings: ``IRC_*`` in the environment or ``.env``."""

    model_config = SettingsConfigDict(
        env_prefix="IRC_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    server: str = Field(
        default="", description="host:port of the IRC server (6667, or 6697 with TLS)."
    )
    tls: bool = Field(default=False, description="Connect with TLS.")
    nick: str = Field(default="opencomputer", description="The bot's nick.")
    password: str = Field(
        default="", description="Server password (PASS), if the server needs one."
    )
    channels: str = Field(
        default="", description="Comma-separated channels to join, e.g. #team,#ops."
    )
    command_prefix: str = Field(
        default="!", description="Lines starting with it are commands (!help)."
    )
    reconnect_delay: float = Field(
        default=1.0, description="First wait before reconnecting (doubles)."
    )
    reconnect_max: float = Field(default=60.0, description="Longest wait between reconnects.")
    line_interval: float = Field(
        default=1.0, description="Seconds between lines after a burst of 5."
    )
    send_timeout: float = Field(
        default=120.0, description="How long an answer waits for the connection to come back."
    )

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) from ``server``."""
        host, _, port = self.server.rpartition(":")
        if not host:
            return self.server, 6697 if self.tls else 6667
        return host.strip("[]"), int(port)

    @property
    def channel_list(self) -> list[str]:
        """The channels to join."""
        return [c.strip() for c in self.channels.split(",") if c.strip()]


def _configured(_settings: Settings) -> bool:
    return bool(IrcSettings().server)


CHANNEL = Channel(
    name="irc",
    connector="opencomputer_irc.connector:create",
    configured=_configured,
    enable="IRC_SERVER (+ IRC_NICK, IRC_CHANNELS)",
    doctor="opencomputer_irc.doctor:check",
    description="IRC networks (plain TCP or TLS), via asyncio streams",
)
