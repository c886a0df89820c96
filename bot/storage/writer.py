"""Running the per-turn transactions: one statement vocabulary, two executors.

The store's hot-path transactions are written once against :class:`Tx`. On PostgreSQL they run
through SQLAlchemy (``CoreTx`` inside the async engine's ``run_sync``). On SQLite they run in
one dedicated thread on a raw ``sqlite3`` connection (``SqliteTx``), with each SQLAlchemy
statement compiled once to SQLite SQL: a whole transaction costs one thread hop and a few tens
of microseconds, where SQLAlchemy's async layer over aiosqlite cost about a millisecond.

The graph checkpoints go through the same thread and connection (their file is attached; see
:class:`SqliteWriter`), so a turn makes three transactions (accept the message; the checkpoint
with the reply; mark it sent) and one read (the checkpoint), each one thread hop.

The writer also checkpoints the write-ahead log itself, between turns, never inside a turn's
commit (see :class:`SqliteWriter`), and meets a full disk calmly:
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
from typing import Any, Protocol, TypeVar, cast

from sqlalchemy import Connection, Table, insert
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.sql import Executable

from opencomputer.bot.storage.disk import DiskFull, DiskGuard, guard_for, may_wait
from opencomputer.bot.storage.engine import WAL_LIMIT, connect_sqlite, secure_sqlite_files

__all__ = ["CoreTx", "SqliteTx", "SqliteWriter", "Tx"]

logger = logging.getLogger(__name__)

_SETTLE = 2.0
"""Seconds without a write after which the write-ahead log is checkpointed and truncated."""
_IDLE = 0.005
"""Seconds the writer must be idle before it checkpoints the log (between turns)."""
_IDLE_COMMITS = 32
"""Commits an idle checkpoint waits for: a page that several of them changed is copied into
the database once, not once per turn (a checkpoint after every turn doubled the bytes written).
"""
_MAX_COMMITS = 200
"""Commits after which the log is checkpointed even while busy: its size stays bounded."""
_DEFER_AT_MOST = 0.25
"""Seconds a deferred write (a graph checkpoint) waits for a transaction to join."""

T = TypeVar("T")
_Compiled = tuple[str, dict[str, Any]]
_Work = tuple[Callable[..., None], tuple[Any, ...]]
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
    """One thread holding one SQLite connection; each call is a whole transaction.

    Besides the store's tables, the connection holds the graph checkpoints' file, attached
    (:meth:`attach`): a checkpoint the graph saves at the end of a turn is not written on its
    own but *deferred* (:meth:`defer`) into the turn's next transaction, the one that records
    its reply, so a turn's checkpoint and outbox rows reach the disk in one commit, one thread
    hop. Deferred rows are never lost to a reader: a read through the writer (:meth:`read`)
    commits them first, and a timer commits them after ``_DEFER_AT_MOST`` seconds at the latest.

    Write-ahead log: ``wal_autocheckpoint`` is off (SQLite would otherwise copy the log into
    the database inside whichever commit crossed 1,000 pages, a few-millisecond stall in that
    turn). The writer checkpoints itself, as its own job: a passive checkpoint once it has
    been idle for ``_IDLE`` seconds with ``_IDLE_COMMITS`` commits in the log (between turns;
    while the model is thinking), one at the
    latest after ``_MAX_COMMITS`` commits under continuous load (the log stays bounded), and
    ``wal_checkpoint(TRUNCATE)`` once writes settle for ``_SETTLE`` seconds.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = path
        self.guard: DiskGuard | None = None
        if str(path) != ":memory:":
            self.guard = guard_for(Path(path))
            self.guard.compactors.append(self.compact)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._conn: sqlite3.Connection | None = None
        self._cache: dict[Any, _Compiled] = {}
        self._attached: dict[str, str] = {}
        self._deferred: list[_Work] = []
        self._flush: asyncio.TimerHandle | None = None
        self._flushing: asyncio.Task[None] | None = None
        self._busy = 0  # calls waiting for or running in the thread
        self._commits = 0  # commits since the last checkpoint
        self._last_write = 0.0
        self._idle: asyncio.TimerHandle | None = None
        self._settle: asyncio.TimerHandle | None = None
        self.checkpoints = 0
        """Passive checkpoints run (for tests and benchmarks)."""

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """Run ``work(tx, *args)`` in one transaction in the writer thread, after the deferred
        writes (committed with it even when ``work`` raises).

        On a full disk the transaction is rolled back; the call waits for space and runs it
        again (or, inside :func:`~bot.storage.disk.refusing`, raises ``DiskFull``).
        """
        loop = asyncio.get_running_loop()
        self._busy += 1
        try:
            while True:
                if self.guard is not None and self.guard.full:
                    if not may_wait():
                        raise DiskFull(f"the disk is full ({self.guard.reason})")
                    await self.guard.wait_for_space()
                deferred, self._deferred = self._deferred, []
                try:
                    result, failed = await loop.run_in_executor(
                        self._thread, self._transaction, work, args, deferred
                    )
                except Exception as exc:
                    self._deferred[:0] = deferred  # not written: the next transaction does
                    if self.guard is None or not self.guard.report(exc):
                        raise
                    if not may_wait():
                        raise DiskFull(f"the disk is full ({self.guard.reason})") from exc
                    continue
                if failed is not None:  # the deferred writes went in, ``work`` did not
                    if self.guard is None or not self.guard.report(failed):
                        raise failed
                    if not may_wait():
                        raise DiskFull(f"the disk is full ({self.guard.reason})") from failed
                    continue
                return cast(T, result)
        finally:
            self._busy -= 1
            self._wrote(loop)

    async def read(self, work: Callable[..., T], *args: Any) -> T:
        """Run ``work(tx, *args)`` in the writer thread outside a write transaction (it sees
        every committed row; deferred writes are committed first).
        """
        if self._deferred:
            return await self.run(work, *args)
        self._busy += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._thread, self._read, work, args)
        finally:
            self._busy -= 1

    def defer(self, work: Callable[..., None], *args: Any) -> None:
        """Write ``work(tx, *args)`` with the next transaction (at most ``_DEFER_AT_MOST``
        seconds from now). A deferred write that fails other than for lack of space is logged
        and dropped, so one bad row cannot stop every write after it.
        """
        self._deferred.append((work, args))
        if self._flush is None:
            loop = asyncio.get_running_loop()
            self._flush = loop.call_later(_DEFER_AT_MOST, self._flush_now, loop)

    async def flush(self) -> None:
        """Commit the deferred writes now (another connection is about to read)."""
        if self._deferred:
            await self.run(_nothing)

    def _flush_now(self, loop: asyncio.AbstractEventLoop) -> None:
        self._flush = None
        if self._deferred and self._flushing is None:
            self._flushing = loop.create_task(self._flush_deferred())  # a strong reference

    async def _flush_deferred(self) -> None:
        try:
            await self.flush()
        except Exception as exc:  # still deferred: the next transaction writes them
            logger.warning("deferred writes not flushed yet: %s", exc)
        finally:
            self._flushing = None

    async def attach(self, name: str, path: Path | str) -> None:
        """Attach another SQLite file under schema ``name`` (same key, same pragmas)."""
        if str(path) != ":memory:":
            secure_sqlite_files(Path(path))
        self._attached[name] = str(path)
        if self._conn is not None:
            await asyncio.get_running_loop().run_in_executor(
                self._thread, self._attach, self._conn, name, str(path)
            )

    def _attach(self, conn: sqlite3.Connection, name: str, path: str) -> None:
        conn.execute(f"ATTACH DATABASE ? AS {name}", (path,))
        _pragmas(conn, name)

    def _transaction(
        self, work: Callable[..., T], args: tuple[Any, ...], deferred: list[_Work]
    ) -> tuple[T | None, BaseException | None]:
        conn = self._conn or self._connect()
        conn.execute("BEGIN IMMEDIATE")  # take the write lock now: no upgrade deadlock later
        tx = SqliteTx(conn, self._cache)
        try:
            if deferred:
                _run_deferred(conn, tx, deferred)
                conn.execute("SAVEPOINT work")
                try:
                    result = work(tx, *args)
                except Exception as exc:
                    conn.execute("ROLLBACK TO work")  # the deferred writes stay
                    conn.commit()
                    return None, exc
            else:
                result = work(tx, *args)
            conn.commit()
        except BaseException:
            with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back already
                conn.rollback()
            raise
        self._commits += 1
        return result, None

    def _read(self, work: Callable[..., T], args: tuple[Any, ...]) -> T:
        conn = self._conn or self._connect()
        return work(SqliteTx(conn, self._cache), *args)

    def _connect(self) -> sqlite3.Connection:
        # connect_sqlite: SQLCipher with the key first when the database is encrypted.
        conn: sqlite3.Connection = connect_sqlite(self.path, timeout=30, isolation_level=None)
        conn.row_factory = getattr(conn, "cipher_row", sqlite3.Row)
        _pragmas(conn, "main")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA wal_autocheckpoint=0")  # this writer checkpoints, between turns
        for name, path in self._attached.items():
            self._attach(conn, name, path)
        self._conn = conn
        return conn

    # --- keeping the write-ahead log small ----------------------------------------------
    def _wrote(self, loop: asyncio.AbstractEventLoop) -> None:
        """Note a commit; checkpoint when idle (or after too many commits), truncate when
        writes have settled.
        """
        self._last_write = time.monotonic()
        if self._commits >= _MAX_COMMITS:
            self._checkpoint_soon(loop)
        elif self._idle is None and self._commits >= _IDLE_COMMITS:
            self._idle = loop.call_later(_IDLE, self._idled, loop)
        if self._settle is None:
            self._settle = loop.call_later(_SETTLE, self._settled, loop)

    def _idled(self, loop: asyncio.AbstractEventLoop) -> None:
        self._idle = None
        quiet = time.monotonic() - self._last_write
        wait = _IDLE if self._busy else _IDLE - quiet  # a transaction is waiting or just ran
        if wait > 0:
            self._idle = loop.call_later(wait, self._idled, loop)
            return
        if self._commits >= _IDLE_COMMITS:
            self._checkpoint_soon(loop)

    def _checkpoint_soon(self, loop: asyncio.AbstractEventLoop) -> None:
        self._commits = 0
        future = loop.run_in_executor(self._thread, self._checkpoint, "PASSIVE")
        future.add_done_callback(_ignore_result)

    def _settled(self, loop: asyncio.AbstractEventLoop) -> None:
        quiet = time.monotonic() - self._last_write
        if quiet < _SETTLE:  # still busy: look again when it may have settled
            self._settle = loop.call_later(_SETTLE - quiet, self._settled, loop)
            return
        self._settle = None
        future = loop.run_in_executor(self._thread, self._checkpoint, "TRUNCATE")
        future.add_done_callback(_ignore_result)

    async def compact(self) -> None:
        """Checkpoint the write-ahead logs into the databases and truncate them to zero bytes."""
        await asyncio.get_running_loop().run_in_executor(self._thread, self._checkpoint, "TRUNCATE")

    def _checkpoint(self, mode: str) -> None:
        conn = self._conn
        if conn is None:
            return
        self.checkpoints += 1
        # A short busy wait: a reader in the middle of a query makes this pass a no-op, not
        # a 30-second stall of every write behind it.
        conn.execute("PRAGMA busy_timeout=200")
        try:
            for schema in ("main", *self._attached):
                busy, log, done = conn.execute(f"PRAGMA {schema}.wal_checkpoint({mode})").fetchone()
                if busy:
                    logger.debug("WAL checkpoint deferred (%s of %s pages copied)", done, log)
        finally:
            conn.execute("PRAGMA busy_timeout=30000")

    def close(self) -> None:
        """Write what is deferred, finish pending work and close the connection."""
        for timer in (self._settle, self._idle, self._flush):
            if timer is not None:
                timer.cancel()
        self._settle = self._idle = self._flush = None
        if self.guard is not None:
            with contextlib.suppress(ValueError):
                self.guard.compactors.remove(self.compact)
            self.guard.stop_probing()
        deferred, self._deferred = self._deferred, []
        if deferred:
            try:
                self._thread.submit(self._transaction, _nothing, (), deferred).result()
            except Exception as exc:
                logger.error("%d deferred writes lost at close: %s", len(deferred), exc)
        self._thread.submit(self._close).result()
        self._thread.shutdown(wait=True)

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._checkpoint("TRUNCATE")  # leave a small database behind (no log to replay)
            self._conn.close()
            self._conn = None


