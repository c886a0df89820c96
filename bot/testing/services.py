"""Real PostgreSQL and Redis for tests: a throw-away database per use, reachability checks."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator

__all__ = ["POSTGRES_URL", "REDIS_URL", "ServiceUnavailable", "postgres_database", "redis_ping"]

POSTGRES_URL = os.environ.get(
    "OC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("OC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


class ServiceUnavailable(Exception):
    """The server a test needs is not running."""


@contextlib.asynccontextmanager
async def postgres_database(admin_url: str = POSTGRES_URL) -> AsyncIterator[str]:
    """Create a fresh, empty database on the PostgreSQL server; drop it afterwards."""
    import asyncpg

    try:
        admin = await asyncpg.connect(admin_url, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        raise ServiceUnavailable(f"PostgreSQL at {admin_url}: {exc}") from exc
    name = f"oc_test_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def redis_ping(url: str = REDIS_URL) -> None:
    """Raise :class:`ServiceUnavailable` unless Redis answers."""
    import redis.asyncio as redis

    client = redis.from_url(url)
    try:
        await client.ping()
    except Exception as exc:
        raise ServiceUnavailable(f"Redis at {url}: {exc}") from exc
    finally:
        await client.aclose()
