"""What the agent graph itself costs per turn, with an instant fake model.

No HTTP, no runtime: ``build_graph`` with a model object that answers at once, run through
``GraphAgent.run_turn`` for N turns spread over M threads. Three savers (none, in-memory,
SQLite via ``graphs.agent.checkpointer``) and two service sets: none, and every feature on
(memory with no memories for the person, compaction not due, planner on, simple request) —
the common "simple turn". Also counts the saver calls per turn (``aput``/``aput_writes``).

    .venv/bin/python bench/graph_turn.py [TURNS] [THREADS]
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiosqlite
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from bench._common import quiet
from opencomputer.bot.events import User
from opencomputer.bot.ollama import ChatResult, ModelCheck
from opencomputer.graphs.agent.checkpointer import open_checkpointer
from opencomputer.graphs.agent.compaction import CompactionConfig, WindowProbe
from opencomputer.graphs.agent.graph import build_graph
from opencomputer.graphs.agent.planning import PlannerConfig
from opencomputer.graphs.agent.runner import GraphAgent
from opencomputer.graphs.agent.state import TurnContext


class InstantModel:
    """Answers every chat at once; enough of ``ModelClient`` for the graph."""

    host = "fake"

    async def chat(self, model: str, messages: Sequence[dict[str, Any]], **kw: Any) -> ChatResult:
        return ChatResult(content="Hello! How can I help?", done_reason="stop")

    async def embed(self, model: str, inputs: Sequence[str]) -> list[list[float]]:
        return [[1.0, 0.0, 0.0] for _ in inputs]

    async def show(self, model: str) -> dict[str, Any]:
        return {}

    async def check_model(self, model: str, *, needs_tools: bool = True) -> ModelCheck:
        return ModelCheck(True, "ok", 8192)


class NoMemories:
    """A memory service whose people have nothing stored (count cached in memory)."""

    def __init__(self) -> None:
        self.recalls = 0

    def known_empty(self, person: str) -> bool:
        return True

    async def count(self, person: str) -> int:
        return 0

    async def recall(self, person: str, query: str, **kw: Any) -> list[Any]:
        self.recalls += 1
        return []


def services(llm: InstantModel) -> dict[str, Any]:
    async def person_of(user: User) -> str:
        return f"p:{user.id}"

    return {
        "memory": NoMemories(),
        "person_of": person_of,
        "compaction": CompactionConfig(),
        "window": WindowProbe(llm, explicit=False),
        "planner": PlannerConfig(),
    }


@contextlib.asynccontextmanager
async def stock_saver(path: Path) -> AsyncIterator[Any]:
    """LangGraph's own ``AsyncSqliteSaver`` with the pragmas ``open_checkpointer`` sets."""
    async with aiosqlite.connect(path) as conn:
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=NORMAL")
        saver = AsyncSqliteSaver(conn)
        await saver.setup()
        yield saver


def count_calls(saver: Any) -> Counter[str]:
    """Wrap the saver's methods to count them (``ms:<name>`` sums their time in ms)."""
    calls: Counter[str] = Counter()
    for name in ("aput", "aput_writes", "aget_tuple"):
        original = getattr(saver, name)

        def wrap(original: Any = original, name: str = name) -> Any:
            async def counted(*a: Any, **kw: Any) -> Any:
                calls[name] += 1
                t0 = time.perf_counter()
                try:
                    return await original(*a, **kw)
                finally:
                    calls[f"ms:{name}"] += (time.perf_counter() - t0) * 1000

            return counted

        setattr(saver, name, wrap())
    return calls


async def run(saver: Any, full: bool, turns: int, threads: int) -> tuple[list[float], Counter[str]]:
    llm = InstantModel()
    calls = count_calls(saver) if saver is not None else Counter()
    agent = GraphAgent(build_graph(llm=llm, checkpointer=saver))
    ctx = TurnContext(
        model="m",
        system_prompt="You are helpful.",
        num_ctx=8192,
        user=User(platform="bench", id="u1", name="u"),
        services=services(llm) if full else {},
    )
    times = []
    for i in range(turns):
        thread = f"t{i % threads}" if saver is not None else f"t{i}"
        t0 = time.perf_counter()
        outcome = await agent.run_turn(thread, f"hello number {i}", ctx)
        times.append(time.perf_counter() - t0)
        assert outcome.text == "Hello! How can I help?"
    if full:
        assert ctx.services["memory"].recalls in (0, turns)
    return times, calls


def line(name: str, times: list[float], calls: Counter[str], turns: int) -> str:
    t = sorted(times)
    per = ", ".join(f"{k}={v / turns:.2f}" for k, v in sorted(calls.items()))
    return (
        f"{name:<42} mean={statistics.fmean(t) * 1000:6.3f} ms  p50={t[len(t) // 2] * 1000:6.3f}"
        f"  p99={t[int(len(t) * 0.99)] * 1000:6.3f}  per turn: {per or '-'}"
    )


async def main(turns: int, threads: int) -> None:
    quiet()
    warnings.filterwarnings("ignore", message="`durability` has no effect")
    with tempfile.TemporaryDirectory() as tmp:
        for full in (False, True):
            label = "simple turn, all features" if full else "no features"
            await run(InMemorySaver(), full, 50, 10)  # warm-up
            times, calls = await run(None, full, turns, threads)
            print(line(f"{label} / no saver", times, calls, turns))
            times, calls = await run(InMemorySaver(), full, turns, threads)
            print(line(f"{label} / InMemorySaver", times, calls, turns))
            async with stock_saver(Path(tmp) / f"stock-{int(full)}.db") as saver:
                times, calls = await run(saver, full, turns, threads)
            print(line(f"{label} / SQLite, stock saver", times, calls, turns))
            url = f"sqlite+aiosqlite:///{tmp}/bench-{int(full)}.db"
            async with open_checkpointer(url) as saver:
                times, calls = await run(saver, full, turns, threads)
            print(line(f"{label} / SQLite, open_checkpointer", times, calls, turns))


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    asyncio.run(main(*(args + [300, 50][len(args) :])))
