"""Reconnect pacing for Redis outages: capped exponential backoff with full jitter.

A loop that retried a down Redis every half second logged two lines a second per loop for
the whole outage; several gateways and workers retrying in step hammer Redis when it comes
back. :class:`Outage` spaces the retries out (0.5 s doubling up to 30 s, randomised), logs
one line when a streak of failures starts and one when it ends.
"""

from __future__ import annotations

import logging
import random
import time

__all__ = ["Outage"]


class Outage:
    """The failure streak of one reconnecting loop."""

    def __init__(
        self, what: str, logger: logging.Logger, *, base: float = 0.5, cap: float = 30.0
    ) -> None:
        self.what = what
        self.logger = logger
        self.base = base
        self.cap = cap
        self.failures = 0
        self._since = 0.0

    @property
    def down(self) -> bool:
        """Whether the last attempt failed."""
        return self.failures > 0

    def failed(self, exc: BaseException) -> float:
        """Record a failure; return how long to wait before the next attempt."""
        if self.failures == 0:
            self._since = time.monotonic()
            self.logger.warning("%s failed (%s); retrying with backoff", self.what, exc)
        self.failures += 1
        ceiling = min(self.cap, self.base * 2 ** min(self.failures - 1, 16))
        return random.uniform(self.base / 2, ceiling)

    def succeeded(self) -> None:
        """Record a success; log the end of a streak."""
        if self.failures:
            self.logger.warning(
                "%s recovered after %d failed attempts (%.1f s)",
                self.what,
                self.failures,
                time.monotonic() - self._since,
            )
        self.failures = 0
