"""Memory tables (on the shared ``SQLModel.metadata``, created by ``SqlStore.start``)."""

from __future__ import annotations

import time

from sqlmodel import Field, SQLModel

__all__ = ["MemoryCitationRow", "MemoryRow"]


def _now() -> float:
    return time.time()


class MemoryRow(SQLModel, table=True):
    """One remembered fact of one person.

    The vector is kept here too (float32 bytes): this row is the source of truth, and any
    vector index can be rebuilt from it.
    """

    __tablename__ = "memories"

    id: int | None = Field(default=None, primary_key=True)
    person: str = Field(index=True, max_length=255)
    text: str
    vector: bytes = Field(default=b"")
    dim: int = 0
    source: str = Field(default="", max_length=512, description="Conversation it came from.")
    # Where it was learned. A row from before these columns reads as learned in a direct chat:
    # of unknown origin, so private (opencomputer.bot.memory.store.Origin says who may see it).
    origin: str = Field(default="direct", max_length=16, description="'direct' or 'group'.")
    origin_chat: str = Field(default="", max_length=512, description="platform:chat_id")
    created_at: float = Field(default_factory=_now)
    updated_at: float = Field(default_factory=_now)


class MemoryCitationRow(SQLModel, table=True):
    """Which memories a run's prompt included (the trace of recall)."""

    __tablename__ = "memory_citations"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True, max_length=64)
    memory_id: int = Field(index=True)
    score: float = 0.0
    created_at: float = Field(default_factory=_now)
