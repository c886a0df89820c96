"""What a plugin receives: its own settings, and its secrets only once an admin granted them.

Three rules, applied every time a plugin is called (grants can change while the server runs):

- a plugin's settings live in its own namespace, ``OC_<NAME>_*`` (enforced when its manifest
  is read, :mod:`bot.plugins.manifest`), so it can never ask for ``TELEGRAM_BOT_TOKEN``;
- a secret setting reaches it only if the admin granted it
  (``opencomputer plugins grant NAME SECRET``); built-in plugins' secrets are granted unless
  revoked, because their code ships with the server;
- a value equal to (or containing) one of the server's secrets is withheld whatever the
  setting is called
  (someone pasted the bot token into a plugin's setting), with one line in the log naming the
  setting, never the value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opencomputer.bot.config import Settings
    from opencomputer.bot.plugins.discovery import Plugin

__all__ = ["SERVER_SECRET", "Granted", "Received", "receives", "server_secrets"]

SERVER_SECRET = "withheld: its value is one of the server's own secrets"

Granted = Callable[[str, str], bool]
"""``granted(plugin, secret)``: whether the admin let ``plugin`` have ``secret``."""

_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSW|API_?KEY|PRIVATE|CREDENTIAL|_KEY$", re.I)
_PLATFORMS = ("TELEGRAM_", "DISCORD_", "SLACK_", "MATRIX_", "OLLAMA_", "OPENAI_")


def server_secrets(settings: Settings | None, environ: Mapping[str, str]) -> frozenset[str]:
    """Every value that is the server's secret, never a plugin's.

    The secret fields and URL passwords of the settings, and from the environment every
    credential-looking variable the server reads or a platform uses (``SLACK_*_SECRET``,
    ``TELEGRAM_*_TOKEN``...), whether or not these settings know it yet.
    """
    from opencomputer.bot.config import server_setting_names

    values = set(settings.secret_values()) if settings is not None else set()
    server = server_setting_names()
    for name, value in environ.items():
        upper = name.upper()
        if not value or not (upper in server or upper.startswith(_PLATFORMS)):
            continue
        if _SECRET_NAME.search(upper):
            values.add(value)
        elif "://" in value and (password := _url_password(value)):
            values.add(password)
    return frozenset(values)


def _url_password(url: str) -> str | None:
    from urllib.parse import unquote, urlsplit

    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


@dataclass(frozen=True, slots=True)
class Received:
    """What one plugin gets now: the settings handed to it and those withheld, with why."""

    settings: dict[str, str] = field(default_factory=dict)
    withheld: dict[str, str] = field(default_factory=dict)
    granted: list[str] = field(default_factory=list)
    ungranted: list[str] = field(default_factory=list)

    def missing(self, plugin: Plugin) -> str | None:
        """One line if a required setting was withheld (the call cannot work), else None."""
        for name, spec in plugin.manifest.settings.items():
            if spec.required and name in self.withheld:
                return f"plugin {plugin.name}: setting {name} {self.withheld[name]}"
        return None


def receives(plugin: Plugin, granted: Granted, server: Iterable[str]) -> Received:
    """Filter ``plugin.settings`` (what discovery read) through grants and server secrets."""
    server = set(server)
    secrets = set(plugin.manifest.secret_names)
    out = Received()
    for name in plugin.manifest.secret_names:
        (out.granted if granted(plugin.name, name) else out.ungranted).append(name)
    long = [s for s in server if len(s) >= 8]  # also inside a URL or "Bearer ..." value
    for name, value in plugin.settings.items():
        if value in server or any(s in value for s in long):
            out.withheld[name] = SERVER_SECRET
        elif name in secrets and name not in out.granted:
            out.withheld[name] = (
                "withheld: secret not granted (an admin grants it with "
                f"`opencomputer plugins grant {plugin.name} {name}`)"
            )
        else:
            out.settings[name] = value
    return out