def _nothing(_tx: Tx) -> None:
    """A transaction that only writes what was deferred."""


def _run_deferred(conn: sqlite3.Connection, tx: SqliteTx, deferred: list[_Work]) -> None:
    """Each deferred write in its own savepoint: one that fails for a reason other than the
    disk (a bug, a corrupt row) is dropped with an error, the others are written.
    """
    for work, args in deferred:
        conn.execute("SAVEPOINT deferred")
        try:
            work(tx, *args)
        except sqlite3.OperationalError:
            raise  # full disk, I/O error: the whole transaction is tried again
        except Exception:
            logger.exception("a deferred write failed and was dropped")
            conn.execute("ROLLBACK TO deferred")
        conn.execute("RELEASE deferred")


def _pragmas(conn: sqlite3.Connection, schema: str) -> None:
    """WAL + ``synchronous=NORMAL`` for one database of the connection: durable when the
    process dies, not against a power cut since the last checkpoint (``engine._pragmas``).
    """
    conn.execute(f"PRAGMA {schema}.journal_mode=WAL")
    conn.execute(f"PRAGMA {schema}.synchronous=NORMAL")
    conn.execute(f"PRAGMA {schema}.journal_size_limit={WAL_LIMIT}")


def _ignore_result(future: asyncio.Future[None]) -> None:
    """A background checkpoint that failed (full disk, closed connection) is retried later."""
    if not future.cancelled() and (exc := future.exception()) is not None:
        logger.debug("WAL checkpoint skipped: %s", exc)
