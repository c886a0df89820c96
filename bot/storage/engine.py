"""One async SQLAlchemy engine per process, tuned for each backend."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = [
    "async_url",
    "create_engine",
    "is_transient",
    "sqlite_path",
]


def async_url(url: str) -> str:
    """Pick the async driver for a plain URL (``sqlite://``, ``postgresql://``)."""
    if url.startswith("sqlite:"):
        return "sqlite+aiosqlite:" + url[len("sqlite:") :]
    for prefix in (
        "postgresql://",
        "postgres://",
        "postgresql+psycopg://",
        "postgresql+psycopg2://",
    ):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL (None for other databases or in-memory)."""
    if not url.startswith("sqlite"):
        return None
    path = url.split(":///", 1)[1] if ":///" in url else ""
    return Path(path) if path and path != ":memory:" else None


def create_engine(url: str) -> AsyncEngine:
    """Create the engine; SQLite gets WAL and ``synchronous=NORMAL`` (durable, few fsyncs)."""
    url = async_url(url)
    kwargs: dict[str, Any] = {}
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs.update(pool_size=10, max_overflow=20)
    engine = create_async_engine(url, **kwargs)
    if url.startswith("sqlite"):
        event.listen(engine.sync_engine, "connect", _pragmas)
    else:
        event.listen(engine.sync_engine, "checkout", _ping_if_idle)
        event.listen(engine.sync_engine, "checkin", _note_use)
        event.listen(engine.sync_engine, "handle_error", _broken_connection)
    return engine


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
    """WAL + NORMAL: a commit does not wait for fsync, the write-ahead log keeps it safe."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


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
