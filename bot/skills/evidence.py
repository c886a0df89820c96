"""When a learned skill has earned its place, and when it has lost it.

The rule is the prompt tuner's (``bot/feedback/tuner.py``), with the same settings and the same
posterior arithmetic (``bot/feedback/stats.py``): the turns in which the candidate was offered
are one arm, the matching turns in which it was held back are the other.

* promote when both arms have ``OC_TUNING_MIN_RATINGS`` ratings and
  P(offered rate > held-back rate + ``OC_TUNING_MARGIN``) >= ``OC_TUNING_CONFIDENCE``;
* retire when both have ``OC_TUNING_ROLLBACK_MIN_RATINGS`` and
  P(held-back rate > offered rate + ``OC_TUNING_ROLLBACK_MARGIN``) >= the same confidence.

Keywords: matching a request to a skill, and grouping missing capabilities by topic, use one
crude normalisation (lowercase words, stop words dropped, a plural or ``-ing``/``-ed`` ending
cut). It is deliberately simple; its limits are documented in ``docs/skills.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from opencomputer.bot.feedback.stats import Posterior, prob_greater

__all__ = ["Decision", "decide", "keywords"]


@dataclass(frozen=True, slots=True)
class Decision:
    """What the evidence says, and the one line explaining it."""

    move: Literal["promote", "retire"] | None
    reason: str


def decide(offered: Posterior, held_back: Posterior, settings: Any) -> Decision:
    """Apply the tuner's promotion and rollback rule to a skill's two arms."""
    s = settings
    n = min(offered.n, held_back.n)
    if n >= s.tuning_min_ratings:
        better = prob_greater(offered, held_back, s.tuning_margin)
        if better >= s.tuning_confidence:
            why = f"P(helps by {s.tuning_margin:.2f}) = {better:.3f} after {offered.n} vs "
            return Decision("promote", why + f"{held_back.n} ratings")
    if n >= s.tuning_rollback_min_ratings:
        worse = prob_greater(held_back, offered, s.tuning_rollback_margin)
        if worse >= s.tuning_confidence:
            why = f"P(hurts) = {worse:.3f} after {offered.n} vs {held_back.n} ratings"
            return Decision("retire", why)
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
