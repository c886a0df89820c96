"""When a learned skill has earned its place, when it has lost it, and when a live one regresses.

The turns in which a candidate was offered are one arm, the matching turns in which it was held
back are the other; each arm's 👍 rate has a Beta posterior (``bot/feedback/stats.py``). The rule
is asymmetric on purpose, and checked after every rating (many looks), so its thresholds were
calibrated by simulating those looks (``bench/skills_sim.py --calibrate``), not taken from the
prompt tuner:

* **promote** when both arms have ``promote_min`` ratings and
  P(offered rate > held-back rate + ``promote_margin``) >= ``promote_confidence``. In
  standard errors the bar is about z + margin/SE: the minimum sample skips the early looks
  where a lucky streak is likeliest, the very high confidence (z ~3.4) pays for the many
  looks after it, and the small margin raises the bar as ratings pile up, so that a skill no
  better than nothing is not promoted by a long run of looks either. A bigger margin would
  buy the same safety with a lower z, but it raises the bar most where a helpful skill needs
  it lowest (at 100-150 ratings a side). Simulated: equal candidates promoted in ~0.1-0.3%
  of runs over 1,000 ratings, a +0.3 skill within 300 ratings in ~95% (0.8 against 0.5);
* **retire** when both arms have ``retire_min`` ratings and
  P(held-back rate > offered rate) >= ``retire_confidence``. A candidate is a machine's
  unproven draft: the burden of proof is on it, a harmful one costs people every turn it
  stays, and retiring a useless one costs nothing, so this threshold is much lower.
  Simulated: a -0.3 candidate retired within 50 ratings in ~96% of runs (at 50 ratings a
  0.3 difference is only ~2.2 standard errors: a rule that got every run would retire most
  useful skills too), ~0.3-2% of +0.3 candidates retired by an unlucky start;
* **demote** a live (promoted, unpinned) skill when its ratings since promotion, offered
  against the ``holdout`` share of matching turns that are still held back, say
  P(held-back rate > offered rate) >= ``watch_confidence`` with ``watch_min`` ratings on each
  side. Each arm counts only its newest ``watch_window`` ratings, so a skill that was good for
  months and then turned bad is judged on how it does now; the held-back window spans a longer
  time (it fills ten times slower), which assumes the rate without the skill is steady. A live
  skill has proven itself once, so the bar is higher than a candidate's.

Keywords: matching a request to a skill, and grouping missing capabilities by topic, use one
crude normalisation (lowercase words, stop words dropped, a plural or ``-ing``/``-ed`` ending
cut). It is deliberately simple; its limits are documented in ``docs/skills.md``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

from opencomputer.bot.feedback.stats import Posterior, prob_greater

__all__ = ["RULE", "Decision", "Rule", "decide", "keywords", "p_greater", "watch"]


@dataclass(frozen=True, slots=True)
class Rule:
    """The thresholds of the decision rule (see the module docstring for why each is so)."""

    promote_min: int = 50
    promote_margin: float = 0.03
    promote_confidence: float = 0.9997
    retire_min: int = 10
    retire_confidence: float = 0.85
    holdout: float = 0.1  # share of a live skill's matching turns still held back
    watch_min: int = 10
    watch_window: int = 100  # the newest ratings of each arm the watch looks at
    watch_confidence: float = 0.95


RULE = Rule()
_NORMAL = NormalDist()


@dataclass(frozen=True, slots=True)
class Decision:
    """What the evidence says, and the one line explaining it."""

    move: Literal["promote", "retire", "demote"] | None
    reason: str


_FAR = 0.1  # where the integral is 0.8 or more, the approximation was at most 0.05 below it


def _lbeta(x: float, y: float) -> float:
    return math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y)


def p_greater(a: Posterior, b: Posterior) -> float:
    """P(rate_a > rate_b) in closed form (a sum of Beta functions, exact for whole counts),
    ~25 times cheaper than integrating; it runs over the smaller of the two like-counts.
    """
    if a.alpha > b.alpha:
        return 1.0 - p_greater(b, a)
    base = _lbeta(b.alpha, b.beta)
    total = 0.0
    for i in range(int(a.alpha)):
        total += math.exp(
            _lbeta(b.alpha + i, b.beta + a.beta)
            - math.log(a.beta + i)
            - _lbeta(1 + i, a.beta)
            - base
        )
    return min(1.0, max(0.0, total))


def _reaches(a: Posterior, b: Posterior, margin: float, threshold: float) -> float | None:
    """P(rate_a > rate_b + margin) when it reaches ``threshold``, else None.

    A normal approximation first: when it is far below the threshold (most looks), the exact
    integral (~0.3 ms) is skipped. The two differ by a few hundredths at the sample sizes the
    rule looks at, so a look it skips could not have passed.
    """
    spread = math.sqrt(a.sd**2 + b.sd**2)
    if spread > 0 and _NORMAL.cdf((a.mean - b.mean - margin) / spread) < threshold - _FAR:
        return None
    p = p_greater(a, b)  # exact, cheap, and never below the chance to win by a margin
    if margin and p >= threshold:
        p = prob_greater(a, b, margin)
    return p if p >= threshold else None


def decide(offered: Posterior, held_back: Posterior, rule: Rule = RULE) -> Decision:
    """A candidate's fate from its two arms: promote, retire, or wait."""
    n = min(offered.n, held_back.n)
    counts = f"after {offered.n} offered vs {held_back.n} held-back ratings"
    if n >= rule.promote_min:
        better = _reaches(offered, held_back, rule.promote_margin, rule.promote_confidence)
        if better is not None:
            why = f"P(helps by {rule.promote_margin:.2f}) = {better:.4f} {counts}"
            return Decision("promote", why)
    if n >= rule.retire_min:
        worse = _reaches(held_back, offered, 0.0, rule.retire_confidence)
        if worse is not None:
            return Decision("retire", f"P(hurts) = {worse:.3f} {counts}")
    return Decision(None, "")


def watch(offered: Posterior, held_back: Posterior, rule: Rule = RULE) -> Decision:
    """A live skill's fate from its arms since promotion: demote, or keep."""
    if min(offered.n, held_back.n) >= rule.watch_min:
        worse = _reaches(held_back, offered, 0.0, rule.watch_confidence)
        if worse is not None:
            why = (
                f"since promotion P(hurts) = {worse:.3f} after {offered.n} offered vs "
                f"{held_back.n} held-back ratings"
            )
            return Decision("demote", why)
    return Decision(None, "")


_WORD = re.compile(r"[a-z0-9]+")
STOP = frozenset(
    """a about after all also am an and any are as ask asked at be been but by can cannot could
    did do does doing dont for from get give got had has have he hello help her hey hi him his
    how i if im in into is it its just know let like me mine my need no not now of off ok on
    one or our out please pls read show so some tell than thank thanks that the their them then
    there these they this to too up us use want was we what when where which who why will with
    would you your yours""".split()
)


def _stem(word: str) -> str:
    """Cut a plural or a verb ending: "invites" and "invite" meet, "reading" and "read"."""
    if len(word) <= 4 or word.endswith("ss"):
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "sses")):
        return word[:-2]
    for suffix in ("ing", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def keywords(text: str) -> list[str]:
    """The content words of ``text``, normalised, in first-seen order."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        if len(word) < 3 or word in STOP or word.isdigit():
            continue
        seen.setdefault(_stem(word), None)
    return list(seen)
