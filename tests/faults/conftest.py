"""Fixtures of the crash suite: seeds, the fake platform and model, the figures summary.

The suite runs the real ``opencomputer`` processes against the Telegram Bot API fake and a
streaming fake Ollama, kills them with SIGKILL at random moments and measures, from what the
platform finally shows, lost / answered twice / out of order / partial answers (all must be 0)
and stray placeholders (counted only). Each run prints one figures line in a "crash figures"
section at the end of the pytest output.

By hand:
- ``OC_TEST_CRASH_SEEDS=1-20`` runs more seeds (``7``, ``1,2,3`` and ranges work);
- ``OC_TEST_CRASH_VERBOSE=1`` (with ``-s``) prints the kill timeline as it happens;
- a failing run leaves ``platform.json`` (every bot message with its edit history, every post
  with its time) and each incarnation's log next to it in the test's ``tmp_path``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable

import pytest

from opencomputer.bot.testing import FakeOllama
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
