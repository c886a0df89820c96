"""The plugins page: what is installed, what each may do, where it is on; enable, disable,
grant, revoke, consent.

Every change is one call on the plugin feature's :class:`~bot.plugins.enablement.Enablement`
(``app.extras["plugins"].enablement``), the very object ``/plugin enable|disable`` and
``opencomputer plugins enable|disable|grant|revoke`` change, so the next turn sees it; other
processes hear of it through ``app.changes`` (scale-out) or their 15 s refresh, as after the
CLI. *Consent* is what ``opencomputer plugins install`` does when the admin says yes: enable
everywhere and grant every secret the manifest declares. Each change is audited under the
admin's account (``plugin.enable``, ``plugin.disable``, ``plugin.grant``, ``plugin.revoke``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from aiohttp import web

from opencomputer.bot import audit
from opencomputer.bot.control.auth import Admin
from opencomputer.bot.control.web import ControlWeb, body, error, ok
from opencomputer.bot.plugins.enablement import GLOBAL
from opencomputer.bot.plugins.grants import receives

if TYPE_CHECKING:
    from opencomputer.bot.features import Host
    from opencomputer.bot.plugins.discovery import Plugin

__all__ = ["PluginsPage"]

ACTIONS = ("enable", "disable", "grant", "revoke", "consent")
_CHAT = re.compile(r"^[a-z][a-z0-9_-]{0,31}:\S{1,250}$")
PLATFORMS = frozenset({"telegram", "discord", "slack", "matrix", "terminal", "web"})


def describe(plugin: Plugin, system: Any) -> dict[str, Any]:
    """One plugin as the page shows it (secrets by name, never by value)."""
    m, perms = plugin.manifest, plugin.manifest.permissions
    decisions = system.enablement.decisions(m.name)
    return {
        "name": m.name,
        "version": m.version,
        "description": m.description,
        "author": m.author,
        "source": plugin.source,
        "sandboxed": not plugin.in_process,
        "on_by_default": plugin.on_by_default,
        "enabled": system.enablement.is_enabled(m.name),
        "chats": {scope: on for scope, on in decisions.items() if scope != GLOBAL},
        # from a folder or pip, never decided: it waits for the admin's consent
        "new": plugin.source != "builtin" and not decisions,
        "permissions": {
            "network": list(perms.network),
            "files_read": list(perms.files.read),
            "files_write": list(perms.files.write),
            "process": perms.process,
        },
        "secrets": {s: system.enablement.is_granted(m.name, s) for s in m.secret_names},
        "secret_notes": secret_notes(plugin, system),
        "tools": [t.name for t in m.tools],
    }


def secret_notes(plugin: Plugin, system: Any) -> dict[str, str]:
    """Why a *granted* secret still does not reach the plugin (what ``plugins grant`` warns
    of): its value is one of the server's own secrets, or it is not set at all.
    """
    got = receives(plugin, system.enablement.is_granted, system.host.server_secrets)
    notes: dict[str, str] = {}
    for secret in plugin.manifest.secret_names:
        if secret not in got.granted:
            continue
        if secret in got.withheld:
            notes[secret] = got.withheld[secret]
        elif secret not in got.settings:
            notes[secret] = f"not set: put {secret} in the server's environment or .env"
    return notes


class PluginsPage:
    """``GET /ui/api/plugins`` and ``POST /ui/api/plugins/NAME``."""

    def __init__(self, app: Host, web_: ControlWeb) -> None:
        self.app = app
        self.web = web_

    def routes(self) -> list[web.RouteDef]:
        """Guarded routes; changes need the CSRF token."""
        guard = self.web.guard
        return [
            web.get("/ui/api/plugins", guard(self.list_)),
            web.post("/ui/api/plugins/{name}", guard(self.change, changes=True)),
        ]

    async def data(self) -> dict[str, Any] | None:
        """Every plugin, the ones set aside with why, and MCP servers by name (None: off).

        Also the live ``plugins`` event, so an open page hears of a grant or an enablement
        changed elsewhere (chat, CLI, another admin).
        """
        system = self.app.extras.get("plugins")
        if system is None:
            return None
        plugins = [describe(p, system) for _, p in sorted(system.host.plugins.items())]
        mcp = sorted({t.plugin for t in system.mcp.tools()}) if system.mcp is not None else []
        return {
            "plugins": plugins,
            "broken": [{"name": b.name, "reason": b.reason} for b in system.host.broken],
            "mcp": [{"name": n, "enabled": system.enablement.is_enabled(n)} for n in mcp],
        }

    async def list_(self, _request: web.Request, _admin: Admin) -> web.StreamResponse:
        """The plugins page's data."""
        data = await self.data()
        if data is None:
            return error(404, "the plugin system is off (OC_FEATURES_OFF)")
        return ok(data)

    async def change(self, request: web.Request, admin: Admin) -> web.StreamResponse:
        """``{"action": "enable"|"disable", "chat"?}``, ``{"action": "grant"|"revoke",
        "secret"}`` or ``{"action": "consent"}``.
        """
        system = self.app.extras.get("plugins")
        if system is None:
            return error(404, "the plugin system is off (OC_FEATURES_OFF)")
        name = request.match_info["name"]
        data = await body(request)
        action = data.get("action")
        if action not in ACTIONS:
            return error(400, f"action must be one of {', '.join(ACTIONS)}")
        plugin = system.host.plugins.get(name)
        mcp = system.mcp is not None and any(t.plugin == name for t in system.mcp.tools())
        if plugin is None and not (mcp and action in ("enable", "disable")):
            return error(404, f"there is no plugin {name!r}")
        enablement = system.enablement
        done: list[tuple[str, dict[str, Any]]] = []
        if action in ("enable", "disable"):
            chat = str(data.get("chat") or "").strip()
            if chat and not self._chat_ok(chat):
                return error(400, f"{chat!r} is not a chat address: use platform:chat_id")
            scope = chat or GLOBAL
            await enablement.set(name, action == "enable", scope)
            done.append((f"plugin.{action}", {"plugin": name, "scope": scope}))
        else:
            assert plugin is not None
            secrets = plugin.manifest.secret_names
            if action == "consent":
                await enablement.set(name, True, GLOBAL)
                done.append(("plugin.enable", {"plugin": name, "scope": GLOBAL}))
                chosen = list(secrets)
            else:
                secret = str(data.get("secret") or "")
                if secret not in secrets:
                    known = ", ".join(secrets) or "none"
                    return error(
                        400, f"{secret!r} is not a secret of {name} (its secrets: {known})"
                    )
                chosen = [secret]
            granted = action != "revoke"
            for secret in chosen:
                await enablement.grant(name, secret, granted)
                kind = "plugin.grant" if granted else "plugin.revoke"
                done.append((kind, {"plugin": name, "secret": secret}))
        if self.app.changes is not None:  # other processes reload now, not in 15 s
            await self.app.changes.changed("plugins")
        for action_name, detail in done:
            await audit.audit(self.app.store, admin.key, action_name, {**detail, "via": "web"})
        return ok({"plugin": describe(plugin, system) if plugin is not None else None})

    def _chat_ok(self, chat: str) -> bool:
        """A chat key some connector can produce (else the decision would never apply)."""
        platform = chat.partition(":")[0]
        known = PLATFORMS | set(self.app.runtime.connectors)
        return bool(_CHAT.match(chat)) and platform in known
