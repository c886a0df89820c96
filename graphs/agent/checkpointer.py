"""Choose the graph checkpointer: SQLite beside the database by default, PostgreSQL at scale.

The SQLite saver shares the data folder's disk guard (``bot/storage/disk.py``): a checkpoint
write that meets a full disk is rolled back and waits for space, then runs again, so a turn
in progress pauses rather than fails (and is not run, and answered, twice). Its write-ahead
log is cut back after checkpoints (``journal_size_limit``) and truncated when space returns.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from langgraph.checkpoint.base import BaseCheckpointSaver

from opencomputer.bot.storage.disk import DiskFull, guard_for, may_wait
from opencomputer.bot.storage.engine import WAL_LIMIT, sqlite_path
from opencomputer.graphs.agent.sqlite_saver import LeanSqliteSaver

if TYPE_CHECKING:
    from opencomputer.bot.storage.disk import DiskGuard

__all__ = ["DiskAwareSaver", "open_checkpointer"]

T = TypeVar("T")


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

    from opencomputer.bot.storage.engine import connect_sqlite

    target = ":memory:" if path is None else str(path.with_name(path.stem + "-checkpoints.db"))
    # connect_sqlite: SQLCipher with the key first when the database is encrypted.
    async with aiosqlite.Connection(lambda: connect_sqlite(target), 64) as conn:
        # WAL + NORMAL: a commit no longer waits for fsync, the write-ahead log keeps it safe.
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=NORMAL")
        await conn.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")
        # the stock saver's SQL, fewer thread hops per turn; a full disk waits for space
        saver = DiskAwareSaver(conn)
        if path is not None:
            saver.guard = guard_for(path)
            saver.guard.compactors.append(saver.compact)
        try:
            await saver.setup()
            yield saver
        finally:
            if saver.guard is not None:
                with contextlib.suppress(ValueError):
                    saver.guard.compactors.remove(saver.compact)


class DiskAwareSaver(LeanSqliteSaver):
    """``LeanSqliteSaver`` whose writes wait out a full disk instead of failing the turn."""

    guard: DiskGuard | None = None

    async def aput(self, *args: Any, **kwargs: Any) -> Any:
        """Save a checkpoint (waiting for space on a full disk)."""
        return await self._write(super().aput, *args, **kwargs)

    async def aput_writes(self, *args: Any, **kwargs: Any) -> None:
        """Save a task's pending writes (waiting for space on a full disk)."""
        await self._write(super().aput_writes, *args, **kwargs)

    async def _write(self, call: Callable[..., Awaitable[T]], *args: Any, **kw: Any) -> T:
        guard = self.guard
        while True:
            if guard is not None and guard.full and may_wait():
                await guard.wait_for_space()
            try:
                return await call(*args, **kw)
            except Exception as exc:
                if guard is None or not guard.report(exc):
                    raise
                async with self.lock:  # what the failed statement left open is undone
                    with contextlib.suppress(sqlite3.Error, ValueError):
                        await self.conn.rollback()
                if not may_wait():
                    raise DiskFull(f"the disk is full ({guard.reason})") from exc

    async def compact(self) -> None:
        """Checkpoint the write-ahead log and truncate it (space came back)."""
        async with self.lock:
            await self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
