from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from opencomputer.bot.testing import FakeOllama
from tests.scale.cluster import Cluster, RedisServer


@pytest.fixture
async def redis_server() -> AsyncIterator[RedisServer]:
    """A private Redis on a free port (the shared one must not be restarted by a test)."""
    server = RedisServer()
    try:
        await server.start()
    except RuntimeError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} (mandatory in CI)")
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture
async def cluster(
    postgres_url: str, redis_server: RedisServer, fake_ollama: FakeOllama, tmp_path: Path
) -> AsyncIterator[Cluster]:
    c = Cluster(
        {
            "OLLAMA_HOST": fake_ollama.url,
            "OC_DATABASE_URL": postgres_url,
            "OC_REDIS_URL": redis_server.url,
            "OC_DATA_DIR": tmp_path / "data",
            "OC_HTTP_PORT": 0,
            "OC_DM_POLICY": "open",
            "OC_MODEL_RETRY_SECONDS": 60,
            "OC_MAX_IN_FLIGHT": 16,
            "OC_RATE_LIMIT_USER": "0",
            "OC_RATE_LIMIT_CHAT": "0",
        }
    )
    try:
        yield c
    finally:
        await c.stop()
