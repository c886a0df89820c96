"""``opencomputer plugins new|list|info|enable|disable|install``."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.plugins.discovery import Discovery, Plugin

__all__ = ["plugins_app"]

plugins_app = typer.Typer(
    help="Plugins: create, list, inspect, enable, install.", no_args_is_help=True
)
ChatOption = Annotated[
    str | None,
    typer.Option("--chat", help="Only in this chat (platform:chat_id); default: everywhere."),
]


def _settings() -> Settings:
    from bot.cli import settings_or_exit  # late: bot.cli registers this sub-app on import

    return settings_or_exit()


def _discover(settings: Settings) -> Discovery:
    import logging

    from bot.plugins.discovery import discover

    logging.getLogger("bot.plugins.discovery").setLevel(logging.ERROR)  # shown in the table
    return discover(settings.plugin_dirs)


async def _enablement(settings: Settings) -> tuple[object, object]:
    from bot.plugins.enablement import Enablement
    from bot.storage import SqlStore

    store = SqlStore(settings.resolved_database_url)
    await store.start()
    enablement = Enablement(store.engine)
    await enablement.start()
    return store, enablement


def _state(plugin: Plugin, decisions: dict[str, bool]) -> str:
    default = plugin.manifest.enabled_by_default and plugin.source != "package"
    on = decisions.get("*", default)
    chats = [f"{scope}={'on' if v else 'off'}" for scope, v in decisions.items() if scope != "*"]
    return ("on" if on else "off") + (f" ({', '.join(chats)})" if chats else "")


@plugins_app.command("new")
def new(
    name: str,
    folder: Annotated[Path, typer.Option("--dir", help="Where to create it.")] = Path("."),
    description: Annotated[str, typer.Option(help="One line saying what it does.")] = "",
) -> None:
    """Create a working plugin (manifest, code, test) to edit."""
    from bot.plugins.scaffold import scaffold

    try:
        created = scaffold(name, folder, description)
    except (ValueError, FileExistsError) as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"created {created}")
    typer.echo(f"  test it:   pytest {created}")
    typer.echo(f"  use it:    OC_PLUGIN_DIRS={created.resolve().parent} opencomputer chat")


@plugins_app.command("list")
def list_() -> None:
    """Every plugin found, its source, and whether it is on; disabled ones say why."""
    settings = _settings()
    found = _discover(settings)

    async def decisions() -> dict[str, dict[str, bool]]:
        store, enablement = await _enablement(settings)
        try:
            return {n: enablement.decisions(n) for n in found.plugins}  # type: ignore[attr-defined]
        finally:
            await store.stop()  # type: ignore[attr-defined]

    states = asyncio.run(decisions())
    for name, plugin in sorted(found.plugins.items()):
        typer.echo(
            f"{name:<16} {plugin.manifest.version:<9} {plugin.source:<8} "
            f"{_state(plugin, states[name])}  {plugin.manifest.description}"
        )
    for broken in found.broken:
        typer.secho(f"{broken.name:<16} {'-':<9} {'-':<8} DISABLED: {broken.reason}", fg="yellow")


def _describe(plugin: Plugin) -> list[str]:
    m, perms = plugin.manifest, plugin.manifest.permissions
    lines = [
        f"{m.name} {m.version} — {m.description}",
        f"  author: {m.author or '-'}; source: {plugin.source} ({plugin.folder})",
        f"  supports opencomputer {m.opencomputer}; runs "
        + ("in the server (trusted built-in)" if plugin.in_process else "in a sandbox"),
        "  permissions:",
        f"    network: {', '.join(perms.network) or 'none'}",
        f"    files read: {', '.join(perms.files.read) or 'none'}; "
        f"write: {', '.join(perms.files.write) or 'none (its data folder only)'}",
        f"    start programs: {'yes' if perms.process else 'no'}",
        f"    secrets: {', '.join(perms.secrets) or 'none'}",
    ]
    for key, spec in m.settings.items():
        need = "required" if spec.required else f"default {spec.default!r}"
        lines.append(f"  setting {key} ({need}): {spec.description}")
    for decl in m.tools:
        flag = " [dangerous: needs approval]" if decl.dangerous else ""
        lines.append(f"  tool {decl.name}{flag}: {decl.description}")
    lines += [f"  command /{c.name} {c.args}".rstrip() + f": {c.description}" for c in m.commands]
    lines += [f"  hook {h}" for h in m.hooks] + [
        f"  job {j.name} every {j.every:g} s" for j in m.jobs
    ]
    return lines


@plugins_app.command("info")
def info(name: str) -> None:
    """Show a plugin's manifest: permissions, settings, tools, commands."""
    found = _discover(_settings())
    plugin = found.plugins.get(name)
    if plugin is None:
        reasons = [b.reason for b in found.broken if b.name == name]
        typer.secho(f"plugin {name}: " + (reasons[0] if reasons else "not found"), fg="red")
        raise typer.Exit(1)
    for line in _describe(plugin):
        typer.echo(line)


