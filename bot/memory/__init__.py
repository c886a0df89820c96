"""Long-term memory: facts per person, recalled by meaning before the model answers."""

from opencomputer.bot.memory.store import Memory, MemoryStore
from opencomputer.bot.memory.vectors import ExactIndex, SqliteVecIndex, VectorIndex, open_index

__all__ = ["ExactIndex", "Memory", "MemoryStore", "SqliteVecIndex", "VectorIndex", "open_index"]
