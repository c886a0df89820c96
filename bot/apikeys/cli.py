"""``opencomputer keys create|list|revoke``: bearer keys of the OpenAI-compatible API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import typer

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["keys_app"]

T = TypeVar("T")

keys_app = typer.Typer(
    help="API keys for /v1/chat/completions (docs/api.md).", no_args_is_help=True
)


def _with_engine(work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Open the database (its schema checked, not migrated), run ``work``, close it."""
    from opencomputer.bot.config import ConfigError, load_settings
    from opencomputer.bot.storage import SqlStore

    try:
        url = load_settings().resolved_database_url
    except ConfigError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None

    async def run() -> T:
        store = SqlStore(url)
        await store.start()
        try:
            return await work(store.engine)
        finally:
            await store.stop()

    return asyncio.run(run())


@keys_app.command("create")
def create(
    person: str = typer.Option(..., "--person", help="Whose key: the agent's memory is theirs."),
    name: str = typer.Option("", "--name", help="A label to tell keys apart (e.g. open-webui)."),
) -> None:
    """Create a key and print it once (only its hash is stored; a lost key is revoked)."""
    from opencomputer.bot.apikeys.keys import check_person, create_key

    try:
        check_person(person)
    except ValueError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None
    key, token = _with_engine(lambda engine: create_key(engine, person, name))
    typer.echo(token)
    typer.echo(
        f"key {key.id} for {person}: copy it now, it is not shown again. It works at once, "
        "also with a server already running.",
        err=True,
    )


@keys_app.command("list")
def list_() -> None:
    """Every key: id, person, label, its first characters, when made, whether revoked."""
    from opencomputer.bot.apikeys.keys import list_keys

    keys = _with_engine(list_keys)
    if not keys:
        typer.echo("no API keys (create one with: opencomputer keys create --person NAME)")
        return
    for key in keys:
        made = time.strftime("%Y-%m-%d %H:%M", time.localtime(key.created_at))
        state = "active" if key.active else "revoked"
        label = f" ({key.name})" if key.name else ""
        typer.echo(f"{key.id}\t{key.person}{label}\t{key.prefix}…\t{made}\t{state}")


@keys_app.command("revoke")
def revoke(key_id: int = typer.Argument(..., help="The id `keys list` shows.")) -> None:
    """Revoke a key: the next request with it is refused."""
    from opencomputer.bot.apikeys.keys import revoke_key

    if not _with_engine(lambda engine: revoke_key(engine, key_id)):
        typer.secho(f"no active key with id {key_id} (see: opencomputer keys list)", err=True)
        raise typer.Exit(1)
    typer.echo(f"key {key_id} revoked")
