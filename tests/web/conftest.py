"""The real-browser fixtures (tests/browser_kit.py) for this suite."""

from tests.browser_kit import browser, shots

__all__ = ["browser", "shots"]