def _set(name: str, enabled: bool, chat: str | None) -> None:
    settings = _settings()
    found = _discover(settings)
    if name not in found.plugins and not name.startswith("mcp:"):
        typer.secho(f"no usable plugin named {name} (see `opencomputer plugins list`)", fg="red")
        raise typer.Exit(1)

    async def apply() -> bool:
        store, enablement = await _enablement(settings)
        try:
            await enablement.set(name, enabled, scope=chat or "*")  # type: ignore[attr-defined]
        finally:
            await store.stop()  # type: ignore[attr-defined]
        if not settings.redis_url:
            return False
        from bot.scale.changes import announce_once, changes_channel

        channel = changes_channel(settings.redis_prefix)
        return await announce_once(settings.redis_url, channel, "plugins")

    announced = asyncio.run(apply())
    where = f"in {chat}" if chat else "everywhere"
    when = "at once" if announced else "within 15 s"
    typer.echo(
        f"{name} {'enabled' if enabled else 'disabled'} {where} (running servers apply this {when})"
    )


@plugins_app.command("enable")
def enable(name: str, chat: ChatOption = None) -> None:
    """Turn a plugin on, everywhere or in one chat."""
    _set(name, True, chat)


@plugins_app.command("disable")
def disable(name: str, chat: ChatOption = None) -> None:
    """Turn a plugin off, everywhere or in one chat."""
    _set(name, False, chat)


@plugins_app.command("install")
def install(
    package: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Consent without asking.")] = False,
    pip_arg: Annotated[
        list[str] | None, typer.Option("--pip-arg", help="Extra pip argument (repeatable).")
    ] = None,
) -> None:
    """pip-install a plugin package, show its permissions, and enable it if you consent."""
    settings = _settings()
    before = set(_discover(settings).plugins)
    command = [sys.executable, "-m", "pip", "install", *(pip_arg or []), package]
    pip = subprocess.run(command, check=False)
    if pip.returncode != 0:
        typer.secho(f"pip could not install {package}", fg="red", err=True)
        raise typer.Exit(1)
    found = _discover(settings)
    new = [p for n, p in found.plugins.items() if n not in before and p.source == "package"]
    for broken in found.broken:
        typer.secho(f"{broken.name}: DISABLED: {broken.reason}", fg="yellow")
    if not new:
        typer.secho(
            "no new plugin was announced (entry-point group opencomputer.plugins)", fg="red"
        )
        raise typer.Exit(1)
    for plugin in new:
        for line in _describe(plugin):
            typer.echo(line)
        if yes or typer.confirm(f"Enable {plugin.name} with these permissions?", default=False):
            _set(plugin.name, True, None)
        else:
            typer.echo(
                f"{plugin.name} installed but left off; `opencomputer plugins enable "
                f"{plugin.name}` turns it on"
            )
