"""What the ``opencomputer.channels`` entry point ``hook`` names: the webhook channel.

Kept light: read at every start and by ``doctor``; the connector is imported only when
``OC_HOOKS`` is set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opencomputer.bot.channels import Channel

if TYPE_CHECKING:
    from opencomputer.bot.config import Settings

__all__ = ["HOOK"]


def _configured(settings: Settings) -> bool:
    return bool(getattr(settings, "hooks", None))


HOOK = Channel(
    name="hook",
    connector="opencomputer.connectors.hooks.connector:create",
    configured=_configured,
    enable="OC_HOOKS + OC_HOOK_<NAME>_SECRET (see docs/webhooks.md)",
    doctor="opencomputer.connectors.hooks.connector:diagnose",
    description="Inbound webhooks: POST /hooks/NAME, HMAC-signed, into a chat or a turn",
)
