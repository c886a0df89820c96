"""Missing capabilities: turns that failed for want of a tool, grouped by topic for admins.

A turn counts when its answer says it cannot (a small phrase classifier: "I can't", "I don't
have access", "no tool"...), when the model called a tool that does not exist, or when the
person gave a 👎 to an answer that only hedged ("unfortunately", "I'm not able"...). Each is
stored with the person, a short example (the request, clipped) and its keywords
(:func:`bot.skills.evidence.keywords`: plain normalisation, no model, so two wordings of one
need meet only when they share a content word).

Topics are found greedily: the keyword the most people share is a topic, its rows leave the
pool, and so on. Examples are shown only to admins and only in a direct chat (what someone said
in a DM never reaches a group).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from opencomputer.bot.skills.evidence import keywords
from opencomputer.bot.skills.learned_models import CapabilityGapRow

__all__ = ["CapabilityGaps", "Topic", "classify", "render_report"]

_G = CapabilityGapRow.__table__  # type: ignore[attr-defined]
EXAMPLE_CHARS = 100
WEEK = 7 * 86400.0

_CANNOT = re.compile(
    r"\b(i\s+(?:can(?:no|')?t|cannot|am\s+unable\s+to|'m\s+unable\s+to|do\s*n[o']?t\s+have\s+"
    r"(?:a\s+|any\s+)?(?:tool|access|the\s+ability|a\s+way))|no\s+(?:tool|plugin)\s+(?:can|"
    r"that|to|for)|(?:is|are)\s+not\s+(?:something\s+)?i\s+can\s+do|beyond\s+my\s+"
    r"(?:abilities|capabilities))",
    re.I,
)
_HEDGE = re.compile(
    r"\b(unfortunately|i'?m\s+not\s+able|not\s+able\s+to|i'?m\s+sorry|sorry,|not\s+possible|"
    r"i\s+don'?t\s+know\s+how)",
    re.I,
)


def classify(answer: str) -> Literal["cannot", "hedge"] | None:
    """Whether an answer says it cannot do what was asked ("hedge": it may, a 👎 decides)."""
    head = answer[:600].replace("’", "'")
    if _CANNOT.search(head):
        return "cannot"
    if _HEDGE.search(head):
        return "hedge"
    return None


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 1] + "…"


@dataclass(slots=True)
class Topic:
    """One group of missing capabilities."""

    label: str
    people: int
    turns: int
    examples: list[str] = field(default_factory=list)


class CapabilityGaps:
    """Stored missing capabilities and the report grouping them."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def add(
        self,
        *,
        person: str,
        account: str,
        conversation: str,
        direct: bool,
        kind: str,
        text: str,
        reply_id: int | None,
    ) -> bool:
        """Record one; a request without a content word is not worth a topic (False)."""
        words = keywords(text)[:12]
        if not words:
            return False
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(_G).values(
                    at=time.time(),
                    person=person,
                    account=account,
                    conversation=conversation,
                    direct=direct,
                    kind=kind,
                    keywords=" ".join(words)[:300],
                    example=_clip(text),
                    reply_id=reply_id,
                )
            )
        return True

    async def has(self, reply_id: int) -> bool:
        """Whether this reply is already recorded."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(_G.c.id).where(_G.c.reply_id == reply_id))).first()
        return row is not None

    async def topics(self, since: float, *, limit: int = 10) -> list[Topic]:
        """The topics of the rows newer than ``since``, most people first."""
        async with self.engine.connect() as conn:
            rows = list((await conn.execute(select(_G).where(_G.c.at >= since))).all())
        pool = [(r, r.keywords.split()) for r in rows]
        found: list[Topic] = []
        while pool and len(found) < limit:
            people: Counter[str] = Counter()
            for word in dict.fromkeys(w for _r, words in pool for w in words):
                people[word] = len({r.person for r, words in pool if word in words})
            # most people, then the longer (more specific) word, then the first seen
            top = max(people, key=lambda word: (people[word], len(word)))
            group = [(r, words) for r, words in pool if top in words]
            pool = [(r, words) for r, words in pool if top not in words]
            # a second word most of the group shares makes the label readable ("calendar invite")
            pair: Counter[str] = Counter(w for _r, words in group for w in words if w != top)
            label = top
            if pair:
                second, count = pair.most_common(1)[0]
                if count * 2 >= len(group):
                    order = next(r.keywords.split() for r, w in group if second in w)
                    label = " ".join(sorted((top, second), key=order.index))
            newest = sorted(group, key=lambda item: -float(item[0].at))
            examples = list(dict.fromkeys(r.example for r, _w in newest))[:3]
            found.append(Topic(label, len({r.person for r, _w in group}), len(group), examples))
        return found

    async def forget(self, accounts: list[str]) -> int:
        """Delete the rows of these accounts."""
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(_G).where(_G.c.account.in_(accounts)))
        return int(result.rowcount or 0)

    async def export(self, accounts: list[str]) -> list[dict[str, Any]]:
        """The rows of these accounts."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(_G).where(_G.c.account.in_(accounts)))
            return [
                {"at": r.at, "kind": r.kind, "example": r.example, "conversation": r.conversation}
                for r in rows
            ]


def render_report(topics: list[Topic], *, examples: bool, days: float = 7) -> str:
    """The report's text; ``examples`` only for an admin in a direct chat."""
    span = f"{days:g} days"
    if not topics:
        return f"Missing capabilities (last {span}): none recorded."
    lines = [f"Missing capabilities (last {span}), grouped by keyword:"]
    for topic in topics:
        who = f"{topic.people} {'person' if topic.people == 1 else 'people'}"
        times = "" if topic.turns == topic.people else f" ({topic.turns} times)"
        lines.append(f'- {who} asked about "{topic.label}"{times}; no tool could do it')
        if examples:
            lines += [f"    e.g. “{text}”" for text in topic.examples]
    if not examples:
        lines.append("(Examples are shown to admins in a direct chat only.)")
    return "\n".join(lines)
