"""The ``opencomputer`` command line. Heavy modules are imported inside commands so that
``--help`` and start-up stay fast.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from opencomputer.bot import eventloop
from opencomputer.bot.admin.cli import audit_app
from opencomputer.bot.feedback.cli import prompts_app
from opencomputer.bot.plugins.cli import plugins_app
from opencomputer.bot.plugins.startup import settings_or_exit

if TYPE_CHECKING:
    from opencomputer.bot.config import Settings
    from opencomputer.bot.connector import Connector

__all__ = ["app", "main"]

app = typer.Typer(
    help="opencomputer: your self-hosted AI agent on Telegram, Discord, Slack, Matrix and the "
    "terminal.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # -h as well as --help, on every command (click hands the names down to sub-commands)
    context_settings={"help_option_names": ["-h", "--help"]},
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")
app.add_typer(plugins_app, name="plugins")
app.add_typer(prompts_app, name="prompts")
app.add_typer(
    __import__("opencomputer.bot.skills.cli", fromlist=["skills_app"]).skills_app, name="skills"
)
app.add_typer(
    __import__("opencomputer.bot.apikeys.cli", fromlist=["keys_app"]).keys_app, name="keys"
)
app.add_typer(__import__("opencomputer.bot.control.cli", fromlist=["web_app"]).web_app, name="web")


def _print_version(value: bool) -> None:
    if value:
        from opencomputer.bot import __version__

        typer.echo(f"opencomputer {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: bool = typer.Option(
        False,
        "--version",
        "-V",
        help="Print the version and exit.",
        is_eager=True,
        callback=_print_version,
    ),
) -> None:
    """Top-level options (``--version``); the commands follow."""


def _logging(settings: Settings, level: str | None = None) -> None:
    from opencomputer.bot.logs import setup_logging

    setup_logging(
        level or settings.log_level,
        settings.secret_values(),
        fmt=settings.log_format,
        sdk_debug=settings.log_sdk_debug,
    )


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


@app.command()
def run() -> None:
    """Serve every configured connector plus the HTTP app (health, readiness, metrics, webhooks)."""
    from opencomputer.bot.app import enable_hints

    settings = settings_or_exit()
    _logging(settings)
    if not _any_connector(settings):
        typer.secho("No connector is configured. Set the variables of at least one:", err=True)
        for hint in enable_hints():
            typer.echo(f"  {hint}", err=True)
        typer.echo("Or talk to the agent here with `opencomputer chat`.", err=True)
        raise typer.Exit(1)

    _serve(settings, "all")


def _serve(settings: Settings, role: str) -> None:
    """Run the app in ``role`` until SIGINT/SIGTERM, then stop it gracefully."""
    from opencomputer.bot.app import App

    async def serve() -> None:
        oc = App(settings, role=role)
        await oc.start()
        try:
            await _wait_for_signal()
        finally:
            await oc.stop()

    eventloop.run(serve(), loop=settings.event_loop, collector=settings.gc_mode)


def _serve_role(role: str) -> None:
    settings = settings_or_exit()
    _logging(settings)
    if not settings.redis_url:
        typer.secho(
            f"The {role} needs OC_REDIS_URL (e.g. redis://127.0.0.1:6379/0).", fg="red", err=True
        )
        raise typer.Exit(2)
    if not settings.is_postgres:
        typer.secho(
            "warning: OC_DATABASE_URL is SQLite: gateway and workers must then share one "
            "machine; use PostgreSQL to spread them out.",
            fg="yellow",
            err=True,
        )
    if role == "gateway" and not _any_connector(settings):
        typer.secho("No connector is configured for the gateway.", fg="red", err=True)
        raise typer.Exit(1)

    _serve(settings, role)


@app.command()
def gateway() -> None:
    """Scale-out: run the connectors and publish accepted messages to Redis for the workers."""
    _serve_role("gateway")


@app.command()
def worker() -> None:
    """Scale-out: run turns for messages from Redis (start as many as you need, anywhere)."""
    _serve_role("worker")


def _any_connector(settings: Settings) -> bool:
    from opencomputer.bot.channels import configured_channels

    return bool(configured_channels(settings))


@app.command()
def chat() -> None:
    """Chat in this terminal. Reads one message per line when input is piped."""
    from opencomputer.bot.app import App
    from opencomputer.bot.channels import load_channels

    if TYPE_CHECKING:
        from opencomputer.bot.runtime import Runtime

    settings = settings_or_exit()
    _logging(settings, "WARNING" if settings.log_level == "INFO" else None)
    channel = next((c for c in load_channels() if c.name == "terminal"), None)
    if channel is None:
        typer.secho("The terminal channel is not installed: reinstall opencomputer.", err=True)
        raise typer.Exit(2)

    async def session() -> int:
        oc = App(settings)
        terminal: list[Any] = []

        def factory(s: Settings, rt: Runtime) -> list[Connector]:
            terminal.append(channel.create(s, rt.emit, oc.channel_services(rt)))
            return terminal

        await oc.start(factory, http=False)
        try:
            if oc.model_status != "ok":
                typer.secho(f"Cannot chat: {oc.model_status}", fg="red", err=True)
                return 1
            await terminal[0].run()
            await oc.runtime.wait_idle()
            return 0
        finally:
            await oc.stop()

    raise typer.Exit(eventloop.run(session(), loop=settings.event_loop, collector=settings.gc_mode))


@app.command()
def doctor() -> None:
    """Check settings, Ollama, the model, database, Redis and connectors; exit 1 on a problem."""
    from opencomputer.bot.doctor import run_doctor

    settings = settings_or_exit()
    raise typer.Exit(asyncio.run(run_doctor(settings)))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the schema migrations (one process at a time; a SQLite store is backed up first)
    and create the graph checkpoint tables. Safe to run at every deployment.
    """
    from opencomputer.bot.storage.migrate import Upgrade, upgrade
    from opencomputer.graphs.agent.checkpointer import open_checkpointer

    settings = settings_or_exit()
    url = settings.resolved_database_url

    async def run_upgrade() -> Upgrade:
        done = await upgrade(url)
        async with open_checkpointer(url):
            pass
        return done

    done = asyncio.run(run_upgrade())
    if done.backup is not None:
        typer.echo(f"backup of the database before migrating: {done.backup}")
    if done.changed:
        was = done.before.current or ("empty" if done.before.empty else "incomplete")
        made = " (made before migrations)" if done.before.legacy else ""
        typer.echo(f"database upgraded from {was}{made} to {done.before.head}")
    typer.echo(f"database is up to date ({done.before.head})")


