"""Current date and time, so the model never guesses what day it is."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from opencomputer import ToolError, tool


@tool
def current_time(timezone: str = "UTC") -> str:
    """Get the current date and time.

    Args:
        timezone: IANA time zone name such as Europe/Paris or America/New_York.
    """
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        hint = "use an IANA name like Europe/Paris"
        raise ToolError(f"unknown time zone {timezone!r}; {hint}") from exc
    now = datetime.now(zone)
    return now.strftime(f"%A %Y-%m-%d %H:%M:%S {timezone} (UTC%z)")
