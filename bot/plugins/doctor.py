"""``opencomputer doctor`` lines for plugins: the sandbox, each disabled plugin, MCP settings.

Also one line per secret a plugin declares but is not handed (not granted, or holding one of
the server's own secrets), so an admin sees why a plugin says its key is missing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from opencomputer.bot.checks import Check

if TYPE_CHECKING:
    from opencomputer.bot.config import Settings
    from opencomputer.bot.plugins.loader import PluginHost
    from opencomputer.bot.plugins.sandbox import Sandbox

__all__ = ["plugin_checks"]


async def plugin_checks(settings: Settings) -> list[Check]:
    """One line for the sandbox, one for usable plugins, one per disabled plugin."""
    from opencomputer.bot.plugins.mcp import parse_servers
    from opencomputer.bot.plugins.sandbox import Sandbox

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
    quiet = logging.getLogger(
        "opencomputer.bot.plugins"
    )  # each problem becomes a line below instead
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
    quiet.setLevel(logging.CRITICAL)
    try:
        for name in usable:
            withheld = host.received(name).withheld
            for setting, why in withheld.items():
                checks.append(Check(f"plugin {name}", True, f"{setting} {why}", warning=True))
    finally:
        quiet.setLevel(level)
    if settings.mcp_servers:
        try:
            names = [s.name for s in parse_servers(settings.mcp_servers)]
            checks.append(Check("mcp", True, f"servers configured: {', '.join(names)}"))
        except ValueError as exc:
            checks.append(Check("mcp", False, str(exc)))
    return checks


async def _checked_host(settings: Settings, sandbox: Sandbox) -> PluginHost:
    """A plugin host whose plugins were each imported where they would run."""
    from opencomputer.bot.plugins.discovery import discover, plugin_environ
    from opencomputer.bot.plugins.grants import server_secrets
    from opencomputer.bot.plugins.loader import PluginHost
    from opencomputer.bot.plugins.sandbox import CallLimits

    limits = CallLimits(
        settings.plugin_timeout, settings.plugin_memory_mb, settings.plugin_cpu_seconds
    )
    environ = plugin_environ()
    host = PluginHost(
        discover(settings.plugin_dirs, environ=environ),
        sandbox=sandbox,
        data_root=settings.data_dir / "plugins",
        limits=limits,
        server_secrets=server_secrets(settings, environ),
    )
    await _use_grants(settings, host)
    # broken code shows here, not at a user's first call
    await asyncio.gather(*(host.check(name) for name in list(host.plugins)))
    return host


async def _use_grants(settings: Settings, host: PluginHost) -> None:
    """Hand the host the admin's grants from the database (if it opens; else built-ins only)."""
    from opencomputer.bot.plugins.enablement import Enablement
    from opencomputer.bot.storage import SqlStore

    store = SqlStore(settings.resolved_database_url)
    try:
        await store.start()
        builtin = {n: p.source == "builtin" for n, p in host.plugins.items()}
        enablement = Enablement(store.engine, grant_defaults=builtin)
        await enablement.start()
        host.granted = enablement.is_granted
    except Exception:  # the database line of the doctor says what is wrong with it
        return
    finally:
        await store.stop()
