"""In-memory state of prompt selection, so that an ordinary turn does no database work.

Every turn asks which variant serves it. Reading the live variants and the conversation's
assignment from the database (and counting the turn there) cost about 3 ms a turn through
aiosqlite, more than the whole per-turn budget. Both change rarely, so they live here:

- :class:`LiveVariants` holds every live variant, indexed by scope. A change made by this
  process (anything through :class:`~bot.feedback.repo.FeedbackRepo`) invalidates it at once;
  changes made by another process (the ``opencomputer prompts`` CLI, other scale-out workers)
  are picked up by a reload at most ``refresh_seconds`` after the previous one.
- :class:`Tallies` keeps the posteriors a new draw compares, per pool; a vote written or
  deleted by this process invalidates them, other processes' votes count within
  ``refresh_seconds``.
- :class:`Assignments` remembers each conversation's assignment and turn count (a bounded
  LRU). The database row is written when an assignment is created or changes variant or epoch,
  not on every turn, so a restart starts the turn counts afresh.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from opencomputer.bot.feedback.stats import Posterior

__all__ = ["REFRESH_SECONDS", "Assignment", "Assignments", "LiveVariants", "Tallies"]

REFRESH_SECONDS = 5.0  # how stale another process's variant change may be here
REMEMBER = 50_000  # conversations whose assignment is kept in memory

Index = dict[tuple[str, str], list[Any]]


class LiveVariants:
    """Live variants by (scope, scope key), reloaded when invalidated or older than the limit."""

    def __init__(
        self,
        load: Callable[[], Awaitable[Iterable[Any]]],
        refresh_seconds: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self._index: Index | None = None
        self._loaded_at = 0.0
        self._generation = 0
        self._lock = asyncio.Lock()
        self.reloads = 0  # for tests and diagnostics

    def invalidate(self) -> None:
        """Forget the snapshot: the next lookup reads the database (after a local change)."""
        self._generation += 1
        self._index = None

    def _fresh(self) -> Index | None:
        index = self._index
        if index is not None and self.clock() - self._loaded_at < self.refresh_seconds:
            return index
        return None

    async def rows_for(self, platform: str, chat_key: str) -> list[Any]:
        """What :meth:`FeedbackRepo.live_for` returns, from memory (same rows, same order)."""
        index = self._fresh()
        if index is None:
            index = await self._reload()
        return [
            *index.get(("global", ""), ()),
            *index.get(("platform", platform), ()),
            *index.get(("chat", chat_key), ()),
        ]

    async def _reload(self) -> Index:
        async with self._lock:  # one reload at a time; the others use its result
            index = self._fresh()
            if index is not None:
                return index
            generation, started = self._generation, self.clock()
            index = {}
            for row in await self._load():  # oldest first, so each scope stays in id order
                index.setdefault((str(row.scope), str(row.scope_key)), []).append(row)
            self.reloads += 1
            if generation == self._generation:  # no local change while we were reading
                self._index, self._loaded_at = index, started
            return index


class Tallies:
    """Posteriors per pool (a set of variant ids), for the selector's draws only.

    The tuner's decisions read the database itself: they must see every vote.
    """

    def __init__(
        self,
        load: Callable[[list[int]], Awaitable[dict[int, Posterior]]],
        refresh_seconds: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self._pools: dict[frozenset[int], tuple[float, dict[int, Posterior]]] = {}
        self._generation = 0

    def invalidate(self) -> None:
        """Forget every tally (a vote changed here)."""
        self._generation += 1
        self._pools.clear()

    async def get(self, variant_ids: Iterable[int]) -> dict[int, Posterior]:
        """Blamed up/down counts per variant, as :meth:`VoteQueries.posteriors` returns them."""
        ids = list(variant_ids)
        key = frozenset(ids)
        now = self.clock()
        cached = self._pools.get(key)
        if cached is not None and now - cached[0] < self.refresh_seconds:
            return cached[1]
        generation = self._generation
        posts = await self._load(ids)
        if generation == self._generation:  # no vote changed here while we were reading
            self._pools[key] = (now, posts)
        return posts


@dataclass(slots=True)
class Assignment:
    """A conversation's variant, the epoch it was drawn in, and turns served since."""

    variant_id: int
    epoch: int
    turns: int
    assigned_at: float

    @classmethod
    def of(cls, row: Any) -> Assignment:
        """From a ``prompt_assignments`` row."""
        return cls(int(row.variant_id), int(row.epoch), int(row.turns), float(row.assigned_at))


class Assignments:
    """Least-recently-used map of conversation key to :class:`Assignment`."""

    def __init__(self, limit: int = REMEMBER) -> None:
        self.limit = limit
        self._items: OrderedDict[str, Assignment] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, conversation: str) -> Assignment | None:
        """The remembered assignment (marks it recently used)."""
        found = self._items.get(conversation)
        if found is not None:
            self._items.move_to_end(conversation)
        return found

    def put(self, conversation: str, assignment: Assignment) -> None:
        """Remember an assignment, forgetting the least recently used beyond the limit."""
        self._items[conversation] = assignment
        self._items.move_to_end(conversation)
        while len(self._items) > self.limit:
            self._items.popitem(last=False)

    def drop(self, conversations: Iterable[str]) -> None:
        """Forget these conversations' assignments (``/forget``: nothing of theirs stays)."""
        for key in conversations:
            self._items.pop(key, None)
