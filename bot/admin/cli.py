"""``opencomputer audit verify`` and ``opencomputer audit export``."""

from __future__ import annotations

import asyncio
import sys

import orjson
import typer

__all__ = ["audit_app"]

audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)


async def _open_store() -> object:
    from opencomputer.bot.config import load_settings
    from opencomputer.bot.storage import SqlStore

    store = SqlStore(load_settings().resolved_database_url)
    await store.start()
    return store


@audit_app.command("verify")
def verify() -> None:
    """Check the keyed chain and its head; exit 1 if any entry was edited, deleted, inserted
    or reordered, or the newest entries were removed.
    """
    from opencomputer.bot.audit import verify as check

    async def run() -> int:
        store = await _open_store()
        try:
            result = await check(store)
        finally:
            await store.stop()  # type: ignore[attr-defined]
        if result.ok:
            typer.echo(f"audit log OK: {result.count} entries, head {result.head}")
            return 0
        typer.secho(
            f"audit log BROKEN after {result.count} good entries: {result.problem}", fg="red"
        )
        return 1

    raise typer.Exit(asyncio.run(run()))


@audit_app.command("export")
def export() -> None:
    """Print every entry as one JSON object per line (with its chain hashes)."""
    from opencomputer.bot.audit import export as entries

    async def run() -> None:
        store = await _open_store()
        try:
            async for entry in entries(store):
                sys.stdout.write(orjson.dumps(entry).decode() + "\n")
        finally:
            await store.stop()  # type: ignore[attr-defined]

    asyncio.run(run())
