"""Who may pull the bot into a room.

Kept as one small function on purpose: the access-control work replaces it with the shared
allow-list/pairing policy without touching the connector.
"""

from __future__ import annotations

from opencomputer.bot.config import DmPolicy, Settings

__all__ = ["may_invite"]


def may_invite(settings: Settings, inviter: str) -> bool:
    """Tell whether to accept an invite from ``inviter`` (a Matrix user id).

    Admins (``OC_ADMINS`` entries ``matrix:@user:server``) always may; anyone may when
    ``OC_DM_POLICY=open``.
    """
    return settings.dm_policy is DmPolicy.OPEN or f"matrix:{inviter}" in settings.admins
