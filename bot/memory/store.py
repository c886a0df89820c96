"""The memory repository: save, list, edit, delete and recall a person's facts.

Rows live in the main database (SQLite or PostgreSQL, through the shared engine); the vector
index answers "which memories are nearest in meaning". Recall is bounded twice: at most
``top_k`` memories, and no more than ``token_budget`` estimated tokens of them.

Every memory carries its :class:`Origin`: what a person said in a direct chat is recalled
only in direct chats, never into a group; what they said in a group may come back in that
same group (everyone there heard it) and in their direct chats.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from opencomputer.bot.memory.models import MemoryCitationRow, MemoryRow
from opencomputer.bot.memory.vectors import VectorIndex, normalise
from opencomputer.bot.ollama import ModelClient
from opencomputer.bot.origin import Origin

if TYPE_CHECKING:  # numpy loads with the first vector handled, not at start-up
    import numpy as np

__all__ = [
    "Memory",
    "MemoryStore",
    "Origin",
]  # Origin is opencomputer.bot.origin.Origin, named here as before

logger = logging.getLogger(__name__)

_MEM = MemoryRow.__table__  # type: ignore[attr-defined]
_CITE = MemoryCitationRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Memory:
    """A remembered fact (``score`` is the cosine similarity when it was recalled)."""

    id: int
    person: str
    text: str
    score: float = 0.0
    created_at: float = 0.0
    learned_in: str = ""  # "direct", or "group platform:chat_id" (listed in /export)


PRIVATE = Origin()


def _tokens(text: str) -> int:
    return int(len(text) / 3.5) + 6


class MemoryStore:
    """Per-person memories over one engine, one embedding model and one vector index."""

    def __init__(
        self,
        engine: AsyncEngine,
        llm: ModelClient,
        *,
        embed_model: str,
        index: VectorIndex | None = None,
        top_k: int = 5,
        token_budget: int = 400,
        min_score: float = 0.3,
    ) -> None:
        self.engine = engine
        self.llm = llm
        self.embed_model = embed_model
        self.index: VectorIndex | None = index
        self.top_k = top_k
        self.token_budget = token_budget
        self.min_score = min_score
        # person -> (count, when read): a person without memories costs no embedding call.
        self._counts: dict[str, tuple[int, float]] = {}
        self.count_ttl = 60.0  # other processes may add memories; re-read a zero this often

    async def vectors_of(self, person: str) -> list[tuple[int, bytes]]:
        """Every (id, float32 vector) of a person, for indexes that load from the table."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(_MEM.c.id, _MEM.c.vector).where(_MEM.c.person == person).order_by(_MEM.c.id)
            )
            return [(int(r.id), bytes(r.vector)) for r in rows]

    async def embed(self, text: str) -> np.ndarray:
        """The normalised embedding of ``text``."""
        vectors = await self.llm.embed(self.embed_model, [text])
        return normalise(vectors[0])

    async def count(self, person: str) -> int:
        """How many memories a person has (cached; a zero is re-read after ``count_ttl``)."""
        cached = self._counts.get(person)
        if cached is not None and (cached[0] > 0 or time.time() - cached[1] < self.count_ttl):
            return cached[0]
        async with self.engine.connect() as conn:
            value = int(
                await conn.scalar(
                    select(func.count()).select_from(_MEM).where(_MEM.c.person == person)
                )
                or 0
            )
        self._counts[person] = (value, time.time())
        return value

    def _changed(self, person: str) -> None:
        self._counts.pop(person, None)

    # --- owner operations --------------------------------------------------------------
    async def add(
        self, person: str, text: str, *, source: str = "", origin: Origin = PRIVATE
    ) -> Memory:
        """Remember a fact for ``person``, learned at ``origin`` (stored once per text).

        A fact already known keeps its first origin: a private fact said again in a group
        stays private, which errs on the safe side.
        """
        text = text.strip()
        async with self.engine.connect() as conn:
            same = await conn.scalar(
                select(_MEM.c.id).where(_MEM.c.person == person, _MEM.c.text == text)
            )
        if same is not None:
            return Memory(int(same), person, text)
        vector = await self.embed(text)
        now = time.time()
        async with self.engine.begin() as conn:
            result = await conn.execute(
                insert(_MEM).values(
                    person=person,
                    text=text,
                    vector=vector.tobytes(),
                    dim=int(vector.shape[0]),
                    source=source,
                    origin=origin.kind,
                    origin_chat=origin.chat,
                    created_at=now,
                    updated_at=now,
                )
            )
        memory_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        self._changed(person)
        await self._index().add(person, memory_id, vector)
        return Memory(memory_id, person, text, created_at=now)

    async def list_of(self, person: str, *, where: Origin = PRIVATE) -> list[Memory]:
        """The memories of a person that may be shown ``where`` (default: all), oldest first."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(_MEM.c.id, _MEM.c.text, _MEM.c.created_at, _MEM.c.origin, _MEM.c.origin_chat)
                .where(_MEM.c.person == person, *_visible(where))
                .order_by(_MEM.c.id)
            )
            return [
                Memory(
                    int(r.id),
                    person,
                    r.text,
                    created_at=r.created_at,
                    learned_in="direct" if r.origin == "direct" else f"group {r.origin_chat}",
                )
                for r in rows
            ]

    async def edit(self, person: str, memory_id: int, text: str) -> bool:
        """Replace a memory's text (re-embedded); False if it is not the person's."""
        vector = await self.embed(text.strip())
        async with self.engine.begin() as conn:
            changed = await conn.execute(
                update(_MEM)
                .where(_MEM.c.id == memory_id, _MEM.c.person == person)
                .values(
                    text=text.strip(),
                    vector=vector.tobytes(),
                    dim=int(vector.shape[0]),
                    updated_at=time.time(),
                )
            )
        if not changed.rowcount:
            return False
        await self._index().add(person, memory_id, vector)
        return True

    async def delete(self, person: str, memory_ids: Sequence[int]) -> int:
        """Delete some of a person's memories; returns how many went."""
        async with self.engine.begin() as conn:
            owned = [
                int(r[0])
                for r in await conn.execute(
                    select(_MEM.c.id).where(_MEM.c.person == person, _MEM.c.id.in_(memory_ids))
                )
            ]
            if owned:
                await conn.execute(delete(_CITE).where(_CITE.c.memory_id.in_(owned)))
                await conn.execute(delete(_MEM).where(_MEM.c.id.in_(owned)))
        if owned:
            await self._index().remove(person, owned)
        self._changed(person)
        return len(owned)

    async def forget(self, person: str) -> int:
        """Delete every memory of a person (``/forget``)."""
        ids = [m.id for m in await self.list_of(person)]
        return await self.delete(person, ids) if ids else 0

    # --- recall ------------------------------------------------------------------------
    async def recall(
        self, person: str, query: str, *, where: Origin, run_id: str = ""
    ) -> list[Memory]:
        """The person's memories nearest ``query`` that may be shown ``where``.

        Within top-k and the token budget. In a direct chat the vector index searches all of
        them; in a group only that group's memories are candidates, scored exactly (they are
        few), so a private memory can neither be shown nor crowd the group's ones out. When
        ``run_id`` is given the chosen memories are recorded as that run's citations.
        """
        if not query.strip() or await self.count(person) == 0:
            return []  # nothing to find: spare the embedding call
        if where.private:
            vector = await self.embed(query)
            hits = await self._index().search(person, vector, self.top_k)
        else:
            hits = await self._search_group(person, query, where)
        hits = [(i, s) for i, s in hits if s >= self.min_score]
        if not hits:
            return []
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(_MEM.c.id, _MEM.c.text, _MEM.c.created_at).where(
                    _MEM.c.id.in_([i for i, _ in hits]), _MEM.c.person == person, *_visible(where)
                )
            )
            texts = {int(r.id): (r.text, r.created_at) for r in rows}
        chosen: list[Memory] = []
        spent = 0
        for memory_id, score in hits:
            if memory_id not in texts:
                continue  # index lagging behind a delete
            text, created = texts[memory_id]
            cost = _tokens(text)
            if spent + cost > self.token_budget:
                break
            spent += cost
            chosen.append(Memory(memory_id, person, text, score, created))
        if run_id and chosen:
            await self.cite(run_id, chosen)
        return chosen

    async def _search_group(
        self, person: str, query: str, where: Origin
    ) -> list[tuple[int, float]]:
        """Exact cosine over the person's memories learned in this group chat."""
        import numpy as np

        async with self.engine.connect() as conn:
            rows = list(
                await conn.execute(
                    select(_MEM.c.id, _MEM.c.vector).where(
                        _MEM.c.person == person, *_visible(where)
                    )
                )
            )
        if not rows:
            return []  # nothing learned here: spare the embedding call
        vector = await self.embed(query)
        scored = []
        for row in rows:
            stored = np.frombuffer(bytes(row.vector), dtype=np.float32)
            if stored.shape == vector.shape:
                scored.append((int(row.id), float(stored @ vector)))
        scored.sort(key=lambda hit: -hit[1])
        return scored[: self.top_k]

    async def cite(self, run_id: str, memories: Sequence[Memory]) -> None:
        """Record that a run's prompt used these memories."""
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(_CITE),
                [
                    {
                        "run_id": run_id,
                        "memory_id": m.id,
                        "score": m.score,
                        "created_at": time.time(),
                    }
                    for m in memories
                ],
            )

    async def citations(self, run_id: str) -> list[dict[str, Any]]:
        """The memories a run used (id, score), for traces and tests."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(_CITE.c.memory_id, _CITE.c.score).where(_CITE.c.run_id == run_id)
            )
            return [{"id": int(r.memory_id), "score": float(r.score)} for r in rows]

    async def rebuild(self) -> int:
        """Re-index every memory (after the index file was lost or the backend changed)."""
        import numpy as np

        async with self.engine.connect() as conn:
            people = [r[0] for r in await conn.execute(select(_MEM.c.person).distinct())]
        count = 0
        for person in people:
            for memory_id, blob in await self.vectors_of(person):
                await self._index().add(person, memory_id, np.frombuffer(blob, dtype=np.float32))
                count += 1
        return count

    def _index(self) -> VectorIndex:
        if self.index is None:
            raise RuntimeError("MemoryStore has no vector index")
        return self.index


def _visible(where: Origin) -> list[Any]:
    """SQL conditions for the memories that may be shown ``where``."""
    if where.private:
        return []
    return [_MEM.c.origin == "group", _MEM.c.origin_chat == where.chat]
