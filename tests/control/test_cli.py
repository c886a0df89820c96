"""``opencomputer web login`` prints a working one-time link for the terminal owner."""

from __future__ import annotations

import asyncio
import getpass
from pathlib import Path

from typer.testing import CliRunner

from opencomputer.bot.cli import app
from opencomputer.bot.control.auth import Logins
from opencomputer.bot.storage import SqlStore

from .kit import LINK


def test_cli_prints_a_one_time_link(tmp_path: Path) -> None:
    env = {"OC_DATA_DIR": str(tmp_path / "data"), "OC_HTTP_PORT": "8123"}
    result = CliRunner().invoke(app, ["web", "login"], env=env)
    assert result.exit_code == 0, result.output
    found = LINK.search(result.output)
    assert found is not None and found.group(1) == "http://127.0.0.1:8123", result.output

    async def spend_twice() -> list[str | None]:
        store = SqlStore(f"sqlite:///{tmp_path / 'data' / 'opencomputer.db'}")
        await store.start()
        try:
            logins = Logins(store.engine)
            first, again = [await logins.spend_link(found.group(2)) for _ in range(2)]
        finally:
            await store.stop()
        return [first.key if first else None, again.key if again else None]

    assert asyncio.run(spend_twice()) == [f"terminal:{getpass.getuser()}", None]

    public = CliRunner().invoke(
        app, ["web", "login"], env={**env, "OC_PUBLIC_URL": "https://bot.example.org/"}
    )
    assert "https://bot.example.org/ui/login#" in public.output
