from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from opencomputer.bot.config import Settings
from opencomputer.bot.memory.vectors import ExactIndex, SqliteVecIndex, load_sqlite_vec, normalise
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.harness import Harness
from tests.memory.helpers import open_settings, system_prompt, topic_embedding


def _clustered(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """Unit vectors in topic clusters, like sentence embeddings (see bench/recall.py)."""
    centres = rng.normal(size=(max(1, n // 25), dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    points = centres[rng.integers(0, len(centres), n)] + rng.normal(size=(n, dim)) * 0.75 / dim**0.5
    return np.vstack([normalise(p) for p in points])


async def test_sqlite_vec_search_matches_exact_search_per_person() -> None:
    conn = load_sqlite_vec(":memory:")
    assert conn is not None, "pysqlite3 + sqlite-vec must load here"
    rng = np.random.default_rng(7)
    dim = 60  # not a multiple of 8: padded for binary quantisation
    mine, theirs = _clustered(rng, 2000, dim), _clustered(rng, 300, dim)
    approx = SqliteVecIndex(conn)
    approx.add_many("p-1", [(i + 1, v) for i, v in enumerate(mine)])
    approx.add_many("p-2", [(10_000 + i, v) for i, v in enumerate(theirs)])
    exact = ExactIndex(loader=None)  # type: ignore[arg-type]
    exact.load("p-1", np.arange(1, 2001), mine)
    found = total = 0
    for q in range(50):
        query = normalise(mine[q * 37] + rng.normal(size=dim) * 0.5 / dim**0.5)
        truth = await exact.search("p-1", query, 10)
        got = await approx.search("p-1", query, 10)
        assert all(i <= 2000 for i, _ in got)  # never another person's memory
        assert got[0][0] == truth[0][0] and got[0][1] == pytest.approx(truth[0][1], abs=1e-5)
        found += len({i for i, _ in got} & {i for i, _ in truth})
        total += 10
    assert found / total >= 0.9
    await approx.remove("p-1", [truth[0][0]])
    assert truth[0][0] not in {i for i, _ in await approx.search("p-1", query, 10)}
    await approx.close()


async def test_vector_file_lost_is_rebuilt_and_exact_backend_works(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama, tmp_path: Path
) -> None:
    fake_ollama.embedder = topic_embedding
    settings = make_settings(**open_settings())
    async with Harness(settings) as h:
        assert h.app.extras["memory"].index.name == "sqlite-vec"
        await h.command("memory", "add I play jazz every Friday")
    [vectors] = list((tmp_path / "data").glob("*-vectors.db"))
    vectors.unlink()
    async with Harness(settings) as h:
        fake_ollama.reply("Enjoy the gig.")
        await h.say("any music plans?")
        assert "I play jazz every Friday" in system_prompt(fake_ollama.chats[-1])
    async with Harness(make_settings(**open_settings(OC_MEMORY_BACKEND="exact"))) as h:
        assert h.app.extras["memory"].index.name == "exact"
        fake_ollama.reply("Enjoy.")
        await h.say("what music do I like?")
        assert "I play jazz every Friday" in system_prompt(fake_ollama.chats[-1])


@pytest.mark.postgres
async def test_memory_on_postgresql(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama, postgres_url: str
) -> None:
    fake_ollama.embedder = topic_embedding
    settings = make_settings(**open_settings(OC_DATABASE_URL=postgres_url))
    async with Harness(settings) as h:
        store = h.app.extras["memory"]
        assert store.index.name == "exact"  # pgvector is not installed on this server
        fake_ollama.call_tool("remember", fact="Their cat is called Zorro")
        fake_ollama.reply("Noted.")
        await h.say("my cat is Zorro")
        fake_ollama.reply("Zorro!")
        await h.say("what is my pet called?", chat="other")  # another DM: a DM fact
        assert "Their cat is called Zorro" in system_prompt(fake_ollama.chats[-1])
        assert await store.forget("test:alice") == 1
