"""Choose the graph checkpointer: SQLite beside the database by default, PostgreSQL at scale.

SQLite: the checkpoints keep their own file, ``<stem>-checkpoints.db`` beside the database, but
no connection of their own: the file is attached to the store's writer connection
(:class:`~bot.storage.writer.SqliteWriter`) and :class:`~graphs.agent.sqlite_saver.WriterSaver`
runs its SQL there. So a checkpoint write shares the writer's handling of a full disk (the
transaction is rolled back and waits for space, then runs again: a turn in progress pauses
rather than fails) and its write-ahead-log checkpoints, and it joins the turn's reply in one
transaction.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver

from opencomputer.bot.storage.engine import sqlite_path
from opencomputer.bot.storage.writer import SqliteWriter
from opencomputer.graphs.agent.sqlite_saver import SCHEMA, WriterSaver

__all__ = ["checkpoints_path", "open_checkpointer"]


def checkpoints_path(database: Path) -> Path:
    """The checkpoints' file beside a SQLite database: ``<stem>-checkpoints.db``."""
    return database.with_name(database.stem + "-checkpoints.db")


@contextlib.asynccontextmanager
async def open_checkpointer(
    database_url: str, writer: SqliteWriter | None = None
) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    """Yield a ready saver for the database the store uses (same server, separate tables).

    ``writer``: the store's SQLite writer (``SqlStore.writer``); the checkpoints' file is
    attached to it. Without one (``opencomputer db upgrade``, tools, tests) the saver gets a
    writer of its own, closed on exit.
    """
    if database_url.startswith("postgresql"):
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool

        dsn = "postgresql://" + database_url.split("://", 1)[1]
        kwargs = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
        async with AsyncConnectionPool(
            dsn,
            kwargs=kwargs,
            min_size=1,
            max_size=10,
            open=False,
            check=AsyncConnectionPool.check_connection,  # a dropped connection is replaced
        ) as pool:
            postgres = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
            await postgres.setup()
            yield postgres
        return
    path = sqlite_path(database_url)
    target: Path | str = ":memory:" if path is None else checkpoints_path(path)
    own = writer is None
    if writer is None:
        writer = SqliteWriter(target)
        saver = WriterSaver(writer, "main")
    else:
        await writer.attach(SCHEMA, target)
        saver = WriterSaver(writer, SCHEMA)
    try:
        await saver.setup()
        yield saver
    finally:
        if own:
            writer.close()
