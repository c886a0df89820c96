"""``/plugins`` and ``/plugin enable|disable``: admins steer the plugin system from chat.

The plugin feature (``bot/plugins``) owns discovery and enablement; these commands only read
``app.extras["plugins"]`` when they run, so they work whatever order features start in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opencomputer.bot.commands import CommandContext, CommandHandler

if TYPE_CHECKING:
    from opencomputer.bot.admin.services import AdminServices

__all__ = ["register_plugin_commands"]

GLOBAL = "*"


def _known(system: Any) -> dict[str, str]:
    """Plugin (and MCP server) names with their descriptions."""
    known = {name: p.manifest.description for name, p in system.host.plugins.items()}
    if system.mcp is not None:
        for tool in system.mcp.tools():
            known.setdefault(tool.plugin, "MCP server")
    return known


AdminDecorator = Callable[..., Callable[[CommandHandler], CommandHandler]]


def register_plugin_commands(admin: AdminDecorator, services: AdminServices) -> None:
    """Add the commands through the admin decorator (admin-only, audited)."""
    app = services.app

    @admin("plugins")
    async def plugins(ctx: CommandContext) -> str:
        """List plugins and whether they are on here."""
        system = app.extras.get("plugins")
        if system is None:
            return "The plugin system is not running."
        address = ctx.event.address
        lines = [
            f"- {name}: {'on' if system.enabled(name, address) else 'off'} — {about}"
            for name, about in sorted(_known(system).items())
        ]
        lines += [f"- {b.name}: broken — {b.reason}" for b in system.host.broken]
        return "Plugins (here):\n" + ("\n".join(lines) or "- none installed")

    @admin("plugin", "enable|disable <name> [global]")
    async def plugin(ctx: CommandContext) -> str:
        """Turn a plugin on or off in this chat (or everywhere with 'global')."""
        system = app.extras.get("plugins")
        if system is None:
            return "The plugin system is not running."
        words = ctx.args.split()
        if len(words) < 2 or words[0] not in ("enable", "disable"):
            return "Usage: /plugin enable|disable <name> [global]"
        name, on = words[1], words[0] == "enable"
        if name not in _known(system):
            return f"There is no plugin {name!r}. Send /plugins to see them."
        chat = ctx.event.chat
        scope = GLOBAL if "global" in words[2:] else f"{chat.platform}:{chat.id}"
        await system.enablement.set(name, on, scope)
        await services.audit(
            ctx.event.user.key, f"plugin.{words[0]}", {"plugin": name, "scope": scope}
        )
        where = "everywhere" if scope == GLOBAL else "in this chat"
        return f"Plugin {name} {'enabled' if on else 'disabled'} {where}."
