"""Recall latency at 10k and 100k memories: the approximate path against exact brute force.

Both run in the same process on the same vectors: the exact baseline is numpy brute force
(``ExactIndex``), the approximate path is sqlite-vec's binary-quantised k-NN with exact
rescoring (``SqliteVecIndex``, the default with SQLite; x8 candidates is what it uses).
recall@10 is measured against the exact top 10.

Vectors are synthetic but shaped like sentence embeddings: unit vectors in topic clusters
(neighbours at cosine ~0.8, unrelated pairs ~0), queries are paraphrases of a stored memory.
``--spread`` makes the data harder (each query's true neighbours closer to the rest of its topic):
the default runs the usual data and hard data (spread 2.5, where the bit pass at x8 misses half of
the exact top 10 on 10k memories).

Besides the index alone, the whole recall step a turn pays is timed: ``MemoryStore.recall`` over
the same memories in a SQLite database (the count check, the hop to the index's thread, the
search, the fetch of the chosen rows) with the embedding call excluded (the query's vector is
handed back at once, as if the embedding server took no time).

    .venv/bin/python bench/recall.py [--sizes 10000 100000] [--dim 768] [--queries 200]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one query, one core: fair to both paths

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import conditions
from opencomputer.bot.memory.models import MemoryRow
from opencomputer.bot.memory.store import PRIVATE, MemoryStore
from opencomputer.bot.memory.vectors import ExactIndex, SqliteVecIndex, load_sqlite_vec
from opencomputer.bot.storage.engine import create_engine


def embeddings(rng: np.random.Generator, n: int, dim: int, spread: float) -> np.ndarray:
    """Unit vectors around n/25 topic centres."""
    centres = rng.normal(size=(max(1, n // 25), dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    noise = rng.normal(size=(n, dim)).astype(np.float32) * (spread / np.sqrt(dim))
    points = centres[rng.integers(0, len(centres), n)] + noise
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def paraphrases(
    rng: np.random.Generator, data: np.ndarray, count: int, change: float
) -> list[np.ndarray]:
    dim = data.shape[1]
    picks = rng.integers(0, len(data), count)
    out = []
    for i in picks:
        q = data[i] + rng.normal(size=dim).astype(np.float32) * (change / np.sqrt(dim))
        out.append((q / np.linalg.norm(q)).astype(np.float32))
    return out


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p99 * 1000


def timed(fn: Any, queries: list[np.ndarray]) -> tuple[list[list[int]], list[float]]:
    results, latencies = [], []
    for q in queries:
        start = time.perf_counter()
        hits = fn(q)
        latencies.append(time.perf_counter() - start)
        results.append([i for i, _ in hits])
    return results, latencies


def recall_at_10(found: list[list[int]], truth: list[list[int]]) -> float:
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth, strict=True)]))


async def run(size: int, dim: int, count: int, oversample: list[int], spread: float) -> None:
    rng = np.random.default_rng(size)
    data = embeddings(rng, size, dim, spread)
    queries = paraphrases(rng, data, count, spread * 2 / 3)
    ids = np.arange(1, size + 1)

    exact = ExactIndex(loader=None)  # type: ignore[arg-type]
    exact.load("p", ids, data)
    await exact.search("p", queries[0], 10)  # warm
    truth, exact_lat = timed(lambda q: _exact(exact, q), queries)

    conn = load_sqlite_vec(":memory:")
    if conn is None:
        raise SystemExit("sqlite-vec cannot be loaded (install pysqlite3-binary)")
    index = SqliteVecIndex(conn)
    start = time.perf_counter()
    index.add_many("p", list(zip(ids.tolist(), data, strict=True)))
    index.add_many("other", [(size + 1 + i, v) for i, v in enumerate(data[: size // 10])])
    build = time.perf_counter() - start
    index.search_sync("p", queries[0], 10)
    e50, e99 = percentiles(exact_lat)
    print(
        f"\n{size:,} memories, {dim} dimensions, {count} queries, spread {spread} "
        f"(index built in {build:.1f} s)"
    )
    print(f"  exact numpy brute force      p50 {e50:7.2f} ms  p99 {e99:7.2f} ms  recall@10 1.000")
    for factor in oversample:
        index.oversample = factor
        approx, approx_lat = timed(lambda q: index.search_sync("p", q, 10), queries)
        a50, a99 = percentiles(approx_lat)
        print(
            f"  sqlite-vec bit+rescore x{factor:<3d}  p50 {a50:7.2f} ms  p99 {a99:7.2f} ms  "
            f"recall@10 {recall_at_10(approx, truth):.3f}   (exact p50 / this p50: {e50 / a50:.2f})"
        )
    index.oversample = 8
    await whole_step(data, queries, truth, index)
    await index.close()


class _GivenVector:
    """The model client for recall with the embedding call excluded: the query's vector at once."""

    host = "none"

    def __init__(self) -> None:
        self.next: np.ndarray | None = None

    async def embed(self, model: str, inputs: Sequence[str]) -> list[list[float]]:
        assert self.next is not None
        return [self.next.tolist()]


