from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from opencomputer.bot.config import Settings
from opencomputer.bot.feedback.service import FeedbackService
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.harness import Harness


@pytest.fixture
def fb_settings(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    """Settings for feedback tests: open DMs, one admin, fast deterministic tuning knobs."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "OC_DM_POLICY": "open",
            "OC_ADMINS": "test:root",
            "OC_PLUGIN_SANDBOX": "off",
        }
        values.update(overrides)
        return make_settings(**values)

    return make


@pytest.fixture
async def harness(
    fb_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> AsyncIterator[Harness]:
    h = Harness(fb_settings())
    h.app.extras["feedback_rng"] = random.Random(7)
    async with h:
        yield h


@pytest.fixture
def service(harness: Harness) -> FeedbackService:
    svc = harness.app.extras["feedback"]
    assert isinstance(svc, FeedbackService)
    return svc
