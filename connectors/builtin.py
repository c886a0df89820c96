"""The built-in messengers, declared exactly as a third-party channel declares itself.

``pyproject.toml`` points the ``opencomputer.channels`` entry points here. This module must stay
light: each connector (and its platform SDK) is named by a string and imported only when its
credentials are present. The terminal is not a channel ``run`` serves: ``opencomputer chat``
builds it around the runtime it talks to (it waits for each answer before prompting again).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opencomputer.bot.channels import Channel

if TYPE_CHECKING:
    from opencomputer.bot.config import Settings

__all__ = ["API", "DISCORD", "MATRIX", "SLACK", "TELEGRAM", "TERMINAL"]


def _telegram(s: Settings) -> bool:
    return bool(s.telegram_bot_token)


def _discord(s: Settings) -> bool:
    return bool(s.discord_bot_token)


def _slack(s: Settings) -> bool:
    return bool(s.slack_bot_token and (s.slack_signing_secret or s.slack_app_token))


def _api(s: Settings) -> bool:
    return bool(s.api_enabled)


def _matrix(s: Settings) -> bool:
    return bool(
        s.matrix_homeserver and s.matrix_user_id and (s.matrix_password or s.matrix_access_token)
    )


TELEGRAM = Channel(
    name="telegram",
    connector="opencomputer.connectors.telegram:TelegramConnector",
    configured=_telegram,
    enable="TELEGRAM_BOT_TOKEN",
    doctor="opencomputer.connectors.telegram.doctor:diagnose",
    description="Telegram bots (long polling or webhook)",
)
DISCORD = Channel(
    name="discord",
    connector="opencomputer.connectors.discord:DiscordConnector",
    configured=_discord,
    enable="DISCORD_BOT_TOKEN",
    description="Discord bots (gateway, slash commands)",
)
SLACK = Channel(
    name="slack",
    connector="opencomputer.connectors.slack:SlackConnector",
    configured=_slack,
    enable="SLACK_BOT_TOKEN + SLACK_SIGNING_SECRET (HTTP) or SLACK_APP_TOKEN (Socket Mode)",
    doctor="opencomputer.connectors.slack.doctor:diagnose",
    description="Slack apps (Events API over HTTP or Socket Mode)",
)
MATRIX = Channel(
    name="matrix",
    connector="opencomputer.connectors.matrix:MatrixConnector",
    configured=_matrix,
    enable="MATRIX_HOMESERVER + MATRIX_USER_ID + MATRIX_PASSWORD or MATRIX_ACCESS_TOKEN",
    description="Matrix rooms and DMs (matrix-nio)",
)
TERMINAL = Channel(
    name="terminal",
    connector="opencomputer.connectors.terminal:create",
    # never started by `run`: `opencomputer chat` builds it around the runtime it talks to
    description="This terminal (opencomputer chat)",
)
API = Channel(
    name="api",
    connector="opencomputer.connectors.api:ApiConnector",
    configured=_api,
    enable="OC_API_ENABLED=true (then: opencomputer keys create --person NAME)",
    doctor="opencomputer.connectors.api.doctor:diagnose",
    description="OpenAI-compatible HTTP API (/v1/chat/completions) for Open WebUI and others",
)