async def whole_step(
    data: np.ndarray, queries: list[np.ndarray], truth: list[list[int]], index: SqliteVecIndex
) -> None:
    """``MemoryStore.recall`` end to end (index as built above, rows in SQLite), top 10."""
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite+aiosqlite:///{Path(tmp) / 'm.sqlite'}")
        async with engine.begin() as conn:
            await conn.run_sync(MemoryRow.__table__.create)  # type: ignore[attr-defined]
            rows = [
                {
                    "id": i + 1,
                    "person": "p",
                    "text": f"memory {i}",
                    "vector": v.tobytes(),
                    "dim": len(v),
                    "created_at": 0.0,
                    "updated_at": 0.0,
                }
                for i, v in enumerate(data)
            ]
            for at in range(0, len(rows), 5000):
                await conn.execute(MemoryRow.__table__.insert(), rows[at : at + 5000])  # type: ignore[attr-defined]
        llm = _GivenVector()
        store = MemoryStore(
            engine,
            llm,
            embed_model="e",
            index=index,
            top_k=10,
            token_budget=10_000,
            min_score=-1.0,
        )  # type: ignore[arg-type]
        found, latencies = [], []
        for q in [queries[0], *queries]:
            llm.next = q
            start = time.perf_counter()
            hits = await store.recall("p", "query", where=PRIVATE)
            latencies.append(time.perf_counter() - start)
            found.append([m.id for m in hits])
        found, latencies = found[1:], latencies[1:]  # the first one warms the caches
        await engine.dispose()
    w50, w99 = percentiles(latencies)
    print(
        f"  whole recall step (x8)       p50 {w50:7.2f} ms  p99 {w99:7.2f} ms  "
        f"recall@10 {recall_at_10(found, truth):.3f}   (count, thread hop, search, row fetch)"
    )


def _exact(index: ExactIndex, q: np.ndarray) -> list[tuple[int, float]]:
    """ExactIndex.search without the event loop (the same arithmetic)."""
    ids, matrix = index._cache["p"]
    scores = matrix @ q
    top = np.argpartition(-scores, 9)[:10]
    top = top[np.argsort(-scores[top])]
    return [(int(ids[i]), float(scores[i])) for i in top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument(
        "--spread",
        type=float,
        nargs="+",
        default=[0.75, 2.5],
        help="noise around topic centres (larger: neighbours harder to tell apart; 2.5 is hard)",
    )
    parser.add_argument("--oversample", type=int, nargs="+", default=[8, 32])
    args = parser.parse_args()
    print(conditions("start"), flush=True)
    for size in args.sizes:
        for spread in args.spread:
            asyncio.run(run(size, args.dim, args.queries, args.oversample, spread))
    print(conditions("end"), flush=True)


if __name__ == "__main__":
    main()
