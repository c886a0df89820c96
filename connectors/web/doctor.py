"""``opencomputer doctor`` check for the web chat: where it is, and who can reach it."""

from __future__ import annotations

import ipaddress

from opencomputer.bot.checks import Check
from opencomputer.bot.config import DmPolicy, Settings

__all__ = ["diagnose"]


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


async def diagnose(settings: Settings) -> list[Check]:
    """One line where it is served, plus a warning when strangers on the network could talk
    to the agent or when its cookie would travel without TLS.
    """
    url = f"http://{settings.http_host}:{settings.http_port}/chat"
    checks = [Check("web chat", True, f"serving {url} (DM policy: {settings.dm_policy})")]
    if _loopback(settings.http_host):
        return checks
    if settings.dm_policy is DmPolicy.OPEN:
        checks.append(
            Check(
                "web chat access",
                False,
                f"OC_HTTP_HOST={settings.http_host} and OC_DM_POLICY=open: anyone who reaches "
                "the port talks to the agent; use OC_DM_POLICY=pairing or bind to 127.0.0.1",
                warning=True,
            )
        )
    if settings.web_cookie_secure != "true":
        checks.append(
            Check(
                "web chat TLS",
                False,
                f"/chat is served on {settings.http_host} without TLS of its own: put a TLS "
                "proxy in front and set OC_WEB_COOKIE_SECURE=true (docs/web.md)",
                warning=True,
            )
        )
    return checks
