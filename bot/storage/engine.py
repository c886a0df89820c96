"""One async SQLAlchemy engine per process, tuned for each backend.

A SQLite database is private to the service's user: its folder is made 0700 and the database
file 0600 before the first connection (SQLite gives the ``-wal`` and ``-shm`` files the
database file's mode), and looser modes left by older versions are tightened at every start.

Optionally the SQLite files are encrypted with SQLCipher (``OC_DATABASE_KEY`` or
``OC_DATABASE_KEY_FILE``, the ``sqlcipher3-binary`` package). Settings register the key for the
database path when they are validated (:func:`use_database_key`); every connection to that
path, the engine's and the raw writer's (:func:`connect_sqlite`), then runs ``PRAGMA key`` as
its very first statement, before SQLAlchemy or anything else reads the file.
"""

from __future__ import annotations

import contextlib
import functools
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from opencomputer.bot.storage.urls import async_url, sqlite_path

# async_url and sqlite_path are opencomputer.bot.storage.urls's, named here as before
__all__ = [
    "WAL_LIMIT",
    "DatabaseKeyError",
    "async_url",
    "connect_sqlite",
    "create_engine",
    "database_key",
    "is_transient",
    "private_dir",
    "private_file_open",
    "secure_sqlite_files",
    "sqlite_path",
    "use_database_key",
]


WAL_LIMIT = 4 << 20
"""Bytes a SQLite write-ahead log is cut back to after a checkpoint (``journal_size_limit``):
without it the log keeps the size of its largest burst, and on a small disk grows back to fill
it.
"""


# --- SQLCipher ----------------------------------------------------------------------------
class DatabaseKeyError(RuntimeError):
    """The database cannot be opened with the configured key (or needs one)."""


_KEYS: dict[Path, str] = {}


def use_database_key(path: Path, key: str | None, *, siblings: tuple[str, ...] = ()) -> None:
    """Encrypt (or, with None, stop encrypting) the SQLite file at ``path`` and the files
    named ``<stem><suffix>`` beside it (the graph checkpoints' ``-checkpoints.db``).
    """
    targets = [path, *(path.with_name(path.stem + suffix) for suffix in siblings)]
    for target in targets:
        resolved = target.resolve()
        if key:
            _KEYS[resolved] = key
        else:
            _KEYS.pop(resolved, None)


def database_key(path: Path | str) -> str | None:
    """The key registered for this SQLite file, if any."""
    if not _KEYS:
        return None
    return _KEYS.get(Path(path).resolve())


def _cipher() -> Any:
    try:
        from sqlcipher3 import dbapi2
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise DatabaseKeyError(
            "OC_DATABASE_KEY needs SQLCipher: pip install 'opencomputer[encryption]' "
            "(the sqlcipher3-binary package)"
        ) from exc
    return dbapi2


def _key_pragma(key: str) -> str:
    """``PRAGMA key`` for a passphrase, or a raw 256-bit key given as 64 hex digits (no KDF)."""
    if len(key) == 64 and all(c in "0123456789abcdefABCDEF" for c in key):
        return f"PRAGMA key = \"x'{key}'\""
    return "PRAGMA key = '" + key.replace("'", "''") + "'"


def connect_sqlite(path: Path | str, **kwargs: Any) -> Any:
    """``sqlite3.connect``, or SQLCipher's with the key applied first when one is registered.

    A SQLCipher connection is wrapped so that it raises :mod:`sqlite3`'s exception classes:
    SQLAlchemy, aiosqlite, LangGraph and our store all catch those (``IntegrityError`` for a
    duplicate event, ``OperationalError`` for a busy database), not SQLCipher's twins.
    """
    if str(path) != ":memory:":
        secure_sqlite_files(Path(path))
    key = database_key(path)
    if key is None:
        import sqlite3

        return sqlite3.connect(path, **kwargs)
    dbapi2 = _cipher()
    conn = dbapi2.connect(str(path), **kwargs)
    try:
        conn.execute("PRAGMA cipher_log_level = NONE")  # a wrong key is our one-line error
        conn.execute(_key_pragma(key))
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except dbapi2.DatabaseError as exc:
        conn.close()
        raise DatabaseKeyError(
            f"{path}: cannot open the database with OC_DATABASE_KEY ({exc}): the key is wrong, "
            "or the database is plaintext (export it to an encrypted one, docs/deploy.md)"
        ) from exc
    return _SqliteErrors(conn)


