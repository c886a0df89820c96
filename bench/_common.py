"""Shared bits of the benchmarks: percentiles and a quiet environment."""

from __future__ import annotations

import logging
import statistics


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of ``values`` in milliseconds if they are seconds."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k] * 1000


def summary(name: str, values: list[float]) -> str:
    return (
        f"{name:<28} n={len(values):<5} p50={pct(values, 50):7.2f} ms  "
        f"p99={pct(values, 99):7.2f} ms  mean={statistics.fmean(values) * 1000:7.2f} ms"
    )


def quiet() -> None:
    logging.basicConfig(level=logging.ERROR)
