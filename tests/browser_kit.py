"""What the real-browser tests share: Debian's headless Chromium driven by Playwright for Python
(``executable_path``: no browser download), and where their screenshots go.

Screenshots are saved on every run for review, under ``test-artifacts/screenshots/<suite>/``
at the repository's root (ignored by git, emptied once by each run), or under
``$OC_TEST_SCREENSHOTS`` when set.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["CHROMIUM", "browser", "shots"]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "screenshots"


_EMPTIED: set[Path] = set()
"""Suite folders this run already emptied: a suite's second browser test keeps the first's."""


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Path:
    """The folder for this suite's screenshots (``web``, ``control``), emptied once a run."""
    suite = request.node.module.__name__.split(".")[-2]
    root = Path(os.environ.get("OC_TEST_SCREENSHOTS") or ARTIFACTS)
    folder = root / suite
    if folder not in _EMPTIED:
        shutil.rmtree(folder, ignore_errors=True)
        _EMPTIED.add(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """A headless Chromium; its absence fails in CI and skips elsewhere (a message says why)."""
    if CHROMIUM is None:
        message = "chromium is not installed: scripts/system-deps.sh installs it"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (mandatory in CI)", pytrace=False)
        pytest.skip(message)
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()
