"""Turn latency with 16 chats in flight against 1, in one run (single process, SQLite).

Each chat sends its next message when the previous one was answered; the fake Ollama answers
after ``delay`` seconds (a stand-in for the model). Prints p50/p99 at 1 and at 16 chats in flight
and the p99 ratio (target: at most 2x).

    .venv/bin/python bench/concurrency.py [turns_per_chat] [model_delay_seconds]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import pct, quiet, summary
from opencomputer.bot.app import App
from opencomputer.bot.config import load_settings
from opencomputer.bot.events import Address, Chat, Message, User
from opencomputer.bot.testing import FakeOllama, Reply
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


async def run(url: str, chats: int, turns: int, data: Path) -> list[float]:
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
        await chat_loop(app, "warm", 20, [])
        times: list[float] = []
        await asyncio.gather(*(chat_loop(app, f"c{c}", turns, times) for c in range(chats)))
        return times
    finally:
        await app.stop()


async def main(turns: int, delay: float) -> None:
    quiet()
    async with FakeOllama() as fake:
        fake.responder = lambda body: Reply("Hello! How can I help?", chunks=3, delay=delay)
        with tempfile.TemporaryDirectory() as tmp:
            one = await run(fake.url, 1, turns * 4, Path(tmp) / "one")
            many = await run(fake.url, 16, turns, Path(tmp) / "many")
    print(f"model delay {delay * 1000:.0f} ms")
    print(summary("1 chat in flight", one))
    print(summary("16 chats in flight", many))
    print(
        f"p99 ratio 16/1: {pct(many, 99) / pct(one, 99):.2f}x  "
        f"(p50 ratio {pct(many, 50) / pct(one, 50):.2f}x)"
    )


if __name__ == "__main__":
    asyncio.run(
        main(
            int(sys.argv[1]) if len(sys.argv) > 1 else 50,
            float(sys.argv[2]) if len(sys.argv) > 2 else 0.05,
        )
    )
