"""``opencomputer doctor`` lines for plugins: the sandbox, each disabled plugin, MCP settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.doctor import Check

__all__ = ["plugin_checks"]


async def plugin_checks(settings: Settings) -> list[Check]:
    """One line for the sandbox, one for usable plugins, one per disabled plugin."""
    from bot.doctor import Check
    from bot.plugins.discovery import discover
    from bot.plugins.mcp import parse_servers
    from bot.plugins.sandbox import Sandbox

    checks: list[Check] = []
    sandbox = Sandbox(mode=settings.plugin_sandbox)
    refusal = sandbox.refusal()
    if settings.plugin_sandbox == "off":
        checks.append(
            Check(
                "sandbox",
                True,
                "OC_PLUGIN_SANDBOX=off: plugins run WITHOUT isolation",
                warning=True,
            )
        )
    elif refusal:
        checks.append(
            Check("sandbox", True, f"sandboxed plugins are refused: {refusal}", warning=True)
        )
    else:
        checks.append(Check("sandbox", True, f"bubblewrap at {sandbox.bwrap}"))
    found = discover(settings.plugin_dirs)
    usable = sorted(n for n, p in found.plugins.items() if p.in_process or not refusal)
    checks.append(Check("plugins", True, f"{len(usable)} usable: {', '.join(usable) or 'none'}"))
    for broken in found.broken:
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
