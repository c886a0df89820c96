"""Loading settings for a command: one line per bad value, a warning per unknown name.

Every command that needs settings (``opencomputer run``, ``chat``, ``plugins``, ``prompts``...)
loads them through :func:`settings_or_exit`. It belongs to the plugin feature because an
``OC_`` name is unknown only if neither the server nor an installed plugin (its ``OC_<NAME>_``
namespace) reads it, and it is not in ``opencomputer.bot.cli`` so that the feature CLIs
(``bot.plugins.cli``, ``bot.feedback.cli``) need not import the command line that imports them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from opencomputer.bot.config import Settings

__all__ = ["setting_warnings", "settings_or_exit"]


def setting_warnings(settings: Settings, env_file: Path = Path(".env")) -> list[str]:
    """Unknown ``OC_`` names in the environment and ``.env`` (plugins' namespaces allowed)."""
    import os

    from opencomputer.bot.config import read_env_file, unknown_setting_warnings
    from opencomputer.bot.plugins.discovery import discover
    from opencomputer.bot.plugins.manifest import setting_prefix

    names = set(os.environ)
    if env_file.is_file():
        names |= set(read_env_file(env_file))
    try:
        found = discover(list(settings.plugin_dirs), environ={})
        plugins = [*found.plugins, *(b.name for b in found.broken)]
    except Exception:  # discovery problems are doctor's `plugins` check, not ours
        plugins = []
    return unknown_setting_warnings(names, extra_prefixes=[setting_prefix(p) for p in plugins])


def settings_or_exit() -> Settings:
    """Load settings; on a bad value print the one-line-per-problem message and exit 2."""
    from opencomputer.bot.config import ConfigError, load_settings

    try:
        settings = load_settings()
    except ConfigError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None
    for line in setting_warnings(settings):  # a misspelt key would otherwise do nothing
        typer.secho(f"warning: {line}", fg="yellow", err=True)
    return settings