def _as_sqlite3_error(exc: BaseException) -> BaseException:
    import sqlite3

    cls = getattr(sqlite3, type(exc).__name__, sqlite3.Error)
    if not (isinstance(cls, type) and issubclass(cls, sqlite3.Error)):
        cls = sqlite3.Error
    new = cls(*exc.args)
    for attr in ("sqlite_errorcode", "sqlite_errorname"):
        if hasattr(exc, attr):
            setattr(new, attr, getattr(exc, attr))
    return new


class _SqliteErrors:
    """A SQLCipher connection or cursor that raises :mod:`sqlite3`'s exceptions."""

    __slots__ = ("_target",)

    def __init__(self, target: Any) -> None:
        object.__setattr__(self, "_target", target)

    @property
    def cipher_row(self) -> Any:
        """SQLCipher's ``Row`` (``sqlite3.Row`` only accepts sqlite3 cursors)."""
        return _cipher().Row

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value):
            return value
        error = _cipher().Error

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                result = value(*args, **kwargs)
            except error as exc:
                raise _as_sqlite3_error(exc) from exc
            if isinstance(result, _wrapped()):
                return _SqliteErrors(result)
            return result

        return call

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._target, name, value)

    def __iter__(self) -> Any:
        return self

    def __next__(self) -> Any:
        try:
            return next(self._target)
        except _cipher().Error as exc:
            raise _as_sqlite3_error(exc) from exc


def _wrapped() -> tuple[type, ...]:
    dbapi2 = _cipher()
    return (dbapi2.Connection, dbapi2.Cursor)


def _refuse_unreadable(path: Path) -> None:
    """Without a key, a file that is not plain SQLite is most likely an encrypted database.

    The header is read through SQLite itself (``sqlite3`` is what the engine's connections
    use): its VFS keeps a descriptor open while the process holds locks on the file, where a
    plain ``open()``/``close()`` here would drop the locks of the store's other connections.
    """
    import sqlite3

    conn = sqlite3.connect(path, timeout=30)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        readable = True
    except sqlite3.DatabaseError as exc:
        if "not a database" not in str(exc):
            raise
        readable = False
    finally:
        conn.close()
    if not readable:
        raise DatabaseKeyError(
            f"{path} is not a plain SQLite database (encrypted?): set OC_DATABASE_KEY or "
            "OC_DATABASE_KEY_FILE to open it"
        )


_OPENED: set[tuple[str, str]] = set()


async def _cipher_connection(path: str) -> Any:
    """An aiosqlite connection over :func:`connect_sqlite` (for SQLAlchemy's ``async_creator``).

    The key is tried once in a plain thread first: aiosqlite leaves its worker thread behind
    when the first connect fails, which then dies noisily as the event loop closes.
    """
    import asyncio

    import aiosqlite

    tried = (path, database_key(path) or "")
    if tried not in _OPENED:
        await asyncio.to_thread(lambda: connect_sqlite(path).close())
        _OPENED.add(tried)
    conn = aiosqlite.Connection(lambda: connect_sqlite(path, timeout=30), 64)
    conn._thread.daemon = True  # as SQLAlchemy does for aiosqlite's own connections
    return await conn


def create_engine(url: str) -> AsyncEngine:
    """Create the engine; SQLite gets WAL and ``synchronous=NORMAL`` (durable, few fsyncs)."""
    url = async_url(url)
    kwargs: dict[str, Any] = {}
    path = sqlite_path(url)
    if path is not None:
        secure_sqlite_files(path)
        kwargs["connect_args"] = {"timeout": 30}
        if database_key(path) is not None:
            kwargs["async_creator"] = functools.partial(_cipher_connection, str(path))
        else:
            _refuse_unreadable(path)
    else:
        kwargs.update(pool_size=10, max_overflow=20)
    engine = create_async_engine(url, **kwargs)
    if url.startswith("sqlite"):
        event.listen(engine.sync_engine, "connect", _pragmas)
        if path is not None:
            from opencomputer.bot.storage.disk import guard_for

            guard = guard_for(path)  # a write that met a full disk turns the guard to "full"
            event.listen(engine.sync_engine, "handle_error", lambda ctx: _disk(guard, ctx))
    else:
        event.listen(engine.sync_engine, "checkout", _ping_if_idle)
        event.listen(engine.sync_engine, "checkin", _note_use)
        event.listen(engine.sync_engine, "handle_error", _broken_connection)
    return engine


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _tighten(path: Path, allowed: int) -> None:
    """Drop mode bits outside ``allowed`` on a path we own (never on a shared, sticky folder
    such as /tmp, nor on someone else's folder, even as root).
    """
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & stat.S_ISVTX:
        return
    mode = stat.S_IMODE(st.st_mode)
    if mode & ~allowed:
        os.chmod(path, mode & allowed)


