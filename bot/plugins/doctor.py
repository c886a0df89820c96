"""``opencomputer doctor`` lines for plugins: the sandbox, each disabled plugin, MCP settings."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.doctor import Check
    from bot.plugins.loader import PluginHost
    from bot.plugins.sandbox import Sandbox

__all__ = ["plugin_checks"]


async def plugin_checks(settings: Settings) -> list[Check]:
    """One line for the sandbox, one for usable plugins, one per disabled plugin."""
    from bot.doctor import Check
    from bot.plugins.mcp import parse_servers
    from bot.plugins.sandbox import Sandbox

    checks: list[Check] = []
    sandbox = Sandbox(mode=settings.plugin_sandbox)
    refusal = sandbox.refusal()
    if settings.plugin_sandbox == "off":
        detail = "OC_PLUGIN_SANDBOX=off: plugins run WITHOUT isolation"
        checks.append(Check("sandbox", True, detail, warning=True))
    elif refusal:
        detail = f"sandboxed plugins are refused: {refusal}"
        checks.append(Check("sandbox", True, detail, warning=True))
    else:
        checks.append(Check("sandbox", True, f"bubblewrap at {sandbox.bwrap}"))
    quiet = logging.getLogger("bot.plugins")  # each problem becomes a line below instead
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        host = await _checked_host(settings, sandbox)
    finally:
        quiet.setLevel(level)
    usable = sorted(host.plugins)
    checks.append(Check("plugins", True, f"{len(usable)} usable: {', '.join(usable) or 'none'}"))
    for broken in host.broken:
        checks.append(
            Check(f"plugin {broken.name}", True, f"disabled: {broken.reason}", warning=True)
        )
    if settings.mcp_servers:
        try:
            names = [s.name for s in parse_servers(settings.mcp_servers)]
            checks.append(Check("mcp", True, f"servers configured: {', '.join(names)}"))
        except ValueError as exc:
            checks.append(Check("mcp", False, str(exc)))
    return checks


async def _checked_host(settings: Settings, sandbox: Sandbox) -> PluginHost:
    """A plugin host whose plugins were each imported where they would run."""
    from bot.plugins.discovery import discover
    from bot.plugins.loader import PluginHost
    from bot.plugins.sandbox import CallLimits

    limits = CallLimits(
        settings.plugin_timeout, settings.plugin_memory_mb, settings.plugin_cpu_seconds
    )
    host = PluginHost(
        discover(settings.plugin_dirs),
        sandbox=sandbox,
        data_root=settings.data_dir / "plugins",
        limits=limits,
    )
    # broken code shows here, not at a user's first call
    await asyncio.gather(*(host.check(name) for name in list(host.plugins)))
    return host
