"""Beta-posterior arithmetic for the bandit and the promotion rule (pure Python, no SciPy).

Each variant's thumbs-up rate has a Beta(1 + up, 1 + down) posterior. The tuner needs
P(rate_a > rate_b + margin); it is integrated numerically on a grid that covers where both
posteriors have mass, which stays accurate from a handful of ratings to many thousands.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

__all__ = ["Posterior", "prob_greater"]

_GRID = 400


@dataclass(frozen=True, slots=True)
class Posterior:
    """Beta posterior of a thumbs-up rate from ``up`` and ``down`` counts (uniform prior)."""

    up: int = 0
    down: int = 0

    @property
    def alpha(self) -> float:
        """First Beta parameter."""
        return 1.0 + self.up

    @property
    def beta(self) -> float:
        """Second Beta parameter."""
        return 1.0 + self.down

    @property
    def n(self) -> int:
        """Number of ratings behind it."""
        return self.up + self.down

    @property
    def mean(self) -> float:
        """Posterior mean rate."""
        return self.alpha / (self.alpha + self.beta)

    @property
    def sd(self) -> float:
        """Posterior standard deviation."""
        a, b = self.alpha, self.beta
        return math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))

    def sample(self, rng: random.Random) -> float:
        """One Thompson draw."""
        return rng.betavariate(self.alpha, self.beta)

    def log_pdf(self, x: float) -> float:
        """Log density at ``x`` in (0, 1)."""
        a, b = self.alpha, self.beta
        norm = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
        return (a - 1) * math.log(x) + (b - 1) * math.log1p(-x) - norm


def prob_greater(a: Posterior, b: Posterior, margin: float = 0.0) -> float:
    """P(rate_a > rate_b + margin), by midpoint integration of pdf_a times cdf_b."""
    lo = max(0.0, min(a.mean - 12 * a.sd, b.mean - 12 * b.sd + margin, b.mean - 12 * b.sd))
    hi = min(1.0, max(a.mean + 12 * a.sd, b.mean + 12 * b.sd + margin))
    if hi <= lo:
        return 0.5
    step = (hi - lo) / _GRID
    xs = [lo + (i + 0.5) * step for i in range(_GRID)]
    pdf_a = [math.exp(a.log_pdf(x)) * step for x in xs]
    pdf_b = [math.exp(b.log_pdf(x)) * step for x in xs]
    mass_a, mass_b = sum(pdf_a) or 1.0, sum(pdf_b) or 1.0
    # cdf_b at cell edges: cdf[i] = P(b < lo + i*step)
    cdf = [0.0]
    for p in pdf_b:
        cdf.append(cdf[-1] + p / mass_b)
    total = 0.0
    for x, p in zip(xs, pdf_a, strict=True):
        pos = (x - margin - lo) / step
        if pos <= 0:
            continue
        if pos >= _GRID:
            total += p
            continue
        i = int(pos)
        frac = pos - i
        total += p * (cdf[i] + (cdf[i + 1] - cdf[i]) * frac)
    return min(1.0, max(0.0, total / mass_a))
