"""``opencomputer plugins new|list|info|enable|disable|grant|revoke|install|uninstall|test``."""

from __future__ import annotations

import ast
import asyncio
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from opencomputer.bot.config import Settings
    from opencomputer.bot.plugins.discovery import Discovery, Plugin
    from opencomputer.bot.plugins.enablement import Enablement
    from opencomputer.bot.plugins.grants import Received

__all__ = ["plugins_app"]

plugins_app = typer.Typer(
    help="Plugins: create, list, inspect, enable, install.", no_args_is_help=True
)
ChatOption = Annotated[
    str | None,
    typer.Option("--chat", help="Only in this chat (platform:chat_id); default: everywhere."),
]


def _settings() -> Settings:
    from opencomputer.bot.plugins.startup import settings_or_exit

    return settings_or_exit()


def _discover(settings: Settings) -> Discovery:
    import logging

    from opencomputer.bot.plugins.discovery import discover

    quiet = logging.getLogger(
        "opencomputer.bot.plugins.discovery"
    )  # each problem is shown in the table
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        return discover(settings.plugin_dirs)
    finally:
        quiet.setLevel(level)


async def _enablement(settings: Settings, found: Discovery | None = None) -> tuple[Any, Enablement]:
    from opencomputer.bot.plugins.enablement import Enablement
    from opencomputer.bot.storage import SqlStore

    store = SqlStore(settings.resolved_database_url)
    await store.start()
    plugins = found.plugins if found is not None else {}
    enablement = Enablement(
        store.engine,
        {n: p.on_by_default for n, p in plugins.items()},
        {n: p.source == "builtin" for n, p in plugins.items()},
    )
    await enablement.start()
    return store, enablement


def _state(plugin: Plugin, decisions: dict[str, bool]) -> str:
    on = decisions.get("*", plugin.on_by_default)
    chats = [f"{scope}={'on' if v else 'off'}" for scope, v in decisions.items() if scope != "*"]
    return ("on" if on else "off") + (f" ({', '.join(chats)})" if chats else "")


@plugins_app.command("new")
def new(
    name: str,
    folder: Annotated[Path, typer.Option("--dir", help="Where to create it.")] = Path("."),
    description: Annotated[str, typer.Option(help="One line saying what it does.")] = "",
) -> None:
    """Create a working plugin (manifest, code, test) to edit."""
    from opencomputer.bot.plugins.scaffold import scaffold

    try:
        created = scaffold(name, folder, description)
    except (ValueError, FileExistsError) as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"created {created}")
    typer.echo(f"  test it:   opencomputer plugins test {created}  (or: pytest {created})")
    typer.echo(f"  use it:    OC_PLUGIN_DIRS={created.resolve().parent} opencomputer chat")


@plugins_app.command("list")
def list_() -> None:
    """Every plugin found, its source, and whether it is on; disabled ones say why."""
    settings = _settings()
    found = _discover(settings)

    async def decisions() -> dict[str, dict[str, bool]]:
        store, enablement = await _enablement(settings)
        try:
            return {n: enablement.decisions(n) for n in found.plugins}
        finally:
            await store.stop()

    states = asyncio.run(decisions())
    for name, plugin in sorted(found.plugins.items()):
        if (problem := _syntax_problem(plugin)) is not None:  # it would fail at first import
            typer.secho(f"{name:<16} {'-':<9} {plugin.source:<8} BROKEN: {problem}", fg="red")
            continue
        typer.echo(
            f"{name:<16} {plugin.manifest.version:<9} {plugin.source:<8} "
            f"{_state(plugin, states[name])}  {plugin.manifest.description}"
        )
    for broken in found.broken:
        typer.secho(f"{broken.name:<16} {'-':<9} {'-':<8} DISABLED: {broken.reason}", fg="yellow")


def _received(settings: Settings, found: Discovery, name: str) -> tuple[Received, str]:
    """What plugin ``name`` would be handed now, and whether it is on (from the database)."""
    from opencomputer.bot.plugins.discovery import plugin_environ
    from opencomputer.bot.plugins.grants import receives, server_secrets

    plugin = found.plugins[name]

    async def read() -> tuple[Received, str]:
        store, enablement = await _enablement(settings, found)
        try:
            secrets = server_secrets(settings, plugin_environ())
            got = receives(plugin, enablement.is_granted, secrets)
            return got, _state(plugin, enablement.decisions(name))
        finally:
            await store.stop()

    return asyncio.run(read())