@app.command()
def backup(
    file: Annotated[
        Path | None,
        typer.Argument(
            help="Where to write it (default: backups/<store>-<UTC time>.db in the data dir)."
        ),
    ] = None,
) -> None:
    """Back up the database and graph checkpoints, safely while the server runs; print the path."""
    from opencomputer.bot.storage.backup import backup_command

    settings = settings_or_exit()
    _print_lines(lambda: backup_command(settings.resolved_database_url, settings.data_dir, file))


@app.command()
def restore(
    file: Annotated[Path, typer.Argument(help="A file written by `opencomputer backup`.")],
) -> None:
    """Replace the database with a backup (refused while the server runs; the old one is kept)."""
    from opencomputer.bot.storage.backup import restore_command

    settings = settings_or_exit()
    _print_lines(lambda: restore_command(settings.resolved_database_url, file))


def _print_lines(work: Callable[[], list[str]]) -> None:
    """Print what a backup or restore did; its refusal is one line and exit status 2."""
    from opencomputer.bot.storage.backup import BackupError

    try:
        lines = work()
    except BackupError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None
    for line in lines:
        typer.echo(line)


@app.command()
def version() -> None:
    """Print the version."""
    from opencomputer.bot import __version__

    typer.echo(__version__)


def main() -> None:
    """Console-script entry point."""
    from opencomputer.bot.config import ConfigError
    from opencomputer.bot.storage.engine import DatabaseKeyError

    try:
        app(prog_name="opencomputer")  # the same usage line under `python -m opencomputer`
    except KeyboardInterrupt:
        sys.exit(130)
    except (DatabaseKeyError, ConfigError) as exc:  # a misconfiguration: one line, no traceback
        if _debug():
            raise
        typer.secho(str(exc), fg="red", err=True)
        sys.exit(2)
    except Exception as exc:
        line = _known_failure(exc)
        if line is None or _debug():
            raise
        typer.secho(line, fg="red", err=True)
        sys.exit(2)


def _debug() -> bool:
    return os.environ.get("OC_LOG_LEVEL", "").upper() == "DEBUG"


def _known_failure(exc: BaseException) -> str | None:
    """One line for a common misconfiguration found only when it is used (else None)."""
    from opencomputer.bot.storage.backup import BackupError
    from opencomputer.bot.storage.migrate import SchemaError

    for cause in _chain(exc):
        if isinstance(cause, SchemaError | BackupError):  # what to run, or what is wrong
            return str(cause)
        if type(cause).__name__ == "InvalidCatalogNameError":  # asyncpg: no such database
            from sqlalchemy.engine import make_url

            from opencomputer.bot.config import load_settings

            url = make_url(load_settings().resolved_database_url)
            where = f" -h {url.host}" if url.host else ""
            where += f" -p {url.port}" if url.port else ""
            where += f" -U {url.username}" if url.username else ""
            return (
                f"PostgreSQL database {url.database!r} does not exist: create it with "
                f"`createdb{where} {url.database}` (or fix OC_DATABASE_URL)"
            )
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 50:
        cur = todo.pop()
        if any(cur is s for s in seen):
            continue
        seen.append(cur)
        todo += [e for e in (cur.__cause__, cur.__context__) if e is not None]
        if isinstance(cur, BaseExceptionGroup):
            todo += list(cur.exceptions)
    return seen
