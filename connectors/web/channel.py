"""What the ``opencomputer.channels`` entry point ``web`` names: the browser chat.

Kept light: read at every start and by ``doctor``; the connector is imported only when
``OC_WEB_CHAT`` is on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opencomputer.bot.channels import Channel

if TYPE_CHECKING:
    from opencomputer.bot.config import Settings

__all__ = ["WEB"]


def _configured(settings: Settings) -> bool:
    return bool(getattr(settings, "web_chat", False))


WEB = Channel(
    name="web",
    connector="opencomputer.connectors.web.connector:create",
    configured=_configured,
    enable="OC_WEB_CHAT=true (see docs/web.md)",
    doctor="opencomputer.connectors.web.doctor:diagnose",
    description="Browser chat at /chat on the HTTP app: streamed answers, 👍/👎, pairing",
)
