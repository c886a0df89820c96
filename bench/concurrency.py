"""Turn latency with 16 chats in flight against 1, in one run (single process, SQLite).

Each chat sends its next message when the previous one was answered; the fake Ollama, in its
own process and keeping no request bodies, answers after ``delay`` seconds (a stand-in for the
model). Every conversation has its first turn before the measured ones (all 16 at once, as 16
new people would write), so warm is compared with warm; those cold first turns are reported on
their own, against the warm turns at the same concurrency. Targets: p99 at 16 warm chats <= 2x
p99 at 1, and a cold first turn <= 2x a warm one.

    .venv/bin/python bench/concurrency.py [turns_per_chat] [model_delay_seconds] [--ab loop]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    FakeModelProcess,
    GcPauses,
    add_run_options,
    pct,
    start,
    summary,
    tune_gc_if_asked,
)
from opencomputer.bot.app import App
from opencomputer.bot.config import load_settings
from opencomputer.bot.events import Address, Chat, Message, User
from opencomputer.bot.testing.harness import RecordingConnector


async def chat_loop(app: App, name: str, turns: int, out: list[float]) -> None:
    for i in range(turns):
        msg = Message(
            platform="test",
            event_id=f"{name}-{i}-{uuid.uuid4().hex[:6]}",
            chat=Chat("test", name),
            user=User("test", name),
            text=f"hi {i}",
        )
        t0 = time.perf_counter()
        await app.runtime.emit(msg)
        await app.runtime.wait_idle(Address("test", name))
        out.append(time.perf_counter() - t0)


async def run(url: str, chats: int, turns: int, data: Path) -> tuple[list[float], list[float]]:
    """Cold first turns of ``chats`` new conversations at once, then their warm turns."""
    settings = load_settings(
        OLLAMA_HOST=url,
        OC_DATA_DIR=data,
        OC_DM_POLICY="open",
        OC_RATE_LIMIT_USER="0",
        OC_RATE_LIMIT_CHAT="0",
        OC_LOG_LEVEL="ERROR",
        OC_MAX_IN_FLIGHT=str(chats),
    )
    app = App(settings)

    def factory(_s: Any, rt: Any) -> list[Any]:
        return [RecordingConnector(rt.emit)]

    await app.start(factory, http=False)
    try:
        await chat_loop(app, "warm", 20, [])  # the process: connections, caches, code paths
        tune_gc_if_asked()
        cold: list[float] = []
        await asyncio.gather(*(chat_loop(app, f"c{c}", 1, cold) for c in range(chats)))
        warm: list[float] = []
        await asyncio.gather(*(chat_loop(app, f"c{c}", turns, warm) for c in range(chats)))
        return cold, warm
    finally:
        await app.stop()


async def main(turns: int, delay: float) -> dict[str, float]:
    async with FakeModelProcess(delay=delay) as fake:
        with tempfile.TemporaryDirectory() as tmp:
            with GcPauses() as pauses:
                cold1, one = await run(fake.url, 1, turns * 4, Path(tmp) / "one")
                cold16, many = await run(fake.url, 16, turns, Path(tmp) / "many")
    print(f"model delay {delay * 1000:.0f} ms")
    print(summary("1 chat in flight (warm)", one))
    print(summary("16 chats in flight (warm)", many))
    print(summary("cold first turn, 1 chat", cold1))
    print(summary("cold first turns, 16 at once", cold16))
    figures = {
        "p99_1_ms": pct(one, 99),
        "p99_16_ms": pct(many, 99),
        "p99_ratio_16_1": pct(many, 99) / pct(one, 99),
        "p50_ratio_16_1": pct(many, 50) / pct(one, 50),
        "cold16_p50_ms": pct(cold16, 50),
        "cold_warm_ratio_16": pct(cold16, 50) / pct(many, 50),
    }
    print(
        f"p99 ratio 16/1: {figures['p99_ratio_16_1']:.2f}x  "
        f"(p50 ratio {figures['p50_ratio_16_1']:.2f}x)"
    )
    print(
        f"cold first turn / warm turn at 16 chats: p50 {figures['cold_warm_ratio_16']:.2f}x, "
        f"p99 {pct(cold16, 99) / pct(many, 99):.2f}x"
    )
    print(pauses.report(len(one) + len(many) + len(cold1) + len(cold16)))
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("turns", type=int, nargs="?", default=50)
    parser.add_argument("delay", type=float, nargs="?", default=0.05)
    add_run_options(parser)
    args = parser.parse_args()
    start(args, lambda: main(args.turns, args.delay))
