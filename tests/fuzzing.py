"""Shared hypothesis settings for the connector fuzz tests (tests/<platform>/test_*_fuzz.py).

Each run translates 10,000 generated events per connector. They are drawn in batches of ten:
hypothesis' fixed cost per example was about a third of the run; in a failing batch the other
nine events shrink to the simplest one, so the event that breaks translation stands out.
"""

from __future__ import annotations

from typing import TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

T = TypeVar("T")

EVENTS = 10_000
BATCH = 10

FUZZ = settings(
    max_examples=EVENTS // BATCH,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)


def batches(strategy: st.SearchStrategy[T]) -> st.SearchStrategy[list[T]]:
    """``BATCH`` events per hypothesis example."""
    return st.lists(strategy, min_size=BATCH, max_size=BATCH)
