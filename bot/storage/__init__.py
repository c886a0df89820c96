"""Storage: SQLModel tables behind a small async repository (SQLite or PostgreSQL)."""

from opencomputer.bot.storage.engine import async_url, create_engine
from opencomputer.bot.storage.store import SqlStore

__all__ = ["SqlStore", "async_url", "create_engine"]
