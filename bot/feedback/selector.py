"""Which prompt variant a turn uses: scope resolution, stickiness, Thompson sampling.

A conversation keeps its variant for ``tuning_sticky_turns`` turns (or ``tuning_sticky_seconds``),
so its tone does not change mid-conversation; ``/reset`` (a new epoch) draws again. New
candidates (fewer than ``tuning_min_ratings`` ratings) enter with an exploration share each
(half the draws for all of them against an established incumbent; see :meth:`Selector.draw`);
the incumbent and established candidates compete by Thompson sampling over their Beta
posteriors, so traffic moves to the better variant as evidence accumulates.

The common turn (the conversation keeps its variant) does no database work: the live variants,
the assignments and the posteriors are held in memory (``bot/feedback/cache.py``). A new draw
reads the posteriors only when a vote changed since (or they are 5 s old), and writes the
assignment only if it is new or changed.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from opencomputer.bot.config import Settings
from opencomputer.bot.events import Message
from opencomputer.bot.feedback.cache import REMEMBER, Assignment, Assignments
from opencomputer.bot.feedback.models import Scope, Status
from opencomputer.bot.feedback.repo import FeedbackRepo
from opencomputer.bot.feedback.stats import Posterior

__all__ = ["Pool", "Selector", "resolve_pool"]

logger = logging.getLogger(__name__)

_BROADER = {Scope.CHAT: (Scope.PLATFORM, Scope.GLOBAL), Scope.PLATFORM: (Scope.GLOBAL,)}


@dataclass(slots=True)
class Pool:
    """The variants that compete in one scope."""

    scope: str
    scope_key: str
    incumbent: Any | None
    candidates: list[Any] = field(default_factory=list)
    pinned: Any | None = None

    @property
    def members(self) -> list[Any]:
        """Every variant that may be served (pinned alone when there is one)."""
        if self.pinned is not None:
            return [self.pinned]
        head = [self.incumbent] if self.incumbent is not None else []
        return head + self.candidates


def resolve_pool(
    rows: list[Any], platform: str, chat_key: str, scope: str | None = None
) -> Pool | None:
    """The pool of the most specific scope that has live variants (or of ``scope``).

    A chat or platform scope without an active variant of its own competes against the
    incumbent of the next broader scope.
    """

    def of(level: str) -> list[Any]:
        key = {Scope.CHAT: chat_key, Scope.PLATFORM: platform, Scope.GLOBAL: ""}[Scope(level)]
        return [r for r in rows if r.scope == level and r.scope_key == key]

    levels = [scope] if scope else [Scope.CHAT, Scope.PLATFORM, Scope.GLOBAL]
    for level in levels:
        mine = of(level)
        if not mine:
            continue
        pinned = next((r for r in mine if r.status == Status.PINNED), None)
        incumbent = next((r for r in mine if r.status == Status.ACTIVE), None)
        for broader in _BROADER.get(Scope(level), ()):
            if incumbent is not None:
                break
            incumbent = next((r for r in of(broader) if r.status == Status.ACTIVE), None)
        candidates = [r for r in mine if r.status == Status.CANDIDATE]
        key = mine[0].scope_key
        return Pool(str(level), key, incumbent, candidates, pinned)
    return None


class Selector:
    """``runtime.choose_prompt``: returns (template, variant id) for a message."""

    def __init__(
        self,
        settings: Settings,
        repo: FeedbackRepo,
        epoch: Callable[[str], Awaitable[int]],
        rng: random.Random | None = None,
        *,
        remember: int = REMEMBER,
    ) -> None:
        self.settings = settings
        self.repo = repo
        self.epoch = epoch
        self.rng = rng or random.Random()
        self.assignments = Assignments(remember)

    async def choose(self, msg: Message) -> tuple[str | None, int | None]:
        """Pick (or keep) the conversation's variant."""
        address = msg.address
        chat_key = f"{address.platform}:{address.chat_id}"
        rows = await self.repo.live.rows_for(address.platform, chat_key)
        pool = resolve_pool(rows, address.platform, chat_key)
        if pool is None or not pool.members:
            return self.settings.system_prompt, None
        if pool.pinned is not None or not self.settings.tuning:
            chosen = pool.pinned or pool.incumbent or pool.members[0]
            return chosen.template, int(chosen.id)
        key = address.key
        epoch = await self.epoch(key)
        current = await self.assignment(key)
        by_id = {int(r.id): r for r in pool.members}
        if current is not None and self._still_valid(current, by_id, epoch):
            current.turns += 1  # counted in memory only; see bot/feedback/cache.py
            chosen = by_id[current.variant_id]
            return chosen.template, int(chosen.id)
        chosen = await self.draw(pool)
        fresh = Assignment(int(chosen.id), epoch, 1, time.time())
        if current is None or (current.variant_id, current.epoch) != (fresh.variant_id, epoch):
            await self.repo.assign(key, fresh.variant_id, epoch, fresh.assigned_at)
        self.assignments.put(key, fresh)
        return chosen.template, int(chosen.id)

    async def assignment(self, conversation: str) -> Assignment | None:
        """The conversation's assignment: from memory, else (once per process) the database."""
        found = self.assignments.get(conversation)
        if found is None:
            row = await self.repo.assignment(conversation)
            if row is not None:
                found = Assignment.of(row)
                self.assignments.put(conversation, found)
        return found

    def _still_valid(self, current: Assignment, by_id: dict[int, Any], epoch: int) -> bool:
        return (
            current.variant_id in by_id
            and current.epoch == epoch
            and current.turns < self.settings.tuning_sticky_turns
            and time.time() - current.assigned_at < self.settings.tuning_sticky_seconds
        )

    async def draw(self, pool: Pool) -> Any:
        """Exploration share for new candidates, Thompson sampling for the rest.

        Against an established incumbent (at least twice ``tuning_min_ratings`` ratings) the
        new candidates together get the whole 50%: only their evidence is missing, and a bad
        one is rolled back after about as many ratings of its own whatever its share, so the
        larger share brings the rollback sooner without showing users more of it. Against an
        unproven incumbent each keeps ``tuning_exploration``: the incumbent needs ratings too
        (a promotion compares both sides), and Thompson sampling stops serving it once a
        candidate leads.
        """
        members = pool.members
        if len(members) == 1:
            return members[0]
        posts = await self.repo.tallies.get(int(m.id) for m in members)
        floor = self.settings.tuning_min_ratings
        new = [c for c in pool.candidates if posts[int(c.id)].n < floor]
        settled = [m for m in members if m not in new]
        share = min(0.5, self.settings.tuning_exploration * len(new))
        incumbent = pool.incumbent
        if incumbent is not None and posts[int(incumbent.id)].n >= 2 * floor:
            share = 0.5
        if new and (not settled or self.rng.random() < share):
            return self.rng.choice(new)
        return max(settled, key=lambda m: _draw(posts[int(m.id)], self.rng))


def _draw(posterior: Posterior, rng: random.Random) -> float:
    return posterior.sample(rng)
