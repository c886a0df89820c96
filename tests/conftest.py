"""Shared fixtures: a clean environment, a fake Ollama, settings, real PostgreSQL and Redis."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings, load_settings
from bot.testing import FakeOllama

_PREFIXES = ("OC_", "OLLAMA_", "TELEGRAM_", "DISCORD_", "SLACK_", "MATRIX_")
IN_CI = bool(os.environ.get("CI"))
POSTGRES_URL = os.environ.get("OC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("OC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No setting leaks in from the developer's shell or a `.env` in the working directory."""
    for name in list(os.environ):
        if name.startswith(_PREFIXES) and not name.startswith("OC_TEST_"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture
async def fake_ollama() -> AsyncIterator[FakeOllama]:
    """A fake Ollama server on a free loopback port."""
    async with FakeOllama() as fake:
        yield fake


@pytest.fixture
def make_settings(tmp_path: Path, fake_ollama: FakeOllama) -> Callable[..., Settings]:
    """Settings pointing at the fake Ollama and a fresh data directory."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "OLLAMA_HOST": fake_ollama.url,
            "OC_DATA_DIR": tmp_path / "data",
            "OC_HTTP_PORT": 0,
        }
        values.update(overrides)
        return load_settings(**values)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Default test settings (SQLite in a temp dir)."""
    return make_settings()


def _unavailable(what: str, exc: BaseException) -> None:
    message = f"{what} is not reachable ({exc}); start it or set OC_TEST_{what.upper()}_URL"
    if IN_CI:
        pytest.fail(f"{message} — it is mandatory in CI", pytrace=False)
    pytest.skip(message)


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database on the real server, dropped afterwards."""
    import asyncpg

    admin_dsn = POSTGRES_URL
    try:
        admin = await asyncpg.connect(admin_dsn, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        _unavailable("postgres", exc)
    name = f"oc_test_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    base = admin_dsn.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """The real Redis server; tests must use unique key prefixes (several suites share it)."""
    import redis.asyncio as redis

    client = redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        _unavailable("redis", exc)
    await client.aclose()
    yield REDIS_URL
