"""Running the per-turn transactions: one statement vocabulary, two executors.

The store's hot-path transactions are written once against :class:`Tx`. On PostgreSQL they run
through SQLAlchemy (``CoreTx`` inside the async engine's ``run_sync``). On SQLite they run in
one dedicated thread on a raw ``sqlite3`` connection (``SqliteTx``), with each SQLAlchemy
statement compiled once to SQLite SQL: a whole transaction costs one thread hop and a few tens
of microseconds, where SQLAlchemy's async layer over aiosqlite cost about a millisecond.

The writer also keeps the write-ahead log small (``journal_size_limit``, and a
``wal_checkpoint(TRUNCATE)`` once a burst of writes has settled) and meets a full disk calmly:
the failed transaction is rolled back, the folder's :class:`~bot.storage.disk.DiskGuard` goes
to "full", and the call waits for space and runs again (inside ``Runtime.emit`` it raises
:class:`~bot.storage.disk.DiskFull` instead, so the platform keeps the event).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections import namedtuple
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, Table, insert
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.sql import Executable

from opencomputer.bot.storage.disk import DiskFull, guard_for, may_wait
from opencomputer.bot.storage.engine import WAL_LIMIT, connect_sqlite

__all__ = ["CoreTx", "SqliteTx", "SqliteWriter", "Tx"]

logger = logging.getLogger(__name__)

_SETTLE = 2.0
"""Seconds without a write after which the write-ahead log is checkpointed and truncated."""

T = TypeVar("T")
_Compiled = tuple[str, dict[str, Any]]
_NAMED = sqlite_dialect.dialect(paramstyle="named")


class Tx(Protocol):
    """The few operations the per-turn transactions need."""

    def insert(self, table: Table, values: dict[str, Any]) -> int:
        """Insert one row; return its new integer primary key."""
        ...

    def insert_many(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """Insert several rows with the same keys."""

    def execute(self, statement: Executable, params: dict[str, Any]) -> int:
        """Run a statement with bound parameters; return how many rows it changed."""
        ...

    def all(self, statement: Executable, params: dict[str, Any]) -> list[Any]:
        """Run a query; rows allow attribute access (``row.status``)."""
        ...

    def first(self, statement: Executable, params: dict[str, Any]) -> Any | None:
        """Run a statement and return its first row (``RETURNING``), if any."""
        ...


class CoreTx:
    """:class:`Tx` over a SQLAlchemy connection (any database)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def insert(self, table: Table, values: dict[str, Any]) -> int:
        """Insert one row; return its new integer primary key."""
        key = self.conn.execute(insert(table), values).inserted_primary_key
        assert key is not None
        return int(key[0])

    def insert_many(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """Insert several rows with the same keys."""
        self.conn.execute(insert(table), rows)

    def execute(self, statement: Executable, params: dict[str, Any]) -> int:
        """Run a statement with bound parameters; return how many rows it changed."""
        return int(self.conn.execute(statement, params).rowcount)

    def all(self, statement: Executable, params: dict[str, Any]) -> list[Any]:
        """Run a query; rows allow attribute access."""
        return list(self.conn.execute(statement, params))

    def first(self, statement: Executable, params: dict[str, Any]) -> Any | None:
        """Run a statement and return its first row."""
        return self.conn.execute(statement, params).first()


class SqliteTx:
    """:class:`Tx` over a raw ``sqlite3`` connection, statements compiled once."""

    def __init__(self, conn: sqlite3.Connection, cache: dict[Any, _Compiled]) -> None:
        self.conn = conn
        self.cache = cache

    def _sql(self, statement: Any, keys: tuple[str, ...] = ()) -> _Compiled:
        """SQL text and the values of the constants written in the statement itself."""
        ident = (id(statement), keys)
        found = self.cache.get(ident)
        if found is None:
            compiled = statement.compile(dialect=_NAMED, column_keys=list(keys) or None)
            found = self.cache[ident] = (str(compiled), dict(compiled.params))
        return found

    def _run(self, statement: Any, params: dict[str, Any]) -> sqlite3.Cursor:
        sql, constants = self._sql(statement)
        return self.conn.execute(sql, {**constants, **params})

    def insert(self, table: Table, values: dict[str, Any]) -> int:
        """Insert one row; return its new integer primary key."""
        sql, _ = self._sql(_insert(table), tuple(values))
        return int(self.conn.execute(sql, values).lastrowid or 0)

    def insert_many(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """Insert several rows with the same keys."""
        if rows:
            sql, _ = self._sql(_insert(table), tuple(rows[0]))
            self.conn.executemany(sql, rows)

    def execute(self, statement: Executable, params: dict[str, Any]) -> int:
        """Run a statement with bound parameters; return how many rows it changed."""
        return self._run(statement, params).rowcount

    def all(self, statement: Executable, params: dict[str, Any]) -> list[Any]:
        """Run a query; rows are named tuples, read by attribute like SQLAlchemy's."""
        cursor = self._run(statement, params)
        names = tuple(column[0] for column in cursor.description)
        row_type: Any = _ROW_TYPES.get(names)
        if row_type is None:
            row_type = _ROW_TYPES[names] = namedtuple("Row", names)
        return [row_type._make(row) for row in cursor]

    def first(self, statement: Executable, params: dict[str, Any]) -> Any | None:
        """Run a statement and return its first row."""
        return self._run(statement, params).fetchone()


_INSERTS: dict[str, Any] = {}
_ROW_TYPES: dict[tuple[str, ...], Any] = {}


def _insert(table: Table) -> Any:
    """One insert construct per table, so its compiled SQL is cached by identity."""
    statement = _INSERTS.get(table.name)
    if statement is None:
        statement = _INSERTS[table.name] = insert(table)
    return statement


class SqliteWriter:
    """One thread holding one SQLite connection; each call is a whole transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.guard = guard_for(path)
        self.guard.compactors.append(self.compact)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._conn: sqlite3.Connection | None = None
        self._cache: dict[Any, _Compiled] = {}
        self._last_write = 0.0
        self._settle: asyncio.TimerHandle | None = None

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """Run ``work(tx, *args)`` in one transaction in the writer thread.

        On a full disk the transaction is rolled back; the call waits for space and runs it
        again (or, inside :func:`~bot.storage.disk.refusing`, raises ``DiskFull``).
        """
        loop = asyncio.get_running_loop()
        while True:
            if self.guard.full:
                if not may_wait():
                    raise DiskFull(f"the disk is full ({self.guard.reason})")
                await self.guard.wait_for_space()
            try:
                result = await loop.run_in_executor(self._thread, self._transaction, work, args)
            except Exception as exc:
                if not self.guard.report(exc):
                    raise
                if not may_wait():
                    raise DiskFull(f"the disk is full ({self.guard.reason})") from exc
                continue
            self._wrote(loop)
            return result

    def _transaction(self, work: Callable[..., T], args: tuple[Any, ...]) -> T:
        conn = self._conn or self._connect()
        conn.execute("BEGIN IMMEDIATE")  # take the write lock now: no upgrade deadlock later
        try:
            result = work(SqliteTx(conn, self._cache), *args)
            conn.commit()
        except BaseException:
            with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back already
                conn.rollback()
            raise
        return result

    def _connect(self) -> sqlite3.Connection:
        # connect_sqlite: SQLCipher with the key first when the database is encrypted.
        conn: sqlite3.Connection = connect_sqlite(self.path, timeout=30, isolation_level=None)
        conn.row_factory = getattr(conn, "cipher_row", sqlite3.Row)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")
        self._conn = conn
        return conn

    # --- keeping the write-ahead log small ----------------------------------------------
    def _wrote(self, loop: asyncio.AbstractEventLoop) -> None:
        """Note a commit; once writes settle, the log is checkpointed and truncated."""
        self._last_write = time.monotonic()
        if self._settle is None:
            self._settle = loop.call_later(_SETTLE, self._settled, loop)

    def _settled(self, loop: asyncio.AbstractEventLoop) -> None:
        quiet = time.monotonic() - self._last_write
        if quiet < _SETTLE:  # still busy: look again when it may have settled
            self._settle = loop.call_later(_SETTLE - quiet, self._settled, loop)
            return
        self._settle = None
        future = loop.run_in_executor(self._thread, self._truncate)
        future.add_done_callback(_ignore_result)

    async def compact(self) -> None:
        """Checkpoint the write-ahead log into the database and truncate it to zero bytes."""
        await asyncio.get_running_loop().run_in_executor(self._thread, self._truncate)

    def _truncate(self) -> None:
        conn = self._conn
        if conn is None:
            return
        # A short busy wait: a reader in the middle of a query makes this pass a no-op, not
        # a 30-second stall of every write behind it.
        conn.execute("PRAGMA busy_timeout=200")
        try:
            busy, log, done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy:
                logger.debug("WAL checkpoint deferred (%s of %s pages copied)", done, log)
        finally:
            conn.execute("PRAGMA busy_timeout=30000")

    def close(self) -> None:
        """Finish pending work and close the connection."""
        if self._settle is not None:
            self._settle.cancel()
            self._settle = None
        with contextlib.suppress(ValueError):
            self.guard.compactors.remove(self.compact)
        self.guard.stop_probing()
        self._thread.submit(self._close).result()
        self._thread.shutdown(wait=True)

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._truncate()  # leave a small database behind (no log to replay)
            self._conn.close()
            self._conn = None


def _ignore_result(future: asyncio.Future[None]) -> None:
    """A background truncation that failed (full disk, closed connection) is retried later."""
    if not future.cancelled() and (exc := future.exception()) is not None:
        logger.debug("WAL truncation skipped: %s", exc)
