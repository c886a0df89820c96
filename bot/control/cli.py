"""``opencomputer web login``: a one-time link to the control room, printed.

Whoever can run this command owns the installation (as in ``opencomputer chat``), so the link
logs in as the terminal owner, ``terminal:<login name>``, an admin by definition.
"""

from __future__ import annotations

import asyncio
import getpass

import typer

__all__ = ["web_app"]

web_app = typer.Typer(help="The web control room (docs/web.md).", no_args_is_help=True)


@web_app.command("login")
def login() -> None:
    """Print a one-time login link to the control room (valid 10 minutes, works once)."""
    from opencomputer.bot.audit import audit
    from opencomputer.bot.config import load_settings
    from opencomputer.bot.control.auth import Logins
    from opencomputer.bot.control.feature import base_url, login_url
    from opencomputer.bot.events import User
    from opencomputer.bot.storage import SqlStore

    settings = load_settings()
    name = getpass.getuser()
    owner = User("terminal", name, name)

    async def run() -> str:
        store = SqlStore(settings.resolved_database_url)
        await store.start(upgrade=settings.database_url is None)
        try:
            token = await Logins(store.engine).issue_link(owner)
            await audit(store, owner.key, "control.link", {"via": "cli"})
        finally:
            await store.stop()
        return login_url(base_url(settings), token)

    typer.echo(asyncio.run(run()))
