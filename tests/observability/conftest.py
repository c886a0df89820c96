"""Fixtures: an app serving its HTTP endpoints on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from opencomputer.bot.config import Settings
from tests.observability.scrape import HttpHarness


@pytest.fixture
async def http_harness(make_settings: Callable[..., Settings]) -> AsyncIterator[HttpHarness]:
    async with HttpHarness(make_settings(OC_HTTP_HOST="127.0.0.1")) as h:
        yield h
