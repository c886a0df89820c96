"""Storage: SQLModel tables behind a small async repository (SQLite or PostgreSQL)."""

from bot.storage.engine import async_url, create_engine
from bot.storage.store import SqlStore

__all__ = ["SqlStore", "async_url", "create_engine"]
