"""Capped exponential backoff with jitter for (re)connecting.

Jitter keeps many restarted servers (or connectors) from hammering Slack in lock-step after an
outage; the cap keeps a connector with a revoked token checking back every few minutes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass(slots=True)
class Backoff:
    """Delays ``initial, 2*initial, 4*initial ...`` up to ``cap``, each scaled into [50%, 100%]."""

    initial: float = 1.0
    cap: float = 300.0
    attempts: int = field(default=0, init=False)

    def next(self) -> float:
        """Return the pause before the next attempt, counting this failure."""
        base = min(self.cap, self.initial * 2.0 ** min(self.attempts, 30))
        self.attempts += 1
        return base * random.uniform(0.5, 1.0)

    def reset(self) -> None:
        """Record a success: the next failure starts over at ``initial``."""
        self.attempts = 0