def _describe(plugin: Plugin, received: Received, state: str) -> list[str]:
    """Everything the plugin gets: settings (secrets masked), grants, hosts, files, programs."""
    m, perms = plugin.manifest, plugin.manifest.permissions
    hosts = m.network_hosts(received.settings)
    declared = ", ".join(perms.network) or "none"
    secrets = [f"{s} (granted)" for s in received.granted]
    secrets += [f"{s} (NOT granted)" for s in received.ungranted]
    lines = [
        f"{m.name} {m.version} — {m.description}",
        f"  author: {m.author or '-'}; source: {plugin.source} ({plugin.folder})",
        f"  supports opencomputer {m.opencomputer}; runs "
        + ("in the server (trusted built-in)" if plugin.in_process else "in a sandbox"),
        f"  state: {state}",
        "  permissions:",
        f"    network: {declared}"
        + (f" (now: {', '.join(hosts) or 'none'})" if "${" in declared else ""),
        f"    files read: {', '.join(perms.files.read) or 'none'}; "
        f"write: {', '.join(perms.files.write) or 'none (its data folder only)'}",
        f"    start programs: {'yes' if perms.process else 'no'}",
        f"    secrets: {', '.join(secrets) or 'none'}",
        "  receives:" if m.settings else "  receives: no settings",
    ]
    for key, spec in m.settings.items():
        secret = key in m.secret_names
        if key in received.settings:
            shown = "*** (secret, set)" if secret else repr(received.settings[key])
        elif key in received.withheld:
            shown = "nothing: " + received.withheld[key]
        else:
            shown = "nothing: not set" + (" (required)" if spec.required else "")
        lines.append(f"    {'secret' if secret else 'setting'} {key} = {shown}")
        if spec.description:
            lines.append(f"      {spec.description}")
    for decl in m.tools:
        flag = " [dangerous: needs approval]" if decl.dangerous else ""
        effects = getattr(decl, "effects", None)
        flag += f" [effects: {', '.join(effects) or 'none'}]" if effects is not None else ""
        lines.append(f"  tool {decl.name}{flag}: {decl.description}")
    lines += [f"  command /{c.name} {c.args}".rstrip() + f": {c.description}" for c in m.commands]
    lines += [f"  hook {h}" for h in m.hooks] + [
        f"  job {j.name} every {j.every:g} s" for j in m.jobs
    ]
    return lines


@plugins_app.command("info")
def info(name: str) -> None:
    """Show exactly what a plugin gets: settings, secrets and grants, hosts, files, tools."""
    settings = _settings()
    found = _discover(settings)
    plugin = found.plugins.get(name)
    if plugin is None:
        reasons = [b.reason for b in found.broken if b.name == name]
        typer.secho(f"plugin {name}: " + (reasons[0] if reasons else "not found"), fg="red")
        raise typer.Exit(1)
    for line in _describe(plugin, *_received(settings, found, name)):
        typer.echo(line)


async def _announce(settings: Settings) -> bool:
    """Tell running servers (through Redis) that plugin decisions changed."""
    if not settings.redis_url:
        return False
    from opencomputer.bot.scale.changes import announce_once, changes_channel

    channel = changes_channel(settings.redis_prefix)
    return await announce_once(settings.redis_url, channel, "plugins")


PLATFORMS = ("telegram", "discord", "slack", "matrix", "terminal")


def _syntax_problem(plugin: Plugin) -> str | None:
    """The first Python file of the plugin that does not parse, as ``file:line: message``."""
    for path in sorted(plugin.folder.rglob("*.py")):
        try:
            ast.parse(path.read_bytes(), filename=str(path))
        except SyntaxError as exc:
            return f"syntax error in {path}:{exc.lineno}: {exc.msg}"
        except (OSError, ValueError) as exc:
            return f"cannot read {path}: {exc}"
    return None


def _check_chat(chat: str | None) -> None:
    """Refuse a ``--chat`` that no chat key can ever equal (it would silently do nothing)."""
    if chat is None:
        return
    platform, sep, chat_id = chat.partition(":")
    if not sep or platform not in PLATFORMS or not chat_id.strip() or chat != chat.strip():
        typer.secho(
            f"--chat {chat!r} is not a chat address: use platform:chat_id with platform one of "
            f"{', '.join(PLATFORMS)} (e.g. telegram:-1001234)",
            fg="red",
            err=True,
        )
        raise typer.Exit(2)


def _set(name: str, enabled: bool, chat: str | None) -> None:
    _check_chat(chat)
    settings = _settings()
    found = _discover(settings)
    if name not in found.plugins and not name.startswith("mcp:"):
        typer.secho(f"no usable plugin named {name} (see `opencomputer plugins list`)", fg="red")
        raise typer.Exit(1)

    async def apply() -> bool:
        store, enablement = await _enablement(settings)
        try:
            await enablement.set(name, enabled, scope=chat or "*")
        finally:
            await store.stop()
        return await _announce(settings)

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


def _grant(name: str, secret: str, granted: bool) -> None:
    settings = _settings()
    found = _discover(settings)
    plugin = found.plugins.get(name)
    if plugin is None:
        typer.secho(f"no usable plugin named {name} (see `opencomputer plugins list`)", fg="red")
        raise typer.Exit(1)
    if secret not in plugin.manifest.secret_names:
        known = ", ".join(plugin.manifest.secret_names) or "none"
        typer.secho(f"{secret} is not a secret of plugin {name} (its secrets: {known})", fg="red")
        raise typer.Exit(1)

    async def apply() -> bool:
        store, enablement = await _enablement(settings, found)
        try:
            await enablement.grant(name, secret, granted)
        finally:
            await store.stop()
        return await _announce(settings)

    when = "at once" if asyncio.run(apply()) else "within 15 s"
    done = f"{name} {'may now receive' if granted else 'no longer receives'} {secret}"
    typer.echo(f"{done} (running servers apply this {when})")
    if granted:
        withheld = _received(settings, found, name)[0].withheld.get(secret)
        if withheld:
            typer.secho(f"but it still gets nothing: {secret} {withheld}", fg="yellow")


