"""Reading database URLs: the async driver for a plain URL, the file behind a SQLite URL.

Pure string work kept apart from ``bot.storage.engine`` (which creates engines and wires the disk
guard to them) so that ``bot.storage.disk`` can map a URL to its guard without importing the
engine module that imports it.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["async_url", "sqlite_path"]


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
