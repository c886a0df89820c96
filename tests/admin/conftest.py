"""Fixtures of the admin suite: a harness with access control on, as configured in production."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from opencomputer.bot.config import Settings
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.harness import Harness

ADMIN = "boss"


@pytest.fixture
def admin_settings(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    """Settings with the production defaults for access (pairing) and one configured admin."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "OC_DM_POLICY": "pairing",
            "OC_ADMINS": f"test:{ADMIN}",
        }
        values.update(overrides)
        return make_settings(**values)

    return make


@pytest.fixture
async def harness(
    admin_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> AsyncIterator[Harness]:
    """The real app on the recording connector, pairing policy on."""
    async with Harness(admin_settings()) as h:
        yield h
