"""Vector indexes for memory recall.

* :class:`SqliteVecIndex` (default with SQLite): sqlite-vec in its own file, searched in two
  passes: a k-nearest scan over binary-quantised vectors (1 bit a dimension, 32x smaller than
  float32) picks ``k * oversample`` candidates, which numpy rescores exactly by cosine. This is
  the approximate path; its recall is measured by ``bench/recall.py``.
* :class:`ExactIndex`: brute-force cosine with numpy over every vector of the person (cached per
  person). Exact; used when sqlite-vec cannot be loaded, on PostgreSQL, and as the benchmark
  baseline.

The memory rows stay the source of truth: an index can always be rebuilt from them.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # numpy is imported where vectors are handled: a chat start needs none
    import numpy as np

__all__ = ["ExactIndex", "SqliteVecIndex", "VectorIndex", "load_sqlite_vec", "open_index"]

logger = logging.getLogger(__name__)

Loader = Callable[[str], Awaitable[list[tuple[int, bytes]]]]
"""``person -> [(memory id, float32 bytes)]`` from the memory table."""


class VectorIndex(Protocol):
    """What the memory store needs from a vector index."""

    name: str

    async def add(self, person: str, memory_id: int, vector: np.ndarray) -> None:
        """Index (or re-index) one memory."""

    async def remove(self, person: str, memory_ids: Sequence[int]) -> None:
        """Forget some memories."""

    async def search(self, person: str, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The ``k`` most similar memories as ``(id, cosine similarity)``, best first."""

    async def close(self) -> None:
        """Release files and threads."""


def normalise(vector: Sequence[float] | np.ndarray) -> np.ndarray:
    """Unit-length float32 copy (cosine similarity becomes a dot product)."""
    import numpy as np

    arr = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(arr))
    return arr / norm if norm > 0 else arr


