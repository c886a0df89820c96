"""One async SQLAlchemy engine per process, tuned for each backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
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
        kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
    engine = create_async_engine(url, **kwargs)
    if url.startswith("sqlite"):
        event.listen(engine.sync_engine, "connect", _pragmas)
    return engine


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
            "ConnectionRefusedError",
        }
    )


def _chain(exc: BaseException | None) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen
