"""Shared fixtures: a clean environment, a fake Ollama, settings, real PostgreSQL and Redis."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from opencomputer.bot.config import Settings, load_settings
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.services import (
    REDIS_URL,
    ServiceUnavailable,
    postgres_database,
    redis_ping,
)

_PREFIXES = ("OC_", "OLLAMA_", "TELEGRAM_", "DISCORD_", "SLACK_", "MATRIX_")
IN_CI = bool(os.environ.get("CI"))


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
            # Suites talk to the bot as strangers, many times a minute: access control and rate
            # limits (tests/admin sets them explicitly) stay out of their way.
            "OC_DM_POLICY": "open",
            "OC_RATE_LIMIT_USER": "0",
            "OC_RATE_LIMIT_CHAT": "0",
        }
        values.update(overrides)
        return load_settings(**values)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Default test settings (SQLite in a temp dir)."""
    return make_settings()


def _unavailable(what: str, exc: BaseException) -> None:
    """Skip on a developer's machine without the server; fail in CI, where it is mandatory."""
    message = f"{what} is not reachable ({exc}); start it or set OC_TEST_{what.upper()}_URL"
    if IN_CI:
        pytest.fail(f"{message} — it is mandatory in CI", pytrace=False)
    pytest.skip(message)


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """URL of a fresh database on the real PostgreSQL server (mandatory in CI)."""
    try:
        async with postgres_database() as url:
            yield url
    except ServiceUnavailable as exc:
        _unavailable("postgres", exc)


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """The real Redis server; tests must use unique key prefixes (several suites share it)."""
    try:
        await redis_ping()
    except ServiceUnavailable as exc:
        _unavailable("redis", exc)
    yield REDIS_URL