class ExactIndex:
    """Brute force over the person's vectors; the matrix is cached until it changes."""

    name = "exact"

    def __init__(self, loader: Loader) -> None:
        self._loader = loader
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def _matrix(self, person: str) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np

        cached = self._cache.get(person)
        if cached is not None:
            return cached
        async with self._locks.setdefault(person, asyncio.Lock()):
            cached = self._cache.get(person)
            if cached is None:
                rows = await self._loader(person)
                ids = np.array([r[0] for r in rows], dtype=np.int64)
                mats = [np.frombuffer(r[1], dtype=np.float32) for r in rows if r[1]]
                dims = {m.shape[0] for m in mats}
                if len(dims) > 1:  # embed model changed: keep the newest dimension only
                    dim = mats[-1].shape[0]
                    keep = [i for i, m in enumerate(mats) if m.shape[0] == dim]
                    ids, mats = ids[keep], [mats[i] for i in keep]
                matrix = np.vstack(mats) if mats else np.zeros((0, 0), dtype=np.float32)
                cached = self._cache[person] = (ids, matrix)
        return cached

    def load(self, person: str, ids: np.ndarray, matrix: np.ndarray) -> None:
        """Prime the cache with normalised vectors (benchmarks, rebuilds)."""
        import numpy as np

        self._cache[person] = (ids.astype(np.int64), matrix.astype(np.float32))

    async def add(self, person: str, memory_id: int, vector: np.ndarray) -> None:
        """Drop the person's cached matrix (reloaded on the next search)."""
        self._cache.pop(person, None)

    async def remove(self, person: str, memory_ids: Sequence[int]) -> None:
        """Drop the person's cached matrix (reloaded on the next search)."""
        self._cache.pop(person, None)

    async def search(self, person: str, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Cosine similarity against every vector of the person."""
        import numpy as np

        ids, matrix = await self._matrix(person)
        if not len(ids) or matrix.shape[1] != query.shape[0]:
            return []
        scores = matrix @ query
        k = min(k, len(ids))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [(int(ids[i]), float(scores[i])) for i in top]

    async def close(self) -> None:
        """Forget every cached matrix."""
        self._cache.clear()


def _pad8(vector: np.ndarray) -> np.ndarray:
    """Zero-pad to a multiple of 8 dimensions.

    Binary quantisation needs whole bytes; zeros change no cosine.
    """
    import numpy as np

    extra = (-vector.shape[0]) % 8
    return np.concatenate([vector, np.zeros(extra, dtype=np.float32)]) if extra else vector


def load_sqlite_vec(path: str) -> Any | None:
    """A DB-API connection with sqlite-vec loaded, or None when this Python cannot load it.

    The stdlib ``sqlite3`` here is built without extension loading; ``pysqlite3`` (the
    ``pysqlite3-binary`` wheel) can, so it is tried first.
    """
    # The extension file the package ships (what ``sqlite_vec.load`` loads): found without
    # importing the package, whose ``__init__`` imports numpy (~0.2 s of every start).
    spec = importlib.util.find_spec("sqlite_vec")
    if spec is None or not spec.submodule_search_locations:
        return None
    extension = os.path.join(spec.submodule_search_locations[0], "vec0")
    modules: list[Any] = []
    try:
        import pysqlite3.dbapi2 as pysqlite3

        modules.append(pysqlite3)
    except ImportError:
        pass
    import sqlite3

    modules.append(sqlite3)
    for module in modules:
        conn = module.connect(path, check_same_thread=False, isolation_level=None)
        try:
            conn.enable_load_extension(True)
            conn.load_extension(extension)
            conn.enable_load_extension(False)
        except (AttributeError, module.OperationalError) as exc:
            logger.debug("sqlite-vec not loadable with %s: %s", module.__name__, exc)
            conn.close()
            continue
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn
    return None


class SqliteVecIndex:
    """Per dimension, a sqlite-vec table of 1-bit vectors and a table of float32 vectors.

    The ``vec0`` table is partitioned by person; its k-NN pass picks the candidates.
    The float vectors sit in an ordinary rowid table because reading candidates back out of
    ``vec0`` costs more than the whole k-NN pass; numpy rescores the few candidates.
    """

    name = "sqlite-vec"

    def __init__(self, conn: Any, *, oversample: int = 8) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._dims: set[int] = set()
        self.oversample = oversample

    def _run(self, fn: Callable[[], Any]) -> Awaitable[Any]:
        def locked() -> Any:
            with self._lock:
                return fn()

        return asyncio.to_thread(locked)

    def _tables(self, dim: int) -> tuple[str, str]:
        bits, floats = f"mem_bits_{dim}", f"mem_f32_{dim}"
        if dim not in self._dims:
            self._conn.execute(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS {bits} USING vec0("
                f"person text partition key, coarse bit[{dim}])"
            )
            self._conn.execute(
                f"CREATE TABLE IF NOT EXISTS {floats} (id INTEGER PRIMARY KEY, vector BLOB)"
            )
            self._dims.add(dim)
        return bits, floats

    def count(self) -> int:
        """Vectors stored over every dimension (to decide whether to rebuild)."""
        return sum(
            self._conn.execute(f"SELECT count(*) FROM mem_f32_{dim}").fetchone()[0]
            for dim in self._known_dims()
        )

    def add_many(self, person: str, items: Sequence[tuple[int, np.ndarray]]) -> None:
        """Insert many vectors in one transaction (rebuilds and benchmarks)."""
        with self._lock:
            self._conn.execute("BEGIN")
            for memory_id, vector in items:
                self._insert(person, memory_id, vector)
            self._conn.execute("COMMIT")

    def _insert(self, person: str, memory_id: int, vector: np.ndarray) -> None:
        import numpy as np

        vector = _pad8(vector)
        bits, floats = self._tables(int(vector.shape[0]))
        blob = vector.astype(np.float32).tobytes()
        self._conn.execute(f"DELETE FROM {bits} WHERE rowid = ?", (memory_id,))
        self._conn.execute(
            f"INSERT INTO {bits}(rowid, person, coarse) VALUES (?, ?, vec_quantize_binary(?))",
            (memory_id, person, blob),
        )
        self._conn.execute(
            f"INSERT OR REPLACE INTO {floats}(id, vector) VALUES (?, ?)", (memory_id, blob)
        )

    async def add(self, person: str, memory_id: int, vector: np.ndarray) -> None:
        """Index one memory (replacing an older vector of it)."""
        await self._run(lambda: self._insert(person, memory_id, vector))

    async def remove(self, person: str, memory_ids: Sequence[int]) -> None:
        """Delete memories from every dimension's tables."""

        def delete() -> None:
            for dim in self._known_dims():
                bits, floats = self._tables(dim)
                for memory_id in memory_ids:
                    self._conn.execute(f"DELETE FROM {bits} WHERE rowid = ?", (memory_id,))
                    self._conn.execute(f"DELETE FROM {floats} WHERE id = ?", (memory_id,))

        await self._run(delete)

    def _known_dims(self) -> list[int]:
        rows = self._conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'mem_f32_%'"
        )
        return sorted({int(n[0].rsplit("_", 1)[1]) for n in rows} | self._dims)

    def search_sync(self, person: str, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Coarse binary k-NN in sqlite-vec, then exact cosine rescoring with numpy."""
        import numpy as np

        query = _pad8(query.astype(np.float32))
        bits, floats = self._tables(int(query.shape[0]))
        ids = [
            int(r[0])
            for r in self._conn.execute(
                f"SELECT rowid FROM {bits} WHERE coarse MATCH vec_quantize_binary(?) "
                "AND k = ? AND person = ?",
                (query.tobytes(), k * self.oversample, person),
            )
        ]
        if not ids:
            return []
        rows = self._conn.execute(
            f"SELECT id, vector FROM {floats} WHERE id IN ({','.join('?' * len(ids))})", ids
        ).fetchall()
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
        scores = matrix.reshape(len(rows), -1) @ query
        order = np.argsort(-scores)[:k]
        return [(int(rows[i][0]), float(scores[i])) for i in order]

    async def search(self, person: str, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Coarse-then-exact search in a worker thread."""
        return list(await self._run(lambda: self.search_sync(person, query, k)))

    async def close(self) -> None:
        """Close the file."""
        await self._run(self._conn.close)


def open_index(backend: str, database_url: str, loader: Loader) -> VectorIndex:
    """The index for ``backend`` (auto, sqlite-vec or exact) next to the database."""
    if backend in ("auto", "sqlite-vec") and database_url.startswith("sqlite"):
        from opencomputer.bot.storage.engine import database_key, secure_sqlite_files, sqlite_path

        path = sqlite_path(database_url)
        target = ":memory:"
        if path is not None:
            file = path.with_name(path.stem + "-vectors.db")
            if database_key(path) is None:
                secure_sqlite_files(file)  # 0600, like the store it is derived from
                target = str(file)
            else:
                # sqlite-vec cannot be loaded into SQLCipher: an encrypted store keeps its
                # index in memory (rebuilt from the memory rows at start), never in plain text.
                for stale in (file, *(file.with_name(file.name + s) for s in ("-wal", "-shm"))):
                    stale.unlink(missing_ok=True)
        conn = load_sqlite_vec(target)
        if conn is not None:
            return SqliteVecIndex(conn)
        logger.warning("sqlite-vec cannot be loaded here; memory recall uses exact search")
    elif backend == "sqlite-vec":
        logger.warning("sqlite-vec needs SQLite storage; memory recall uses exact search")
    return ExactIndex(loader)
