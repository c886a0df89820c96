"""Fixtures of the crash suite: seeds, the fake platform and model, the figures summary.

``OC_TEST_CRASH_SEEDS`` runs more seeds by hand: ``7``, ``1,2,3`` or ``1-20``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable

import pytest

from bot.testing import FakeOllama
from tests.faults.crash_model import respond
from tests.faults.crash_platform import CrashBotApi

DEFAULT_SEEDS = "1"
_FIGURES: list[str] = []


def crash_seeds(raw: str) -> list[int]:
    """Seeds from ``7``, ``1,2,3`` or ``1-20`` (ranges inclusive)."""
    seeds: list[int] = []
    for part in raw.replace(" ", "").split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        seeds.extend(range(int(first), int(last or first) + 1))
    return seeds


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One test per seed for tests that take ``crash_seed``."""
    if "crash_seed" in metafunc.fixturenames:
        seeds = crash_seeds(os.environ.get("OC_TEST_CRASH_SEEDS") or DEFAULT_SEEDS)
        metafunc.parametrize("crash_seed", seeds, ids=[f"seed{s}" for s in seeds])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print every run's figures line at the end, pass or fail (for the closing note)."""
    if _FIGURES:
        terminalreporter.section("crash figures")
        for line in _FIGURES:
            terminalreporter.write_line(line)


@pytest.fixture
def crash_figures() -> Callable[[str], None]:
    """Keep one figures line for the summary."""
    return _FIGURES.append


@pytest.fixture
async def crash_platform() -> AsyncIterator[CrashBotApi]:
    """The Bot API fake, with edit history and post hooks."""
    async with CrashBotApi() as fake:
        yield fake


@pytest.fixture
async def crash_model() -> AsyncIterator[FakeOllama]:
    """A fake Ollama streaming each message's answer over 0.2-0.5 s."""
    async with FakeOllama() as fake:
        fake.responder = respond
        yield fake
