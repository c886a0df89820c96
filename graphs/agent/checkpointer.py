"""Choose the graph checkpointer: SQLite beside the database by default, PostgreSQL at scale."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver

from bot.storage.engine import sqlite_path

__all__ = ["open_checkpointer"]


@contextlib.asynccontextmanager
async def open_checkpointer(database_url: str) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    """Yield a ready saver for the database the store uses (same server, separate tables)."""
    path = sqlite_path(database_url)
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
    import aiosqlite

    from bot.storage.engine import connect_sqlite
    from graphs.agent.sqlite_saver import LeanSqliteSaver

    target = ":memory:" if path is None else str(path.with_name(path.stem + "-checkpoints.db"))
    # connect_sqlite: SQLCipher with the key first when the database is encrypted.
    async with aiosqlite.Connection(lambda: connect_sqlite(target), 64) as conn:
        # WAL + NORMAL: a commit no longer waits for fsync, the write-ahead log keeps it safe.
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=NORMAL")
        saver = LeanSqliteSaver(conn)  # the stock saver's SQL, fewer thread hops per turn
        await saver.setup()
        yield saver
