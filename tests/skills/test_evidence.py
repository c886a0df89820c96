"""The decision rule's key properties on a short simulation of ratings (fixed seed, no database):
no promotion among equal candidates, a harmful candidate retired within 50 ratings, a helpful
one promoted within 300, and a live skill that turns bad demoted (``bench/skills_sim.py`` runs
the same rule through the real tables, longer).
"""

from __future__ import annotations

import random
import statistics

import pytest

from opencomputer.bot.feedback.stats import Posterior, prob_greater
from opencomputer.bot.skills.evidence import RULE, decide, p_greater, watch


def _run(rng: random.Random, p_offered: float, p_held: float, ratings: int) -> tuple[str, int]:
    """Ratings split half and half between the arms, a look after each: the move and when."""
    up, down = [0, 0], [0, 0]
    for k in range(1, ratings + 1):
        arm = rng.randrange(2)
        liked = rng.random() < (p_offered, p_held)[arm]
        up[arm] += liked
        down[arm] += not liked
        move = decide(Posterior(up[0], down[0]), Posterior(up[1], down[1])).move
        if move is not None:
            return move, k
    return "none", ratings


def test_equal_candidates_are_never_promoted() -> None:
    rng = random.Random(17)
    runs = [_run(rng, p, p, 200) for p in (0.3, 0.5, 0.7) for _ in range(50)]
    assert [r for r in runs if r[0] == "promote"] == []
    # a useless candidate may be retired (nothing is lost): the burden of proof is on it
    assert sum(m == "retire" for m, _ in runs) < len(runs)


def test_a_harmful_candidate_is_retired_within_50_ratings() -> None:
    rng = random.Random(18)
    runs = [_run(rng, p - 0.3, p, 100) for p in (0.5, 0.65, 0.8) for _ in range(30)]
    assert all(move == "retire" for move, _ in runs)
    within = [k for _, k in runs if k <= 50]
    # at 50 ratings a 0.3 difference is ~2.2 standard errors: no rule that spares useful
    # skills gets every run; the calibration (bench --calibrate) measured ~95% per run
    assert len(within) >= 0.9 * len(runs)
    assert statistics.median(k for _, k in runs) <= 30


def test_a_helpful_candidate_is_promoted_within_300_ratings() -> None:
    rng = random.Random(19)
    runs = [_run(rng, p + 0.3, p, 300) for p in (0.5, 0.6) for _ in range(10)]
    promoted = [k for move, k in runs if move == "promote"]
    assert len(promoted) >= 0.9 * len(runs)
    assert sum(move == "retire" for move, _ in runs) <= 1


def test_the_watch_demotes_a_skill_that_now_hurts_and_keeps_one_that_helps() -> None:
    bad = watch(Posterior(30, 60), Posterior(7, 3))  # 33% liked against 70% held back
    assert bad.move == "demote" and "since promotion P(hurts)" in bad.reason
    assert watch(Posterior(70, 20), Posterior(5, 5)).move is None  # still helps
    assert watch(Posterior(3, 60), Posterior(5, 0)).move is None  # too few held back yet
    assert RULE.watch_min == 10 and 0 < RULE.holdout < 0.5


def test_the_closed_form_agrees_with_the_integral() -> None:
    rng = random.Random(20)
    for _ in range(40):
        n, m = rng.randint(0, 150), rng.randint(0, 150)
        a = Posterior(up := rng.randint(0, n), n - up)
        b = Posterior(up := rng.randint(0, m), m - up)
        assert abs(p_greater(a, b) - prob_greater(a, b)) < 2e-3
    assert p_greater(Posterior(0, 0), Posterior(0, 0)) == pytest.approx(0.5)
    assert p_greater(Posterior(90, 10), Posterior(10, 90)) > 0.999999