@plugins_app.command("grant")
def grant(name: str, secret: str) -> None:
    """Let a plugin receive one of its secret settings (see `plugins info NAME`)."""
    _grant(name, secret, True)


@plugins_app.command("revoke")
def revoke(name: str, secret: str) -> None:
    """Withhold one of a plugin's secret settings from it again."""
    _grant(name, secret, False)


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
        for line in _describe(plugin, *_received(settings, found, plugin.name)):
            typer.echo(line)
        secrets = plugin.manifest.secret_names
        ask = f"Enable {plugin.name} with these permissions" + (
            f" and grant it {', '.join(secrets)}?" if secrets else "?"
        )
        if yes or typer.confirm(ask, default=False):
            _set(plugin.name, True, None)
            for secret in secrets:
                _grant(plugin.name, secret, True)
        else:
            typer.echo(
                f"{plugin.name} installed but left off; `opencomputer plugins enable "
                f"{plugin.name}` turns it on"
            )


def _distribution(plugin: Plugin) -> str | None:
    """The pip distribution that provides a package plugin's import name."""
    from importlib.metadata import packages_distributions

    top = (plugin.package or "").split(".", 1)[0]
    names = packages_distributions().get(top) or []
    return names[0] if names else None


@plugins_app.command("uninstall")
def uninstall(
    name: str,
    purge: Annotated[
        bool, typer.Option("--purge", help="Also delete the plugin's data folder.")
    ] = False,
) -> None:
    """Remove a pip-installed plugin: turn it off, pip-uninstall it; data kept unless --purge."""
    import shutil

    settings = _settings()
    found = _discover(settings)
    plugin = found.plugins.get(name)
    if plugin is None:
        typer.secho(f"no plugin named {name} (see `opencomputer plugins list`)", fg="red", err=True)
        raise typer.Exit(1)
    if plugin.source == "builtin":
        typer.secho(
            f"{name} is built in and cannot be uninstalled; "
            f"`opencomputer plugins disable {name}` turns it off",
            fg="red",
            err=True,
        )
        raise typer.Exit(2)
    if plugin.source == "dir":
        typer.secho(
            f"{name} comes from the folder {plugin.folder} (OC_PLUGIN_DIRS): delete that folder "
            f"yourself, or `opencomputer plugins disable {name}`",
            fg="red",
            err=True,
        )
        raise typer.Exit(2)
    dist = _distribution(plugin)
    if dist is None:
        typer.secho(f"cannot tell which pip package provides {name}", fg="red", err=True)
        raise typer.Exit(1)
    _set(name, False, None)  # off first: a running server stops offering it at once
    pip = subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", dist], check=False)
    if pip.returncode != 0:
        typer.secho(f"pip could not uninstall {dist}", fg="red", err=True)
        raise typer.Exit(1)
    data = Path(settings.data_dir) / "plugins" / name
    if purge and data.exists():
        shutil.rmtree(data)
        typer.echo(f"{name} uninstalled ({dist}); its data {data} deleted")
    else:
        kept = f"; its data is kept in {data} (--purge deletes it)" if data.exists() else ""
        typer.echo(f"{name} uninstalled ({dist}){kept}")


@plugins_app.command(
    "test", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def test(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A plugin folder (e.g. hello) or a plugin's name.")],
) -> None:
    """Run a plugin's tests with this installation's Python (extra arguments go to pytest)."""
    import importlib.util

    missing = [m for m in ("pytest", "pytest_asyncio") if importlib.util.find_spec(m) is None]
    if missing:
        typer.secho(
            f"{' and '.join(m.replace('_', '-') for m in missing)} not installed: "
            f"{_plugin_dev_install()}",
            fg="red",
            err=True,
        )
        raise typer.Exit(2)
    folder = Path(name)
    if not (folder / "plugin.json").is_file():
        found = _discover(_settings()).plugins.get(name)
        if found is None:
            typer.secho(
                f"no plugin folder {folder} (with a plugin.json) and no plugin named {name!r}; "
                "`opencomputer plugins list` shows the names",
                fg="red",
                err=True,
            )
            raise typer.Exit(2)
        folder = found.folder
    run = subprocess.run([sys.executable, "-m", "pytest", str(folder), *ctx.args], check=False)
    raise typer.Exit(run.returncode)


def _plugin_dev_install() -> str:
    """How to add the plugin-dev extra to the Python running us (a checkout or a package)."""
    import shlex

    checkout = Path(__file__).resolve().parents[2]
    python = shlex.quote(sys.executable)
    if (checkout / "pyproject.toml").is_file():
        spec = shlex.quote(f"{checkout}[plugin-dev]")
        return f"{python} -m pip install -e {spec}"
    return f"{python} -m pip install 'opencomputer[plugin-dev]'"