def private_dir(path: Path) -> None:
    """Create ``path`` (with parents) as 0700, or tighten it to 0700 if it exists."""
    with _umask(0o077):
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    _tighten(path, 0o700)


@contextlib.contextmanager
def private_file_open(
    path: Path, *, exclusive: bool = False, append: bool = False
) -> Iterator[IO[bytes]]:
    """Open ``path`` for binary writing, created 0600 (an existing file is tightened)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    flags |= os.O_EXCL if exclusive else (os.O_APPEND if append else os.O_TRUNC)
    with _umask(0o077):
        fd = os.open(path, flags, 0o600)
    _tighten(path, 0o600)
    with os.fdopen(fd, "ab" if append else "wb") as out:
        yield out


def secure_sqlite_files(path: Path) -> None:
    """Make the database's folder 0700 and the database and its side files 0600.

    An existing store is never opened here: on Linux, closing any descriptor of a file drops
    every POSIX lock the process holds on it, and SQLite's locks on a store this process already
    uses would silently vanish (a corruption risk). Only a missing file is created, 0600.
    """
    private_dir(path.parent)
    with _umask(0o077), contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            _tighten(path.with_name(path.name + suffix), 0o600)


_IDLE_PING_AFTER = 1.0
"""Seconds a pooled connection may sit unused before it is tested on checkout."""


def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    """Test connections that sat idle (the server may have restarted meanwhile).

    ``pool_pre_ping`` tests every checkout: a round trip that was a third of a busy turn's
    database time. A connection returned less than a second ago is taken as alive; should it
    not be, the statement fails with a transient error, which the runtime retries.
    """
    if time.monotonic() - record.info.get("used", 0.0) < _IDLE_PING_AFTER:
        return
    try:
        dbapi_conn.ping()
    except Exception as exc:
        raise DisconnectionError("pooled connection is gone") from exc  # the pool reconnects


def _note_use(_dbapi_conn: Any, record: Any) -> None:
    record.info["used"] = time.monotonic()


def _broken_connection(ctx: Any) -> None:
    """A statement on a connection the server closed can fail as an asyncpg protocol error
    rather than a disconnect; count it as one, so the pool drops the connection.
    """
    if not ctx.is_disconnect and _transient_name(ctx.original_exception):
        ctx.is_disconnect = True


def _pragmas(dbapi_conn: Any, _record: Any) -> None:
    """WAL + ``synchronous=NORMAL``: a commit appends to the write-ahead log without an fsync.

    What that protects: every committed transaction survives the process dying at any
    instruction (``kill -9``, an out-of-memory kill, a crash): its pages are in the operating
    system's cache, which writes them out. What it does not: a power cut or kernel crash may
    lose the transactions committed since the log was last synced (at each checkpoint); the
    database stays consistent (torn log frames fail their checksum and are ignored), it only
    rolls back to an earlier commit. ``FULL`` would fsync at every commit: one disk flush per
    turn's transaction for that last margin.
    """
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")
    cur.close()


def _disk(guard: Any, ctx: Any) -> None:
    """Tell the folder's disk guard about a statement that failed (it ignores other errors)."""
    guard.report(ctx.original_exception)


def is_transient(exc: BaseException) -> bool:
    """Whether an error means the database connection failed (worth retrying), not a bug."""
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated) or _transient_name(exc.orig)
    return _transient_name(exc)


def _transient_name(exc: BaseException | None) -> bool:
    names = {type(e).__name__ for e in _chain(exc)}
    return bool(
        names
        & {
            "OperationalError",
            "InterfaceError",
            "ConnectionDoesNotExistError",
            "ConnectionFailureError",
            "AdminShutdown",
            "ConnectionResetError",
            "PoolTimeout",
            "InterfaceWarning",
            "CannotConnectNowError",
            "InternalClientError",  # asyncpg: a statement on a connection the server closed
            "ConnectionRefusedError",
        }
    )


def _chain(exc: BaseException | None) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen
